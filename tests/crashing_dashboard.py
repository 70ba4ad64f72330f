"""`noc demo` with one injected bug: `?` raises instead of opening the help.

For tests/terminal/test_terminal.py: an unhandled error in a key's action is what ends the
app (a pane's error no longer does), and a deep stack makes Textual's crash
report larger than a terminal's buffer, so it blocks when nobody reads the terminal.
Run as `python tests/crashing_dashboard.py`; exits as `noc demo` would.
"""

from __future__ import annotations

import sys

from noc.app import NocApp
from noc.cli import main


def crash(_: NocApp, depth: int = 150) -> None:
    # Deep, so the report (a frame each, with its locals) fills the terminal's buffer.
    if depth:
        crash(_, depth - 1)
    raise RuntimeError("injected crash for a test")


NocApp.action_help = crash  # type: ignore[method-assign]
sys.exit(main(["demo"]))
