"""Config fuzz: N generated configurations and NOC_* environments (default 10,000)
through `noc check`, `noc config show` and the dashboard's start path, in-process.

Prints how many cases ended in a clean error, were accepted, broke the message
contract, or ended in a traceback (worst outcome over the three commands), and the
first few tracebacks. Exit status 1 if any case was not clean.

    python3 bench/config_fuzz.py [--cases N]
"""

from __future__ import annotations

import argparse
import collections
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from config_cases import CaseResult, Outcome, config_files, environments, run_case
from hypothesis import HealthCheck, given, settings


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    args = parser.parse_args()
    worst: collections.Counter[Outcome] = collections.Counter()
    per_command: collections.Counter[tuple[str, Outcome]] = collections.Counter()
    failures: list[CaseResult] = []

    @settings(
        max_examples=args.cases,
        deadline=None,
        database=None,
        suppress_health_check=list(HealthCheck),
    )
    @given(config_files(), environments())
    def one(raw: bytes, env: dict[str, str]) -> None:
        with tempfile.TemporaryDirectory() as directory:
            result = run_case(raw, env, Path(directory))
        worst[result.worst] += 1
        for command, outcome in result.outcomes.items():
            per_command[command, outcome] += 1
        if result.worst in (Outcome.TRACEBACK, Outcome.UNCLEAR) and len(failures) < 5:
            failures.append(result)

    started = time.monotonic()
    one()
    elapsed = time.monotonic() - started
    total = sum(worst.values())
    print(f"{total} cases in {elapsed:.0f} s (worst of check, config show, dashboard start)")
    for outcome in Outcome:
        print(f"  {outcome.value:<14} {worst[outcome]:>6}")
    print("per command:")
    for (command, outcome), count in sorted(per_command.items()):
        print(f"  {command:<10} {outcome.value:<14} {count:>6}")
    for result in failures:
        for command, detail in result.details.items():
            if result.outcomes[command] in (Outcome.TRACEBACK, Outcome.UNCLEAR):
                print(f"--- {command}: {result.outcomes[command].value}\n{detail}")
    return 0 if worst[Outcome.TRACEBACK] == worst[Outcome.UNCLEAR] == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
