"""httpx over aiohttp for the health probes (httpx-aiohttp's transport), kept apart
so that importing the HTTP collector does not import aiohttp (~140 ms)."""

from __future__ import annotations

import ssl
from collections.abc import Callable
from functools import partial
from types import SimpleNamespace

import aiohttp
import httpx
from httpx_aiohttp import AiohttpTransport


def probe_transport(
    context: ssl.SSLContext, limits: httpx.Limits, request_sent: Callable[[], None]
) -> httpx.AsyncBaseTransport:
    """`request_sent` is called, in the probing task, once a request's headers are out."""
    # The session is made on first use, inside the running event loop.
    session = partial(_aiohttp_session, context, limits, request_sent)
    return _AiohttpTransport(verify=context, limits=limits, client=session)


class _AiohttpTransport(AiohttpTransport):
    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.userinfo:
            # httpx has already turned the URL's credentials into an Authorization
            # header; aiohttp refuses a request that carries both.
            request.url = request.url.copy_with(userinfo=b"")
        response = await super().handle_async_request(request)
        # The server's certificate, for its days left: httpcore offers the TLS object
        # as the "network_stream" extension; aiohttp's response keeps the protocol its
        # connection spoke (the connection itself is released once a short body is in).
        aiohttp_response = getattr(response.stream, "_aiohttp_response", None)
        protocol = getattr(aiohttp_response, "_protocol", None)
        transport = getattr(protocol, "transport", None)
        if transport is not None:
            tls = transport.get_extra_info("ssl_object")
            if isinstance(tls, ssl.SSLObject | ssl.SSLSocket):
                response.extensions["noc_peer_certificate"] = tls.getpeercert(binary_form=True)
        return response


def _aiohttp_session(
    context: ssl.SSLContext, limits: httpx.Limits, request_sent: Callable[[], None]
) -> aiohttp.ClientSession:
    async def headers_sent(
        session: aiohttp.ClientSession, trace: SimpleNamespace, params: object
    ) -> None:
        request_sent()

    tracing = aiohttp.TraceConfig()
    tracing.on_request_headers_sent.append(headers_sent)
    connector = aiohttp.TCPConnector(
        limit=limits.max_connections or 0,
        keepalive_timeout=limits.keepalive_expiry,
        ssl=context,
    )
    # No cookie jar: a health probe carries no session from one answer to the next.
    return aiohttp.ClientSession(
        connector=connector, trace_configs=[tracing], cookie_jar=aiohttp.DummyCookieJar()
    )
