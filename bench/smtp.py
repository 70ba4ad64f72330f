"""What does one SMTP+STARTTLS probe cost noc in CPU, beside blackbox_exporter?

A real Postfix (tests/postfix.py: its own config and queue, a loopback port) offers
STARTTLS with a certificate from a test CA. Each contender runs --probes sessions of
banner, EHLO, STARTTLS (verified against the CA and the MX name), EHLO, QUIT, one at a
time (noc serialises the probes of one host); the figure is the contender's process
CPU (user + system) per 1,000 probes, after a warm-up. In the same run, against the
same Postfix:

- noc's collector (SmtpCollector.probe), in this process;
- blackbox_exporter (the anchor: `apt-get install prometheus-blackbox-exporter`), its
  tcp prober with the smtp_starttls query_response of its documentation, driven
  through /probe as Prometheus would; its CPU is read from /proc.

    python bench/smtp.py [--probes 500] [--rounds 3]

Needs root (a private Postfix instance) and postfix installed.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import aiohttp
import trustme

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from postfix import PostfixServer, PostfixTls, free_port

from noc.clock import SystemClock
from noc.model import SmtpTarget, SmtpTls
from noc_collectors.smtp import SmtpCollector

MX = "mx1.bench.example"


def process_cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def noc_cpu(port: int, ca_file: str, count: int) -> float:
    collector = SmtpCollector(SystemClock())
    target = SmtpTarget(
        "b/smtp0", "b", "127.0.0.1", port, SmtpTls.STARTTLS, MX, "noc.bench", 5.0, ca_file=ca_file
    )

    async def run(n: int) -> None:
        for _ in range(n):
            sample = await collector.probe(target)
            if not sample.ok or sample.tls_version is None:
                raise RuntimeError(f"a probe failed: {sample.error}")

    await run(max(20, count // 10))
    started = time.process_time()
    await run(count)
    return (time.process_time() - started) * 1000 * 1000 / count


async def blackbox_cpu(port: int, ca_file: str, count: int, workdir: Path) -> float | None:
    binary = shutil.which("prometheus-blackbox-exporter") or shutil.which("blackbox_exporter")
    if binary is None:
        return None
    config = workdir / "blackbox.yml"
    config.write_text(
        "modules:\n"
        "  smtp_starttls:\n"
        "    prober: tcp\n"
        "    timeout: 5s\n"
        "    tcp:\n"
        "      query_response:\n"
        '        - expect: "^220 "\n'
        '        - send: "EHLO prober\\r"\n'
        '        - expect: "^250-STARTTLS"\n'
        '        - send: "STARTTLS\\r"\n'
        '        - expect: "^220"\n'
        "        - starttls: true\n"
        '        - send: "EHLO prober\\r"\n'
        '        - expect: "^250 "\n'
        '        - send: "QUIT\\r"\n'
        "      tls_config:\n"
        f"        ca_file: {ca_file}\n"
        f"        server_name: {MX}\n"
    )
    listen = free_port()
    exporter = await asyncio.create_subprocess_exec(
        binary,
        f"--config.file={config}",
        f"--web.listen-address=127.0.0.1:{listen}",
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(200):
            try:
                _, writer = await asyncio.open_connection("127.0.0.1", listen)
            except OSError:
                await asyncio.sleep(0.05)
            else:
                writer.close()
                break
        params = {"module": "smtp_starttls", "target": f"127.0.0.1:{port}"}
        url = f"http://127.0.0.1:{listen}/probe"
        async with aiohttp.ClientSession() as session:

            async def run(n: int) -> None:
                for _ in range(n):
                    async with session.get(url, params=params) as response:
                        if "probe_success 1" not in await response.text():
                            raise RuntimeError("blackbox_exporter's probe failed")

            await run(max(20, count // 10))
            started = process_cpu_seconds(exporter.pid)
            await run(count)
            return (process_cpu_seconds(exporter.pid) - started) * 1000 * 1000 / count
    finally:
        exporter.terminate()
        await exporter.wait()


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--probes", type=int, default=500)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as directory:
        workdir = Path(directory)
        ca = trustme.CA()
        ca_file = workdir / "ca.pem"
        ca.cert_pem.write_to_path(str(ca_file))
        ca_file.chmod(0o644)
        with PostfixServer(tls=PostfixTls.issued(ca.issue_cert(MX)), hostname=MX) as server:
            noc: list[float] = []
            anchor: list[float] = []
            for _ in range(args.rounds):
                noc.append(await noc_cpu(server.port, str(ca_file), args.probes))
                figure = await blackbox_cpu(server.port, str(ca_file), args.probes, workdir)
                if figure is not None:
                    anchor.append(figure)
    noc_median = statistics.median(noc)
    print(f"CPU ms per 1,000 SMTP+STARTTLS probes ({args.probes} x {args.rounds} rounds, median)")
    print(f"  noc SmtpCollector      {noc_median:8.0f}")
    if anchor:
        anchor_median = statistics.median(anchor)
        print(f"  blackbox_exporter tcp  {anchor_median:8.0f}  (anchor)")
        print(f"  noc / blackbox         {noc_median / anchor_median:8.2f}x")
    else:
        print("  blackbox_exporter not installed: no anchor")


if __name__ == "__main__":
    asyncio.run(main())
