"""DNS truth on the overview: where each failover record points, by how many resolvers,
and whether every region's mail would pass authentication and stay off blocklists."""

from __future__ import annotations

from textual.app import RenderResult
from textual.content import Content
from textual.reactive import reactive
from textual.widget import Widget

from noc.model import DnsConsensus, EstateSnapshot


def consensus_words(consensus: DnsConsensus, active: str | None) -> Content:
    short = consensus.name.rstrip(".").split(".")[0]
    if consensus.region is None:
        return Content.styled(f"✗ {short} → no region", "bold $error")
    text = f"{short} → {consensus.region} on {consensus.share}"
    if consensus.others:
        ttls = [ttl for _, _, ttl in consensus.others if ttl is not None]
        text += f", {len(consensus.others)} elsewhere" + (f" (TTL {max(ttls)}s)" if ttls else "")
    if active and consensus.region != active:
        return Content.styled(f"⚠ {text} ≠ flag {active}", "bold $error")
    style = "$warning" if consensus.others else "$success"
    return Content.styled(("▲ " if consensus.others else "✓ ") + text, style)


def reputation_words(snapshot: EstateSnapshot) -> Content:
    failing = sorted(
        {a.region for a in snapshot.email_auth
         if False in (a.spf.ok, a.dkim.ok, a.dmarc.ok, a.ptr.ok)}
    )  # fmt: skip
    listed = sorted({d.region for d in snapshot.dnsbl if d.listed})
    parts: list[Content] = []
    if snapshot.email_auth:
        parts.append(
            Content.styled(f"✗ auth fails: {', '.join(failing)}", "bold $error")
            if failing
            else Content.styled("✓ auth", "$success")
        )
    if snapshot.dnsbl:
        parts.append(
            Content.styled(f"✗ listed: {', '.join(listed)}", "bold $error")
            if listed
            else Content.styled("✓ not listed", "$success")
        )
    return Content("  ").join(parts)


def dns_line(snapshot: EstateSnapshot) -> Content:
    parts = [consensus_words(c, snapshot.active_region) for c in snapshot.consensus]
    reputation = reputation_words(snapshot)
    if reputation.plain:
        parts.append(reputation)
    return Content.assemble(Content.styled("DNS  ", "bold"), Content("  ").join(parts))


class DnsSummary(Widget):
    DEFAULT_CSS = """
    DnsSummary {
        height: 1;
        display: none;
    }
    DnsSummary.-shown {
        display: block;
    }
    """

    # Repainted only when its words change: every repaint is bytes down an SSH link.
    snapshot: reactive[EstateSnapshot | None] = reactive(None, repaint=False)
    _line = Content("")

    def watch_snapshot(self, snapshot: EstateSnapshot | None) -> None:
        shown = snapshot is not None and bool(
            snapshot.consensus or snapshot.email_auth or snapshot.dnsbl
        )
        self.set_class(shown, "-shown")
        line = dns_line(snapshot) if snapshot is not None else Content("")
        if line != self._line:
            self._line = line
            self.refresh()

    def render(self) -> RenderResult:
        return self._line
