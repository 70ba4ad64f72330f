"""`noc demo` run headless, as a program that embeds the dashboard runs it: through
`App.run_test`, with no terminal and no driver of its own.

For tests/terminal/test_serve.py: a SIGTERM (or SIGHUP) must end the app by its normal path,
after which this program stops the demo's servers and ends, status 0. Prints "ready"
once the dashboard has drawn its first frame. Run as
`python tests/headless_dashboard.py STATE_DIR`.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path
from typing import Any

from noc.app import NocApp
from noc.simulator.threaded import ThreadedDemo


class HeadlessDashboard(NocApp):
    """NocApp, saying when it is asked to exit. Under run_test the app's shutdown
    (scheduler stopped) runs when the `async with` block ends."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.exiting = asyncio.Event()

    def exit(self, result: None = None, return_code: int = 0, message: Any | None = None) -> None:
        super().exit(result, return_code, message)
        self.exiting.set()


async def main(state: Path) -> None:
    demo = ThreadedDemo()
    config = demo.start()
    try:
        app = HeadlessDashboard(
            config, read_only=True, faults=demo, config_path="demo", state_path=state
        )
        async with app.run_test(size=(120, 40)) as pilot:
            await pilot.pause()
            print("ready", flush=True)
            await app.exiting.wait()
    finally:
        demo.stop()


asyncio.run(main(Path(sys.argv[1])))
