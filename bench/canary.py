"""What does one canary cost noc, and how long is it on the way, beside the bare protocol?

A real Postfix submission service (STARTTLS, SASL AUTH through Dovecot) delivers into a
real Dovecot's maildir, read over IMAPS (tests/mailflow.py). One canary at a time:

- noc: CanaryProber.send() then read() until it is found (and deleted);
- the anchor, in the same run against the same servers: the bare protocol with the
  same libraries and no bookkeeping: aiosmtplib.send() with AUTH over STARTTLS, then an
  aioimaplib session (login, select, search by header, fetch, store, expunge, logout)
  repeated until the message is there.

Printed: this process's CPU (user + system) per canary and the median wall time from
submission to found, for each; the servers' own CPU is not counted in either.

    python bench/canary.py [--canaries 30]

Needs root (private Postfix and Dovecot instances), postfix and dovecot-imapd.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import ssl
import statistics
import sys
import time
from email.message import EmailMessage
from pathlib import Path

import aioimaplib
import aiosmtplib
import trustme

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from mailflow import MailFlow

from noc.clock import SystemClock
from noc_collectors.canary import CanaryProber, SeedMailbox, SubmissionEndpoint

PAUSE = 0.02  # between reads of the seed while a canary is awaited


async def noc_canaries(flow: MailFlow, port: int, count: int) -> tuple[float, list[float]]:
    endpoint = SubmissionEndpoint(
        "ro", "127.0.0.1", port, False, "smtp.test.example", flow.sender[0],
        "BENCH_SUBMISSION", flow.sender[0], str(flow.ca_file),
    )  # fmt: skip
    seed = SeedMailbox(
        "seed", flow.address("seed"), "127.0.0.1", flow.imap_port, flow.address("seed"),
        "BENCH_SEED", ("ro",), imap_ca_file=str(flow.ca_file),
    )  # fmt: skip
    prober = CanaryProber({"ro": endpoint}, [seed], SystemClock())
    walls = []
    cpu = time.process_time()
    for _ in range(count):
        started = time.perf_counter()
        await prober.send("ro", "seed")
        while True:
            if await prober.read("seed"):
                break
            await asyncio.sleep(PAUSE)
        walls.append(time.perf_counter() - started)
    return (time.process_time() - cpu) / count, walls


async def bare_canaries(flow: MailFlow, port: int, count: int) -> tuple[float, list[float]]:
    context = ssl.create_default_context(cafile=str(flow.ca_file))
    walls = []
    cpu = time.process_time()
    for index in range(count):
        started = time.perf_counter()
        message = EmailMessage()
        message["From"], message["To"] = flow.sender[0], flow.address("seed")
        message["Subject"] = f"bare {index}"
        message["X-Bare"] = f"bare-{index}"
        message.set_content("bare\n")
        await aiosmtplib.send(
            message, hostname="127.0.0.1", port=port, start_tls=True, tls_context=context,
            username=flow.sender[0], password=flow.sender[1],
        )  # fmt: skip
        while True:
            imap = aioimaplib.IMAP4_SSL("127.0.0.1", flow.imap_port, ssl_context=context)
            await imap.wait_hello_from_server()
            await imap.login(flow.address("seed"), flow.seed_password)
            await imap.select("INBOX")
            found = await imap.uid_search("HEADER", "X-Bare", f"bare-{index}", charset=None)
            uids = found.lines[0].decode().split()
            if uids:
                await imap.uid("fetch", ",".join(uids), "(UID INTERNALDATE BODY.PEEK[HEADER])")
                await imap.uid("store", ",".join(uids), "+FLAGS.SILENT", r"(\Deleted)")
                await imap.uid("expunge", ",".join(uids))
            await imap.logout()
            imap.protocol.transport.close()
            if uids:
                break
            await asyncio.sleep(PAUSE)
        walls.append(time.perf_counter() - started)
    return (time.process_time() - cpu) / count, walls


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--canaries", type=int, default=30)
    args = parser.parse_args()
    flow = MailFlow(trustme.CA()).start()
    os.environ["BENCH_SUBMISSION"], os.environ["BENCH_SEED"] = flow.sender[1], flow.seed_password
    try:
        port = flow.region("ro").port
        await noc_canaries(flow, port, 3)  # warm-up: TLS contexts, imports
        await bare_canaries(flow, port, 3)
        noc_cpu, noc_walls = await noc_canaries(flow, port, args.canaries)
        bare_cpu, bare_walls = await bare_canaries(flow, port, args.canaries)
    finally:
        flow.stop()
    print(f"{args.canaries} canaries, one at a time, real Postfix -> Dovecot on loopback")
    for name, cpu, walls in (
        ("noc CanaryProber", noc_cpu, noc_walls),
        ("bare aiosmtplib+aioimaplib (anchor)", bare_cpu, bare_walls),
    ):
        print(
            f"  {name:<38} CPU {cpu * 1000:6.1f} ms/canary   "
            f"submitted->found median {statistics.median(walls) * 1000:6.0f} ms"
        )


if __name__ == "__main__":
    asyncio.run(main())
