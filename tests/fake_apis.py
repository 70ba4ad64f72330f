"""Slack, Telegram, PagerDuty and a webhook receiver on loopback, answering as the real ones.

One aiohttp server on a random port serves all four:

    POST /slack/services/<secret>          a Slack incoming webhook
    POST /telegram/bot<token>/sendMessage  the Telegram Bot API
    POST /pagerduty/v2/enqueue             the PagerDuty Events API v2
    POST /webhook/<secret>                 a plain webhook receiver

Every request is recorded (`requests`, or `of(api)`). Each API checks what it is sent
as the real one does (the secret, required fields, severity values, chat id) and
answers with the real one's status codes and bodies; PagerDuty also keeps its
incidents by dedup_key, so a test can see a resolve close one. `script(api, ...)`
queues answers for the next requests: `Answer(429, retry_after=1)`, `Answer(503)`,
`Answer(200, delay=5)` (a slow answer, for timeouts). The body of a scripted answer
is what that API sends for that status: Slack's plain-text error string and its
Retry-After header, Telegram's `{"ok": false, ..., "parameters": {"retry_after"}}`,
PagerDuty's `{"status": "invalid event", ...}`.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from aiohttp import web

Api = Literal["slack", "telegram", "pagerduty", "webhook"]

PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")
TELEGRAM_TEXT_LIMIT = 4096

SLACK_ERRORS = {
    400: "invalid_payload",
    403: "invalid_token",
    404: "no_service",
    410: "channel_is_archived",
    429: "rate_limited",
}
TELEGRAM_ERRORS = {
    400: "Bad Request: chat not found",
    401: "Unauthorized",
    403: "Forbidden: bot was blocked by the user",
    500: "Internal Server Error",
    502: "Bad Gateway",
}


@dataclass(frozen=True)
class Answer:
    """A scripted answer: the status, what a 429 says about waiting, and how long the
    server sits on the request before answering."""

    status: int
    retry_after: int | None = None
    delay: float = 0.0


@dataclass(frozen=True)
class Recorded:
    api: Api
    path: str
    body: Any  # the parsed JSON, or the raw text when it is not JSON
    headers: dict[str, str]
    at: float  # time.monotonic() when it arrived
    status: int  # what the fake answered


@dataclass
class FakeApis:
    host: str = "127.0.0.1"
    chat_id: str = "-1001234567890"
    slack_secret: str = field(default_factory=lambda: f"T0/B0/{secrets.token_hex(12)}")
    telegram_token: str = field(default_factory=lambda: f"123456789:{secrets.token_urlsafe(24)}")
    routing_key: str = field(default_factory=lambda: secrets.token_hex(16))  # 32 characters
    webhook_secret: str = field(default_factory=lambda: secrets.token_urlsafe(16))
    requests: list[Recorded] = field(default_factory=list)
    # dedup_key -> "triggered" | "resolved", as PagerDuty keeps its alerts.
    incidents: dict[str, str] = field(default_factory=dict)
    in_flight: int = 0
    max_in_flight: int = 0
    _scripts: dict[str, deque[Answer]] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    _port: int | None = None

    # --- addresses, as a channel is configured with them ---

    @property
    def base(self) -> str:
        if self._port is None:
            raise RuntimeError("FakeApis has not been started")
        return f"http://{self.host}:{self._port}"

    @property
    def slack_url(self) -> str:
        return f"{self.base}/slack/services/{self.slack_secret}"

    @property
    def telegram_api(self) -> str:
        return f"{self.base}/telegram"

    @property
    def pagerduty_url(self) -> str:
        return f"{self.base}/pagerduty/v2/enqueue"

    @property
    def webhook_url(self) -> str:
        return f"{self.base}/webhook/{self.webhook_secret}"

    @property
    def secrets(self) -> tuple[str, ...]:
        return (self.slack_secret, self.telegram_token, self.routing_key, self.webhook_secret)

    # --- scripting and reading ---

    def script(self, api: Api, *answers: Answer) -> None:
        self._scripts.setdefault(api, deque()).extend(answers)

    def of(self, api: Api) -> list[Recorded]:
        return [r for r in self.requests if r.api == api]

    # --- lifecycle ---

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/slack/services/{secret:.+}", self._slack)
        app.router.add_post("/telegram/bot{token}/sendMessage", self._telegram)
        app.router.add_post("/pagerduty/v2/enqueue", self._pagerduty)
        app.router.add_post("/webhook/{secret:.+}", self._webhook)
        # handler_cancellation: a client that gave up (a timeout test) stops the handler.
        self._runner = web.AppRunner(
            app, access_log=None, handler_cancellation=True, shutdown_timeout=0.1
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, 0)
        await site.start()
        self._port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    # --- the APIs ---

    async def _slack(self, request: web.Request) -> web.StreamResponse:
        async def answer(body: Any, planned: Answer | None) -> web.Response:
            if planned is not None and planned.status >= 300:
                return _slack_error(planned)
            if request.match_info["secret"] != self.slack_secret:
                return web.Response(status=403, text="invalid_token")
            if not isinstance(body, dict):
                return web.Response(status=400, text="invalid_payload")
            if not body.get("text") and not body.get("blocks"):
                return web.Response(status=400, text="no_text")
            return web.Response(text="ok")

        return await self._serve("slack", request, answer)

    async def _telegram(self, request: web.Request) -> web.StreamResponse:
        async def answer(body: Any, planned: Answer | None) -> web.Response:
            if planned is not None and planned.status >= 300:
                return _telegram_error(planned.status, planned.retry_after)
            if request.match_info["token"] != self.telegram_token:
                return _telegram_error(401, None)
            if not isinstance(body, dict) or str(body.get("chat_id")) != self.chat_id:
                return _telegram_error(400, None)
            text = body.get("text")
            if not isinstance(text, str) or not text.strip():
                return _telegram_error(400, None, "Bad Request: message text is empty")
            if len(text) > TELEGRAM_TEXT_LIMIT:
                return _telegram_error(400, None, "Bad Request: message is too long")
            message = {
                "message_id": len(self.requests),
                "date": int(time.time()),
                "chat": {"id": int(self.chat_id), "type": "supergroup"},
                "text": text,
            }
            return web.json_response({"ok": True, "result": message})

        return await self._serve("telegram", request, answer)

    async def _pagerduty(self, request: web.Request) -> web.StreamResponse:
        async def answer(body: Any, planned: Answer | None) -> web.Response:
            if planned is not None and planned.status >= 300:
                return _pagerduty_error(planned)
            if not isinstance(body, dict):
                return _invalid_event("Malformed JSON")
            if body.get("routing_key") != self.routing_key:
                return _invalid_event("Invalid routing key")
            action = body.get("event_action")
            if action not in ("trigger", "acknowledge", "resolve"):
                return _invalid_event("'event_action' is invalid")
            key = body.get("dedup_key") or secrets.token_hex(16)
            if len(key) > 255:
                return _invalid_event("'dedup_key' is too long")
            if action == "trigger":
                payload = body.get("payload")
                if not isinstance(payload, dict):
                    return _invalid_event("'payload' is missing or invalid")
                missing = [f for f in ("summary", "source", "severity") if not payload.get(f)]
                if missing:
                    return _invalid_event(*(f"'payload.{f}' is missing" for f in missing))
                if payload["severity"] not in PAGERDUTY_SEVERITIES:
                    return _invalid_event("'payload.severity' is invalid")
                if len(payload["summary"]) > 1024:
                    return _invalid_event("'payload.summary' is too long")
                self.incidents[key] = "triggered"
            elif action == "resolve" and key in self.incidents:
                # A resolve for an unknown key is accepted and dropped, as PagerDuty does.
                self.incidents[key] = "resolved"
            return web.json_response(
                {"status": "success", "message": "Event processed", "dedup_key": key},
                status=202,
            )

        return await self._serve("pagerduty", request, answer)

    async def _webhook(self, request: web.Request) -> web.StreamResponse:
        async def answer(body: Any, planned: Answer | None) -> web.Response:
            if planned is not None and planned.status >= 300:
                headers = _retry_header(planned.retry_after)
                return web.Response(
                    status=planned.status, text=_reason(planned.status), headers=headers
                )
            if request.match_info["secret"] != self.webhook_secret:
                return web.Response(status=404, text="Not Found")
            if not isinstance(body, dict):
                return web.Response(status=400, text="expected a JSON object")
            return web.Response(status=204)

        return await self._serve("webhook", request, answer)

    async def _serve(
        self,
        api: Api,
        request: web.Request,
        answer: Callable[[Any, Answer | None], Awaitable[web.Response]],
    ) -> web.StreamResponse:
        raw = await request.read()
        try:
            body: Any = json.loads(raw)
        except ValueError:
            body = raw.decode(errors="replace")
        scripted = self._scripts.get(api)
        planned = scripted.popleft() if scripted else None
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if planned is not None and planned.delay:
                await asyncio.sleep(planned.delay)
            response = await answer(body, planned)
        finally:
            self.in_flight -= 1
        self.requests.append(
            Recorded(
                api=api,
                path=request.path,
                body=body,
                headers=dict(request.headers),
                at=time.monotonic(),
                status=response.status,
            )
        )
        return response


def _reason(status: int) -> str:
    return {
        408: "Request Timeout",
        429: "Too Many Requests",
        500: "Internal Server Error",
        502: "Bad Gateway",
        503: "Service Unavailable",
        504: "Gateway Timeout",
    }.get(status, "Error")


def _retry_header(retry_after: int | None) -> dict[str, str]:
    return {"Retry-After": str(retry_after)} if retry_after is not None else {}


def _slack_error(planned: Answer) -> web.Response:
    # Incoming webhooks answer errors as plain text; 429 carries Retry-After.
    status = planned.status
    text = SLACK_ERRORS.get(status, "rollup_error" if status >= 500 else "invalid_payload")
    return web.Response(status=status, text=text, headers=_retry_header(planned.retry_after))


def _telegram_error(status: int, retry_after: int | None, description: str = "") -> web.Response:
    body: dict[str, Any] = {"ok": False, "error_code": status}
    if status == 429:
        wait = retry_after or 1
        body["description"] = f"Too Many Requests: retry after {wait}"
        body["parameters"] = {"retry_after": wait}
    else:
        body["description"] = description or TELEGRAM_ERRORS.get(status, _reason(status))
    return web.json_response(body, status=status)


def _pagerduty_error(planned: Answer) -> web.Response:
    if planned.status == 400:
        return _invalid_event("'payload.severity' is invalid")
    if planned.status == 429:
        # PagerDuty throttles without a Retry-After unless a test scripts one.
        body = {"status": "throttle event", "message": "Requests are arriving too quickly"}
        headers = _retry_header(planned.retry_after)
        return web.json_response(body, status=429, headers=headers)
    return web.Response(status=planned.status, text=_reason(planned.status))


def _invalid_event(*errors: str) -> web.Response:
    body = {"status": "invalid event", "message": "Event object is invalid", "errors": list(errors)}
    return web.json_response(body, status=400)
