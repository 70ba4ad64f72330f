"""The health table: one row per check, updated cell by cell as verdicts change."""

from __future__ import annotations

from typing import Self

from textual.content import Content
from textual.geometry import Region
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import DataTable
from textual.widgets.data_table import RowKey

from noc.model import CheckStatus, EstateSnapshot, Health, SmtpStatus
from noc_widgets.column_fit import clip_at_break, remaining_width, same_drawing
from noc_widgets.health_style import COLOR, GLYPH, age_text, health_content, health_word

# (key, label, width, compact label, compact width); compact width None drops the column.
COLUMNS: tuple[tuple[str, str, int, str, int | None], ...] = (
    ("region", "Region", 6, "Rgn", 3),
    ("check", "Check", 30, "Check", 16),
    # 11 even when compact: "(✓ healthy)", a verdict held while cut off, with its brackets.
    ("health", "Health", 11, "Health", 11),
    ("http", "HTTP", 4, "", None),
    ("latency", "Latency", 8, "Lat", 5),
    ("fails", "Fails", 5, "Fail", 4),
    ("down_in", "Down in", 7, "Down", 4),
    ("error", "Last error", 0, "Last error", 0),  # sized to the space left: _error_width()
    ("age", "Age", 5, "Age", 4),
)


ERROR_MIN_WIDTH = 24
ERROR_COMPACT_WIDTH = 15


def clip_check(name: str, width: int) -> str:
    """A check's name in `width` cells: the path is shortened first, then the host, and
    a port is kept to the end. Three checks of `127.0.0.1` on three ports stay three
    ("127.0.0.1:8081…", "127.0…:8082"), never one `127.0.0.1/health` thrice."""
    if len(name) <= width:
        return name
    head, slash, _ = name.partition("/")
    if slash and len(head) < width:
        return clip_at_break(name, width)  # the cut falls in the path: the head is kept
    host, colon, port = head.rpartition(":")
    if colon and port.isdigit() and host and len(port) + 3 <= width:
        return clip_at_break(host, width - len(port) - 1) + ":" + port
    return clip_at_break(name, width)


def _seconds(value: float | None, coarse: bool) -> str:
    return "—" if value is None else age_text(value, coarse=coarse)


def _health(check: CheckStatus) -> Content:
    if check.health is Health.DEGRADED and check.flapping:
        return Content.styled(f"{GLYPH[Health.DEGRADED]} flapping", COLOR[Health.DEGRADED])
    return health_content(check.health)


def cells(
    check: CheckStatus, widths: dict[str, int], *, last_known: bool = False, coarse: bool = False
) -> dict[str, Content | str]:
    """One row's cells; `last_known` marks a verdict held while noc is cut off, `coarse`
    counts the down-in countdown in steps of ten (low bandwidth; ages always are)."""
    last = check.last
    target = check.target
    error = "" if last is None or last.error is None else str(last.error)
    if last is None:
        error = "waiting for first answer"
    elif check.health is Health.DEGRADED:
        # The last probe may have passed: what makes the check degraded is the window.
        partial = f"{check.recent_failures}/{check.recent_probes} probes failed"
        error = f"{partial}: {error}" if error else partial
    fails = f"{check.consecutive_failures}/{target.failure_threshold}"
    row: dict[str, Content | str] = {
        "region": target.region_id,
        "check": Content(clip_check(target.name, widths["check"])),
        "health": (
            Content.styled(f"({health_word(check.health)})", "italic $foreground-muted")
            if last_known
            else _health(check)
        ),
        "http": "—" if last is None or last.status is None else str(last.status),
        "latency": "—" if last is None or last.latency_ms is None else f"{last.latency_ms:.0f}ms",
        "fails": Content.styled(fails, "bold $error") if check.consecutive_failures else fails,
        "down_in": _seconds(check.seconds_until_down, coarse),
        "error": Content.styled(
            clip_at_break(error, widths["error"]), "$text-error" if error else ""
        ),
        # Ages always in ten-second steps: a fresh result reads "<10s", and the rows
        # are not resent every second; the down-in countdown keeps its seconds.
        "age": _seconds(check.age_seconds, True),
    }
    return {key: value for key, value in row.items() if key in widths}


def smtp_cells(
    probe: SmtpStatus, widths: dict[str, int], *, last_known: bool = False
) -> dict[str, Content | str]:
    """One SMTP probe's row, in the HTTP checks' columns: the banner's code where an
    HTTP status goes, the session's time as latency, and for a passing probe its TLS
    version and the certificate's days left where a failing one shows its error."""
    last = probe.last
    target = probe.target
    if last is None:
        error, style = "waiting for first answer", "$text-error"
    elif last.error is not None:
        error, style = str(last.error), "$text-error"
    else:
        said = [last.tls_version or "no TLS"]
        if last.cert_days_left is not None:
            said.append(f"cert {last.cert_days_left:.0f} d")
        error, style = ", ".join(said), ""
    fails = f"{probe.consecutive_failures}/{target.failure_threshold}"
    total_ms = None if last is None or not last.ok else sum(ms for _, ms in last.phase_ms)
    row: dict[str, Content | str] = {
        "region": target.region_id,
        "check": Content(clip_check(f"smtp {target.display}", widths["check"])),
        "health": (
            Content.styled(f"({health_word(probe.health)})", "italic $foreground-muted")
            if last_known
            else health_content(probe.health)
        ),
        "http": "—" if last is None or last.banner_code is None else str(last.banner_code),
        "latency": "—" if total_ms is None else f"{total_ms:.0f}ms",
        "fails": Content.styled(fails, "bold $error") if probe.consecutive_failures else fails,
        "down_in": "—",
        "error": Content.styled(clip_at_break(error, widths["error"]), style),
        "age": _seconds(probe.age_seconds, True),
    }
    return {key: value for key, value in row.items() if key in widths}


class HealthTable(DataTable[Content | str]):
    DEFAULT_CSS = """
    HealthTable {
        height: 1fr;
        min-height: 4;
    }
    """

    class RegionHighlighted(Message):
        def __init__(self, region_id: str) -> None:
            super().__init__()
            self.region_id = region_id

    # Not repainted as a whole when a snapshot arrives: _fill repaints the cells it changes.
    snapshot: reactive[EstateSnapshot | None] = reactive(None, repaint=False)
    compact: reactive[bool] = reactive(False)
    _updating_cells = False

    def __init__(self, *, id: str | None = None, coarse_ages: bool = False) -> None:
        super().__init__(id=id, cursor_type="row", zebra_stripes=True)
        self.coarse_ages = coarse_ages
        self._widths: dict[str, int] = {}
        self._shown: dict[str, dict[str, Content | str]] = {}

    def on_mount(self) -> None:
        self._build_columns()

    def watch_compact(self) -> None:
        if self.is_mounted:
            self._rebuild()

    def watch_snapshot(self) -> None:
        self._fill()

    def on_resize(self) -> None:
        if self._error_width() != self._widths.get("error"):
            self._rebuild()

    def _rebuild(self) -> None:
        """New columns for a new width, keeping the highlighted row: it is the
        operator's failover target, and a resize must not change it."""
        selected = (
            self.coordinate_to_cell_key(self.cursor_coordinate).row_key if self.row_count else None
        )
        self._build_columns()
        self._fill()
        if selected is not None and selected in self.rows:
            self.move_cursor(row=self.get_row_index(selected))

    def _error_width(self) -> int:
        """The last error gets whatever the other columns leave."""
        others = [cw if self.compact else w for key, _, w, _, cw in COLUMNS if key != "error"]
        return remaining_width(
            self.size.width,
            (w for w in others if w is not None),
            ERROR_COMPACT_WIDTH if self.compact else ERROR_MIN_WIDTH,
        )

    def _build_columns(self) -> None:
        self.clear(columns=True)
        self._shown.clear()
        self._widths = {}
        for key, label, width, compact_label, compact_width in COLUMNS:
            shown: tuple[str, int | None] = (
                (compact_label, compact_width) if self.compact else (label, width)
            )
            if shown[1] is None:
                continue
            width = self._error_width() if key == "error" else shown[1]
            self._widths[key] = width
            self.add_column(shown[0], key=key, width=width)

    def _fill(self) -> None:
        """Add new rows and update only the cells whose text changed.

        When the checks themselves change (a check gone, renamed, or reordered: a
        configuration reload), the rows are rebuilt, so no row outlives its check."""
        if self.snapshot is None or not self._widths:
            return
        checks: list[CheckStatus | SmtpStatus] = []
        for region in self.snapshot.regions:
            checks += region.checks
            checks += region.smtp
        keys = [check.target.check_id for check in checks]
        if list(self._shown) != keys[: len(self._shown)]:
            self._rebuild()
            return
        changed: list[tuple[str, str, Content | str]] = []
        for check in checks:
            key = check.target.check_id
            if isinstance(check, SmtpStatus):
                row = smtp_cells(check, self._widths, last_known=self.snapshot.cut_off)
            else:
                row = cells(
                    check,
                    self._widths,
                    last_known=self.snapshot.cut_off,
                    coarse=self.coarse_ages,
                )
            before = self._shown.get(key)
            if before is None:
                self.add_row(*row.values(), key=key)
            else:
                changed.extend(
                    (key, column, value)
                    for column, value in row.items()
                    if not same_drawing(before.get(column), value)
                )
            self._shown[key] = row
        self._update_cells(changed)

    def _update_cells(self, changed: list[tuple[str, str, Content | str]]) -> None:
        """Change cells and repaint only their rows.

        DataTable.update_cell repaints the whole table, which resends every line of
        it (blank ones too) to the terminal: about 1.5 KB a second at 80x24 for an
        age ticking in each row, where the rows that changed are a few hundred bytes.
        """
        if not changed:
            return
        self._updating_cells = True
        try:
            for key, column, value in changed:
                self.update_cell(key, column, value)
        finally:
            self._updating_cells = False
        # update_cell bumps DataTable's update count, which is part of every render
        # cache key, but keeps the renders made under the old count: nothing can hit
        # them again, yet they stayed until the LRU caps (10,000 cells, 1,000 rows and
        # lines), a MiB a minute of a quiet dashboard. Every visible cell is rendered
        # afresh after an update anyway, so dropping them costs no extra rendering.
        self._clear_caches()
        # By row, not by cell: the terminal is sent a widget's whole line either way.
        for key in dict.fromkeys(key for key, _, _ in changed):
            self.refresh_row(self.get_row_index(key))

    def refresh(
        self,
        *regions: Region,
        repaint: bool = True,
        layout: bool = False,
        recompose: bool = False,
    ) -> Self:
        if self._updating_cells and not (regions or layout or recompose):
            return self  # update_cell's whole-table repaint: _update_cells does less
        return super().refresh(*regions, repaint=repaint, layout=layout, recompose=recompose)

    def on_data_table_row_highlighted(self, event: DataTable.RowHighlighted) -> None:
        key: RowKey = event.row_key
        if key.value:
            self.post_message(self.RegionHighlighted(key.value.split("/")[0]))
