"""How many bytes a second does noc send a terminal once it has settled, beside htop?

Each program runs on an 80x24 pseudo-terminal, as over SSH: the first
--warmup seconds (drawing the first screen, the demo's first polls) are
discarded, then every byte written during --seconds is counted. Compared at the
same refresh: noc's clock ticks once a second, and htop runs with -d 10 (one
update a second). htop is Debian's, when installed (apt-get install htop).

    python bench/tty_bandwidth.py [--warmup 5] [--seconds 20]
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys

from ptyproc import PtyProcess


def steady_bytes_per_second(argv: list[str], warmup: float, seconds: float) -> float:
    # A terminal type for programs that need one (htop); noc never sets TERM itself.
    env = {"TERM": "xterm-256color", **os.environ}
    process = PtyProcess.spawn(argv, env=env)
    try:
        process.read_for(warmup)
        return process.read_for(seconds) / seconds
    finally:
        process.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--warmup", type=float, default=5.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    args = parser.parse_args()
    noc = [sys.executable, "-m", "noc", "demo"]
    runs = {
        "noc demo": noc,
        "noc demo --low-bandwidth": [*noc, "--low-bandwidth"],
    }
    htop = shutil.which("htop")
    if htop:
        runs["htop -d 10"] = [htop, "-d", "10"]
    print(f"80x24 pty, {args.warmup:.0f} s warm-up discarded, then {args.seconds:.0f} s counted")
    for label, argv in runs.items():
        rate = steady_bytes_per_second(argv, args.warmup, args.seconds)
        print(f"{label:<26} {rate:>8.0f} bytes/s")
    if not htop:
        print("htop: not installed (apt-get install htop), no comparison")


if __name__ == "__main__":
    main()
