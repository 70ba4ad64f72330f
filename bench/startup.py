"""How long from `noc` typed to a dashboard on the screen, and how long `noc check` takes.

Three regions, each with one check on a real aiohttp endpoint on loopback. Every
figure is a fresh process, timed --runs times (median and min are printed):

- anchors: `python -c pass` (the interpreter), `python -c "import textual"` (the UI
  library alone) and a bare Textual app (bench/bare_textual_app.py: "bench", the
  region ids and Textual's Footer) to its first full frame on the same pty, in the
  same run on the same machine;
- `noc check --config ...` wall time (one collection round, Nagios-style);
- `noc --config ...` on a 200x60 pseudo-terminal: until the first full frame (the
  status bar, every region's row and the footer all drawn), and until the first
  frame with every region's verdict (each region "✓ healthy").

    python bench/startup.py [--runs 7] [--regions 3]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from loopback_estate import Endpoints, estate, write_toml
from paint_latency import Terminal
from ptyproc import PtyProcess

HEALTHY = "✓ healthy".encode()
FOOTER = b"Quit"
BARE_APP = Path(__file__).with_name("bare_textual_app.py")


async def wall_seconds(argv: list[str], env: dict[str, str]) -> float:
    """One run of `argv` to its exit; its output is discarded but must say it worked."""
    started = time.monotonic()
    child = await asyncio.create_subprocess_exec(
        *argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )
    out, err = await child.communicate()
    seconds = time.monotonic() - started
    if child.returncode != 0:
        raise RuntimeError(f"{argv} exited {child.returncode}: {out[-500:]!r} {err[-500:]!r}")
    return seconds


async def dashboard_seconds(
    argv: list[str], env: dict[str, str], healthy: list[str], regions: list[str]
) -> tuple[float, float]:
    """(first full frame, first frame with each of `healthy` "✓ healthy"), from the
    spawn; the full frame shows "bench", every region and the footer's Quit."""
    started = time.monotonic()
    process = PtyProcess.spawn(argv, size=(200, 60), env=env)
    terminal = Terminal(process)
    try:
        for needle in (b"bench", *(region.encode() for region in regions), FOOTER):
            full = await terminal.until(needle, 0, within=30)
        verdicts = full
        while process.output.count(HEALTHY) < len(healthy):
            verdicts = await terminal.until(HEALTHY, len(process.output), within=30)
    finally:
        terminal.close()
        process.stop()
    return full - started, verdicts - started


def line(label: str, seconds: list[float]) -> str:
    return (
        f"{label:<48} median {statistics.median(seconds) * 1000:7.0f} ms   "
        f"min {min(seconds) * 1000:7.0f} ms"
    )


async def run(runs: int, regions: int) -> None:
    endpoints = Endpoints(regions)
    await endpoints.start()
    workdir = Path(tempfile.mkdtemp(prefix="noc-startup-"))
    config = write_toml(estate(endpoints, "noc"), workdir / "noc.toml")
    env = dict(os.environ, XDG_STATE_HOME=str(workdir / "state"), TERM="xterm-256color")
    # An installed noc has its bytecode compiled (pip does it at install): without the
    # caches every start would time the compiler too.
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    python = sys.executable
    figures: dict[str, list[float]] = {}
    try:
        for _ in range(runs):
            for label, argv in (
                ("anchor: python -c pass", [python, "-c", "pass"]),
                ('anchor: python -c "import textual"', [python, "-c", "import textual"]),
                ("noc check (3 regions)", [python, "-m", "noc", "check", "--config", str(config)]),
            ):
                figures.setdefault(label, []).append(await wall_seconds(argv, env))
            bare, _ = await dashboard_seconds(
                [python, str(BARE_APP), *endpoints.region_ids], env, [], endpoints.region_ids
            )
            figures.setdefault("anchor: bare Textual app: first full frame", []).append(bare)
            full, verdicts = await dashboard_seconds(
                [python, "-m", "noc", "--config", str(config)],
                env,
                endpoints.region_ids,
                endpoints.region_ids,
            )
            figures.setdefault("noc: first full frame", []).append(full)
            figures.setdefault("noc: first frame with every verdict", []).append(verdicts)
    finally:
        await endpoints.stop()
    print(f"{regions} regions on loopback, {runs} runs of each, fresh processes, 200x60 pty")
    for label, seconds in figures.items():
        print(line(label, seconds))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7)
    parser.add_argument("--regions", type=int, default=3)
    args = parser.parse_args()
    asyncio.run(run(args.runs, args.regions))


if __name__ == "__main__":
    main()
