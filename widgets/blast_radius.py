"""What an action will change and put at risk, shown before the confirming key works.

Each row is a label and a value; a long value wraps under its own column (not
under the label), so at 80 columns a record change still reads as one item.
"""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import RenderResult
from textual.content import Content
from textual.geometry import Size
from textual.widget import Widget

from noc.model import BlastRadius, DataRisk, RecordChange

LABEL_WIDTH = 14  # "Data at risk" and two spaces
NO_BREAK = "\u00a0"
# Content.wrap breaks at no-break spaces too (they match \s): a private-use character
# stands in for them while wrapping, then becomes a plain space (copied text stays plain).
_GLUE = "\ue000"


def is_empty(blast: BlastRadius) -> bool:
    """Nothing changes in DNS and nothing was measured: a flag-only estate."""
    return not (blast.changes or blast.sending_ips or blast.data_at_risk) and (
        blast.complaint_rate is None and blast.unsynced_suppression is None
    )


def unbroken(text: str) -> str:
    """No-break spaces: a wrapped row breaks between values, never inside "10 mx.bg"."""
    return text.replace(" ", NO_BREAK)


def change_words(change: RecordChange) -> Content:
    name = unbroken(f"{change.name.rstrip('.')} {change.rtype.value}")
    old = ", ".join(unbroken(v) for v in change.old) or "(none)"
    if not change.changed:
        return Content.assemble(name, "  ", old, Content.styled("  unchanged", "$foreground-muted"))
    ttl = unbroken(f"TTL {change.ttl} s")
    # The resolvers' remaining TTL, not the record's: how long clients really keep the old answer.
    if change.remaining_ttl is not None:
        ttl += " " + unbroken(f"(clients move within {change.remaining_ttl} s)")
    return Content.assemble(
        (name, "bold"),
        "  ",
        old,
        (" → ", "bold"),
        new_words(change),
        "  ",
        (ttl, "$foreground-muted"),
    )


def new_words(change: RecordChange) -> Content:
    """The RRset after the change: arriving values bold, kept ones muted and marked so."""
    if not change.new:
        return Content.styled("(none)", "bold")
    kept = set(change.kept)
    return Content(", ").join(
        Content.styled(
            unbroken(change.value_words(v)), "$foreground-muted" if v in kept else "bold"
        )
        for v in change.new
    )


def ip_words(ip: str, state: str) -> Content:
    if state.startswith("LISTED"):
        return Content.styled(f"{ip} {state}", "bold $error")
    if state == "clean":
        return Content.assemble(ip, " ", ("clean", "$success"))
    return Content.assemble(ip, " ", (state, "$warning"))


def risk_words(risk: DataRisk) -> Content:
    if risk.lag_seconds is None:
        return Content.styled(
            f"{risk.data_class}  lag unknown (RPO {risk.rpo_seconds:g} s)", "$warning"
        )
    floor = "at least " if risk.is_floor else ""
    lag = f"{risk.data_class}  {floor}{risk.lag_seconds:.1f} s of writes"
    if risk.within:
        return Content.assemble(lag, (f", within the {risk.rpo_seconds:g} s RPO", "$success"))
    return Content.styled(f"{lag}: OVER the {risk.rpo_seconds:g} s RPO", "bold $error")


def complaint_words(blast: BlastRadius) -> Content:
    rate = blast.complaint_rate
    if rate is None:
        return Content.styled(blast.complaint_headroom, "$foreground-muted")
    style = "bold $error" if rate >= blast.complaint_limit else ""
    return Content.styled(blast.complaint_headroom, style)


def suppression_words(unsynced: int, target: str | None) -> Content:
    where = f" in {target}" if target else ""
    if unsynced == 0:
        return Content.styled(f"every suppressed address is already{where}", "$success")
    plural = "address" if unsynced == 1 else "addresses"
    return Content.styled(
        f"{unsynced:,} suppressed {plural} missing{where} would be mailed against their will",
        "bold $warning",
    )


def only_flag_line(actuators: Sequence[str]) -> Content:
    runs = [a for a in actuators if a != "flag"]
    also = f" and the {', '.join(runs)} actuator runs" if runs else ""
    return Content(f"Only the failover flag changes{also} (no DNS actuator configured).")


def hanging(
    rows: Sequence[tuple[Content, Content]], label_width: int, width: int | None = None
) -> list[Content]:
    """Label and value per row; given a width, a long value wraps under its own column.

    A no-break space in a value (see `unbroken`) is a place the wrap never breaks.
    """
    lines: list[Content] = []
    for label, value in rows:
        prefix = label.pad_right(max(0, label_width - label.cell_length))
        if width is None:
            lines.append(_spaced(prefix + value))
        elif width < label_width + 20:  # too narrow to hang a column: plain wrapping
            lines += [_spaced(line) for line in _glued(prefix + value).wrap(max(1, width))]
        else:
            wrapped = [_spaced(line) for line in _glued(value).wrap(width - label_width)]
            lines.append(prefix + (wrapped[0] if wrapped else Content("")))
            lines += [Content(" " * label_width) + more for more in wrapped[1:]]
    return lines


def _glued(content: Content) -> Content:
    return Content(content.plain.replace(NO_BREAK, _GLUE), list(content.spans))


def _spaced(content: Content) -> Content:
    plain = content.plain.replace(_GLUE, " ").replace(NO_BREAK, " ")
    return Content(plain, list(content.spans))


def blast_rows(
    blast: BlastRadius, actuators: Sequence[str], target: str | None = None
) -> list[tuple[str, Content]]:
    """(label, value) rows; a label of "" continues the row above."""
    rows: list[tuple[str, Content]] = []
    if "dns" in actuators:
        if blast.changes:
            rows += [
                ("DNS" if i == 0 else "", change_words(c)) for i, c in enumerate(blast.changes)
            ]
        else:
            rows.append(("DNS", Content.styled("no record to change (see the rules)", "$warning")))
    else:
        rows.append(
            ("DNS", Content.styled("not moved: no DNS actuator configured", "$foreground-muted"))
        )
    if blast.sending_ips:
        ips = Content(", ").join(ip_words(ip, state) for ip, state in blast.sending_ips)
        rows.append(("Sending IPs", ips))
    rows.append(("Complaints", complaint_words(blast)))
    rows += [
        ("Data at risk" if i == 0 else "", risk_words(r)) for i, r in enumerate(blast.data_at_risk)
    ]
    if blast.unsynced_suppression is not None:
        rows.append(("Suppression", suppression_words(blast.unsynced_suppression, target)))
    left = blast.queue_left_behind
    if left is not None:
        queued = blast.source_queue is not None and bool(blast.source_queue.queue_deferred)
        rows.append(("Mail queue", Content.styled(left, "$warning" if queued else "")))
    return rows


def blast_radius_content(
    blast: BlastRadius,
    actuators: Sequence[str] = ("flag",),
    target: str | None = None,
    width: int | None = None,
) -> Content:
    """The blast radius as lines; given a width, long values wrap under their column."""
    heading = Content.styled("Blast radius", "bold")
    if is_empty(blast) and "dns" not in actuators:
        return Content("\n").join([heading, only_flag_line(actuators)])
    rows = [(Content(label), value) for label, value in blast_rows(blast, actuators, target)]
    return Content("\n").join([heading, *hanging(rows, LABEL_WIDTH, width)])


class RowsView(Widget):
    """Content whose lines depend on the width: the base of the hanging-indent views.

    Textual measures a widget's height before it renders it, so both go through
    `lines(width)`; a subclass says what the lines are.
    """

    DEFAULT_CSS = """
    RowsView {
        height: auto;
    }
    """

    def lines(self, width: int) -> Content:
        raise NotImplementedError

    def get_content_height(self, container: Size, viewport: Size, width: int) -> int:
        return len(self.lines(width).split("\n")) if width else 0

    def render(self) -> RenderResult:
        return self.lines(self.size.width)


class BlastRadiusView(RowsView):
    """The blast radius of a plan: its DNS changes, sending IPs, complaints, data at risk.

    `actuators` (the plan's, in order) says whether DNS moves at all, and `target`
    names the region in the suppression line.
    """

    def __init__(
        self,
        blast: BlastRadius,
        actuators: Sequence[str] = ("flag",),
        target: str | None = None,
        *,
        id: str | None = None,
        classes: str | None = None,
    ) -> None:
        super().__init__(id=id, classes=classes)
        self.blast = blast
        self.actuators = tuple(actuators)
        self.target = target

    def show(
        self, blast: BlastRadius, actuators: Sequence[str] = ("flag",), target: str | None = None
    ) -> None:
        self.blast, self.actuators, self.target = blast, tuple(actuators), target
        self.refresh(layout=True)

    def lines(self, width: int) -> Content:
        return blast_radius_content(self.blast, self.actuators, self.target, width)
