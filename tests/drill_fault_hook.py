"""A drill's inject/restore hook for tests: asks the test's simulated estate to put
a fault in place (or take it away) and exits once it is, as a real hook that
drives a fault injector would.

    python drill_fault_hook.py inject|restore DIRECTORY

The request (verb, NOC_DRILL_MODE, NOC_DRILL_REGION, NOC_DRILL_ID) is written to
DIRECTORY/<id>-<verb>.request; the test's `FaultBridge` applies it through the
simulator's health endpoints and writes <id>-<verb>.done. Exit 1 when no answer
comes within the wait.
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

WAIT_SECONDS = 20.0


def main() -> int:
    verb, directory = sys.argv[1], Path(sys.argv[2])
    drill = os.environ["NOC_DRILL_ID"]
    request = {
        "verb": verb,
        "mode": os.environ["NOC_DRILL_MODE"],
        "region": os.environ["NOC_DRILL_REGION"],
        "drill": drill,
    }
    stem = directory / f"{drill}-{verb}"
    partial = stem.with_suffix(".partial")
    partial.write_text(json.dumps(request))
    partial.replace(stem.with_suffix(".request"))
    deadline = time.monotonic() + WAIT_SECONDS
    while time.monotonic() < deadline:
        if stem.with_suffix(".done").exists():
            print(f"{verb} {request['mode']} in {request['region']}: done")
            return 0
        time.sleep(0.02)
    print(f"{verb}: no answer from the estate within {WAIT_SECONDS:g} s")
    return 1


if __name__ == "__main__":
    sys.exit(main())
