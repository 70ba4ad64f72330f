"""Exit codes and the recovery choice: the words the command line shares with the
operations layer, kept free of imports so that `noc check` and `noc --help` pay for
no store, DNS or action code (noc.operations and noc.recovery re-export them)."""

from __future__ import annotations

from enum import StrEnum

EXIT_DONE = 0
EXIT_NOTHING_CHANGED = 1
EXIT_FAILED = 2
EXIT_USAGE = 3
EXIT_INTERRUPTED = 130  # as a shell reports a command ended by Ctrl-C


class Choice(StrEnum):
    COMPLETE = "complete"  # every actuator toward the plan's target
    ROLL_BACK = "roll_back"  # every actuator back to what it was before the action
    # Writes nothing and ends the record: for an action a newer one has superseded
    # (settling it either way would undo the newer one), or one settled by hand.
    CLOSE = "close"
