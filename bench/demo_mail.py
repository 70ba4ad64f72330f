"""What the demo's mail parts add to `noc demo`'s start: the demo CA and its 16
certificates and TLS contexts (three regions' SMTP servers in five modes each, and the
MTA-STS policy server), beside the whole DemoEstate start in the same run (redis-servers,
DNS, health endpoints, traffic prefill: the anchor).

    python bench/demo_mail.py [--runs 5]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from noc.simulator import DemoEstate
from noc.simulator.estate import DEMO_REGIONS
from noc.simulator.mail import DemoCa, SimulatedSmtp


def certificates(directory: Path) -> float:
    started = time.perf_counter()
    ca = DemoCa(directory)
    for region in DEMO_REGIONS:
        SimulatedSmtp(f"mx.{region.id}.demo-mail.test", ca)
    ca.context("mta-sts", ["127.0.0.1", "mta-sts.demo-mail.test"])
    return time.perf_counter() - started


async def whole_start(directory: Path) -> float:
    estate = DemoEstate(certificate_dir=directory)
    started = time.perf_counter()
    try:
        await estate.start()
        return time.perf_counter() - started
    finally:
        await estate.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    mail: list[float] = []
    anchor: list[float] = []
    with tempfile.TemporaryDirectory() as directory:
        for run in range(args.runs):
            mail.append(certificates(Path(directory) / f"certs{run}"))
            anchor.append(asyncio.run(whole_start(Path(directory) / f"estate{run}")))
    mail_ms, anchor_ms = statistics.median(mail) * 1000, statistics.median(anchor) * 1000
    print(f"demo start, median of {args.runs} runs (ms)")
    print(f"  mail certificates and TLS contexts  {mail_ms:8.1f}")
    print(f"  whole DemoEstate.start()            {anchor_ms:8.1f}  (anchor, includes the above)")
    print(f"  share                               {mail_ms / anchor_ms:8.1%}")


if __name__ == "__main__":
    main()
