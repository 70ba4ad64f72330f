"""Textual's Footer, without the keys it forgets to let go of.

Footer rebuilds its keys (FooterKey widgets) whenever the bindings change: every
dialog, screen or focus change. Each key is data-bound to the footer's `compact`,
which adds a watcher to the footer; Textual drops the watchers of removed widgets
only when `compact` changes, and noc never changes it. So every key ever shown
stayed alive with its styles and render caches: about 23 widgets per operator
dialog, the memory growth the soak (bench/soak.py) found after the health table's.
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.widgets import Footer


class NocFooter(Footer):
    def compose(self) -> ComposeResult:
        # Footer shows no key until the screen's first bindings signal, a refresh after
        # mounting: the first frame came without keys, and the keys 100-300 ms later
        # with a whole frame of their own. The screen's bindings are known now; the
        # signal recomposes them if focus changes them.
        self._bindings_ready = True
        return super().compose()

    async def recompose(self) -> None:
        await super().recompose()
        # Running the watchers of `compact` is what prunes those of removed keys
        # (the live keys are set to the value they already have).
        self.mutate_reactive(Footer.compact)
