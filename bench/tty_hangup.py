"""How soon does noc leave when its terminal goes away, and what does leaving cost?

`noc demo` runs on a pseudo-terminal (80x24) until it has drawn its screen and
settled; then the terminal's master side is closed, as sshd does when a
connection drops or tmux does when its session is killed. Two cases:

- SIGHUP delivered: the usual case, noc is the terminal's foreground process;
- SIGHUP blocked: the terminal vanishes with no signal at all (a process outside
  the foreground group, or started with SIGHUP blocked or ignored), so only the
  hung-up descriptors tell; noc.terminal.TerminalWatch is what notices.

For each: seconds from the hang-up to the exit, the CPU the process used in
that time (a busy loop would show as about 1 s per second), the exit status,
and whether any of the demo's redis-servers outlived it.

    python bench/tty_hangup.py [--trials 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
from pathlib import Path

from ptyproc import PtyProcess

SETTLE_SECONDS = 4.0
BOUND_SECONDS = 20.0


def trial(block_sighup: bool) -> tuple[float, float, int, int]:
    process = PtyProcess.spawn([sys.executable, "-m", "noc", "demo"], block_sighup=block_sighup)
    if not process.read_until(b"LIVE", timeout=60):
        process.kill()
        raise SystemExit("noc demo never drew its screen")
    process.read_for(SETTLE_SECONDS)
    children = process.children()
    process.hang_up()
    ended = process.wait(BOUND_SECONDS)
    if ended is None:
        process.kill()
        raise SystemExit(f"noc was still running {BOUND_SECONDS:.0f} s after the hang-up")
    left = [pid for pid in children if Path(f"/proc/{pid}").exists()]
    return ended.seconds, ended.cpu_seconds, ended.code, len(left)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=5)
    args = parser.parse_args()
    print(f"noc demo on an 80x24 pty, terminal hung up; {args.trials} trials each")
    print(f"{'case':<16} {'exit median':>11} {'exit max':>9} {'CPU after':>9} {'status':>6} left")
    for label, block in (("SIGHUP", False), ("no SIGHUP", True)):
        runs = [trial(block) for _ in range(args.trials)]
        seconds = [run[0] for run in runs]
        print(
            f"{label:<16} {statistics.median(seconds):>10.2f}s {max(seconds):>8.2f}s "
            f"{max(run[1] for run in runs):>8.2f}s {runs[-1][2]:>6} "
            f"{sum(run[3] for run in runs)}"
        )


if __name__ == "__main__":
    main()
