"""Another noc process for the operations histories: one action through the real
operations layer, in its own process (its own pid: its lock is a real other holder),
optionally SIGKILLed at a given audit record, so nothing of it runs after (no
`finally`, no lock release), as with a real kill.

    python tests/ops_process.py '<json>'

with {"config": {...}, "audit": path, "kind": "failover", "to": "bg", "operator": {...},
"reason": "...", "force": bool, "kill_at": [event, nth, after] | null}. Prints the
outcome's exit code and stage as JSON when it was not killed."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sys
from pathlib import Path
from typing import Any

from noc.audit import JsonlLog
from noc.clock import SystemClock
from noc.config import parse_config
from noc.model import ActionKind, ActionPlan
from noc.operations import ActionRequest, Confirmation, Operations, OperatorIO
from noc.scheduler import Scheduler


class KillingAudit(JsonlLog):
    """The real audit log, which SIGKILLs this process at the n-th record of an event:
    after writing it (a kill after a step's intent) or before it (a kill after the
    write, before its result is recorded)."""

    kill_at: tuple[str, int, bool] | None = None

    def append(self, event: str, **fields: Any) -> dict[str, Any]:
        if self.kill_at is not None and event == self.kill_at[0]:
            name, left, after = self.kill_at
            if left <= 0:
                if after:
                    super().append(event, **fields)
                os.kill(os.getpid(), signal.SIGKILL)
            self.kill_at = (name, left - 1, after)
        return super().append(event, **fields)


async def main(args: dict[str, Any]) -> int:
    config = parse_config(args["config"])
    clock = SystemClock()
    audit = KillingAudit(Path(args["audit"]), clock)
    if args.get("kill_at"):
        event, nth, after = args["kill_at"]
        audit.kill_at = (str(event), int(nth), bool(after))
    scheduler = Scheduler(config, clock, single_round=True)
    ops = Operations(config, scheduler, audit, clock)

    async def yes(plan: ActionPlan) -> Confirmation:
        return Confirmation(args["reason"], plan.forced, "--yes")

    request = ActionRequest(
        ActionKind(args["kind"]), args["to"], args["operator"], reason=args["reason"],
        force=bool(args.get("force")),
    )  # fmt: skip
    try:
        outcome = await ops.run_action(request, OperatorIO(confirm=yes))
    finally:
        await scheduler.stop()
    print(json.dumps({"exit_code": outcome.exit_code, "stage": outcome.stage}))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main(json.loads(sys.argv[1]))))
