"""Textual's Footer, fitted to its width, without the keys it forgets to let go of.

Footer rebuilds its keys (FooterKey widgets) whenever the bindings change: every
dialog, screen or focus change. Each key is data-bound to the footer's `compact`,
which adds a watcher to the footer; Textual drops the watchers of removed widgets
only when `compact` changes. So every key ever shown stayed alive with its styles
and render caches: about 23 widgets per operator dialog, the memory growth the soak
(bench/soak.py) found after the health table's.

Textual's footer also cuts what does not fit, and docks the palette key over the
last keys: at 80 columns the main screen's footer ended `? Hel▏^p palette`, hiding
Help and Quit. Each time its keys are built, this footer picks the roomiest style
that shows every key: spaced out; compact (one blank between keys); compact without
the palette key (ctrl+p still opens the palette, and `?` lists it).
"""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.widgets import Footer

# The cells a key takes beyond its key and description: spaced " k Desc ", compact
# "k Desc" and a blank after it. The palette key adds its one-cell bar and padding.
SPACED_EXTRA = 3
COMPACT_EXTRA = 2
PALETTE_EXTRA = 2


def footer_width(
    keys: list[tuple[str, str]], palette: tuple[str, str] | None, compact: bool
) -> int:
    """The cells a footer of (key shown, description) pairs needs in one style."""
    extra = COMPACT_EXTRA if compact else SPACED_EXTRA
    width = sum(len(key) + len(description) + extra for key, description in keys)
    if palette is not None:
        width += len(palette[0]) + len(palette[1]) + extra + PALETTE_EXTRA
    return width


def footer_style(
    keys: list[tuple[str, str]], palette: tuple[str, str] | None, width: int
) -> tuple[bool, bool]:
    """(compact, show the palette key): the roomiest style in which every key fits."""
    for compact, with_palette in ((False, True), (True, True), (True, False)):
        if footer_width(keys, palette if with_palette else None, compact) <= width:
            return compact, with_palette
    return True, False


class NocFooter(Footer):
    def compose(self) -> ComposeResult:
        # Footer shows no key until the screen's first bindings signal, a refresh after
        # mounting: the first frame came without keys, and the keys 100-300 ms later
        # with a whole frame of their own. The screen's bindings are known now; the
        # signal recomposes them if focus changes them.
        self._bindings_ready = True
        return super().compose()

    async def recompose(self) -> None:
        self._fit()
        await super().recompose()
        # Running the watchers of `compact` is what prunes those of removed keys
        # (the live keys are set to the value they already have).
        self.mutate_reactive(Footer.compact)

    def on_resize(self) -> None:
        if self._fit():
            self.call_later(self.recompose)

    def _fit(self) -> bool:
        """Pick the style for the keys shown now; whether it changed."""
        if not self.is_attached or not self.size.width:
            return False
        shown: dict[str, Binding] = {}
        for _, binding, _, _ in self.screen.active_bindings.values():
            if binding.show:
                shown.setdefault(binding.action, binding)
        palette_binding = self.screen.active_bindings.get(self.app.COMMAND_PALETTE_BINDING)
        keys = [
            (self.app.get_key_display(binding), binding.description) for binding in shown.values()
        ]
        palette = None
        if palette_binding is not None and self.app.ENABLE_COMMAND_PALETTE:
            binding = palette_binding[1]
            palette = (self.app.get_key_display(binding), binding.description)
        compact, with_palette = footer_style(keys, palette, self.size.width)
        changed = (compact, with_palette) != (self.compact, self.show_command_palette)
        # Set without their watchers: the keys are about to be built in this style.
        self.set_reactive(Footer.compact, compact)
        self.set_class(compact, "-compact")
        self.set_reactive(Footer.show_command_palette, with_palette)
        return changed
