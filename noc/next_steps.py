"""The next step of every alert and alert group, in the words of where it is read.

An operator reading an alert wants to know what to do. `[[alerts.rules]] hint` is
the estate's own word for a rule and always wins; otherwise each rule has a built-in
step, said per interface (as noc.model's `hint` says a remedy): the dashboard names
its keys (remapped ones as they are typed), the command line names `noc` commands,
and a page (read anywhere: a phone, a ticket) names the CLI's command, since that is
what on-call reaches first. Textual-free: the app, the notifier and `noc check` read it.
"""

from __future__ import annotations

from collections.abc import Mapping

from noc.model import Alert, Interface

# On the dashboard: short, what the operator can do from here. `{id}` names a key by
# its binding id, so a key remapped in [keys] is named as it is typed.
DASHBOARD_STEPS = {
    "region_down": "check the region's endpoints in the health table; fail over with "
    "{failover} if it stays down",
    "region_degraded": "see which checks fail in the health table; it becomes region_down if the "
    "rest fail",
    "noc_cut_off": "check this host's own network first: every verdict is last known",
    "estate_outage": "suspect what every check shares (this host's path, a load balancer, a "
    "deploy) before the regions",
    "data_stale": "polls are not coming back: the banner names dead poll loops; see noc.log",
    "split_brain": "the stores name different active regions: re-assert the flag from the "
    "palette (ctrl+p) once you know which is right",
    "active_unknown": "no flag store answers: restore a store's reachability before any failover",
    "source_unreachable": "check the store or metrics endpoint named in the summary",
    "replication_lag": "watch the lag chart ({lag_detail}); a failover now loses the writes not "
    "yet replicated",
    "replication_link_down": "the replica no longer follows its source: check the link in the lag "
    "chart ({lag_detail}) and the source's reachability; a failover to it "
    "loses writes",
    "suppression_unsynced": "see what each region lacks ({sync_detail}) and sync now ({sync_now})",
    "complaint_rate": "open deliverability ({deliverability_detail}) and find the campaign or "
    "sender behind the complaints",
    "dns_hijack": "check the answers in the DNS view ({dns_detail}) and the zone at the "
    "provider: a record points outside every region",
    "dns_flag_mismatch": "compare the DNS view ({dns_detail}) with the flag: an interrupted "
    "action? the palette (ctrl+p) offers recovery",
    "dns_disagree": "resolvers disagree, often a TTL still running out: check the DNS view "
    "({dns_detail})",
    "dns_unknown": "a resolver gives no usable answer: check it in the DNS view ({dns_detail})",
    "email_auth": "fix SPF/DKIM/DMARC/PTR for the region (DNS view, {dns_detail}) before "
    "moving mail there",
    "spf_fragile": "flatten or reorder the SPF record so no receiver walks into a permerror",
    "dnsbl_listed": "ask the blocklist for delisting; move sending off the listed IP meanwhile",
    "automated_failover": "its result and timeline: {last_result} on the dashboard; validate the "
    "new region, then fail back by hand ({failback}); {toggle_auto} re-arms "
    "the automation",
    "automation_held": "the failover dialog ({failover}) names the rule that holds it",
    "drill_overdue": "run the drill the summary names: noc drill run --mode MODE --region "
    "REGION --reason TEXT (noc drill schedule says which)",
    "queue_backlog": "see the queues in the mail flow view ({next_view}): a hold, or a "
    "destination deferring; a failback there waits for the deferred queue",
    "rejections": "see the rates in the mail flow view ({next_view}); check the MTA's log "
    "for the reply text behind the code",
    "mta_sts_mismatch": "publish an MTA-STS policy (new id) that names the live MX, or move the "
    "MX back inside it; the mail flow view ({next_view}) shows both",
    "smtp_down": "the region takes no mail even if its HTTP is fine: read the probe's "
    "error in the health table; fail over with {failover} if it stays down",
    "tls_broken": "senders that require TLS defer to this MX: check its STARTTLS and "
    "certificate (the health table's SMTP row says which)",
    "cert_expiry": "renew the certificate named in the summary before it expires",
    "canary_lost": "mail through this region does not reach the seed: check its queue and "
    "logs for the canary's token before trusting the region with traffic",
    "canary_slow": "mail through this region is late: look at its deferred queue and at the "
    "receiver's throttling",
    "canary_auth": "the receiver distrusts this region's mail: check its DKIM key and "
    "selector, SPF for its sending IP, and DMARC alignment",
}
DEFAULT_DASHBOARD_STEP = (
    "read the summary and the rule's meaning above; the health table shows the rest"
)

# On the command line, and in a page: `{region}` is the alert's region.
CLI_STEPS = {
    "region_down": "check {region}'s endpoints (`noc check`); "
    "fail over with `noc failover --to REGION --reason ...` if it stays down",
    "region_degraded": "see which checks of {region} fail (`noc check`); "
    "it becomes region_down if the rest fail",
    "noc_cut_off": "check the network of the host running noc first: every verdict is last known",
    "estate_outage": "suspect what every check shares (the noc host's path, a load balancer, "
    "a deploy) before the regions",
    "data_stale": "polls are not coming back: see noc.log in the state dir",
    "split_brain": "the stores name different active regions: `noc recover` re-asserts the "
    "majority's flag once you know which is right",
    "active_unknown": "no flag store answers: restore a store's reachability before any failover",
    "source_unreachable": "check the store or metrics endpoint named in the summary",
    "replication_lag": "a failover now loses the writes not yet replicated; "
    "`noc switchover` waits for the lag to drain",
    "replication_link_down": "the replica no longer follows its source: check the link and the "
    "source's reachability; a failover to it loses writes",
    "suppression_unsynced": "copy what the region lacks: `noc sync --from REGION --to {region}`",
    "complaint_rate": "find the campaign or sender behind the complaints (`noc check --json`, "
    "deliverability)",
    "dns_hijack": "check the zone at the provider: a record points outside every region",
    "dns_flag_mismatch": "DNS and the flag disagree: an interrupted action? "
    "`noc recover --dry-run`",
    "dns_disagree": "resolvers disagree, often a TTL still running out: `noc check --json`",
    "dns_unknown": "a resolver gives no usable answer: check it (`noc check --json`)",
    "email_auth": "fix SPF/DKIM/DMARC/PTR for {region} before moving mail there",
    "spf_fragile": "flatten or reorder the SPF record so no receiver walks into a permerror",
    "dnsbl_listed": "ask the blocklist for delisting; move sending off the listed IP meanwhile",
    "automated_failover": "validate the new region, then fail back by hand "
    "(`noc failback --to REGION --reason ...`)",
    "automation_held": "`noc failover --to REGION --dry-run` names the rule that holds it",
    "drill_overdue": "run the drill the summary names: `noc drill run --mode MODE --region "
    "REGION --reason TEXT` (`noc drill schedule` says which)",
    "queue_backlog": "look for a stuck relay or a deferring receiver in {region} "
    "(`noc check --json`, mta); a failover now strands its mail",
    "rejections": "see which codes {region} rejects with (`noc check --json`, mta)",
    "mta_sts_mismatch": "an MX outside the MTA-STS policy: fix the MX or the policy file",
    "smtp_down": "{region} takes no mail: check its SMTP service (`noc check`); "
    "fail over with `noc failover --to REGION --reason ...` if it stays down",
    "tls_broken": "senders requiring TLS will defer to {region}: check its certificate "
    "and STARTTLS (`noc check --json`, smtp)",
    "cert_expiry": "renew the certificate named in the summary before it expires",
    "canary_lost": "mail through {region} does not reach the seed: check its queue and logs "
    "for the canary's token (`noc check --json`, canary) before trusting it with traffic",
    "canary_slow": "mail through {region} is late: look at its deferred queue "
    "(`noc check --json`, mta) and at the receiver's throttling",
    "canary_auth": "the receiver distrusts {region}'s mail: check its DKIM key and selector, "
    "SPF for its sending IP, and DMARC alignment (`noc check --json`, canary)",
}
DEFAULT_CLI_STEP = "read the summary; `noc check --json` shows the rest"


class _Named(dict[str, str]):
    """Fills `{id}` from what is known and leaves the rest as the id itself."""

    def __missing__(self, name: str) -> str:
        return name


def next_step(
    alert: Alert, interface: Interface | None, keys: Mapping[str, str] | None = None
) -> str:
    """What to do about `alert`, said for `interface` (None: a page or a record)."""
    if alert.hint:
        return alert.hint
    return builtin_step(alert.rule, alert.region, interface, keys)


def builtin_step(
    rule: str,
    region: str | None,
    interface: Interface | None,
    keys: Mapping[str, str] | None = None,
) -> str:
    if interface is Interface.DASHBOARD:
        return DASHBOARD_STEPS.get(rule, DEFAULT_DASHBOARD_STEP).format_map(_Named(keys or {}))
    names = _Named({"region": region or "the region"})
    return CLI_STEPS.get(rule, DEFAULT_CLI_STEP).format_map(names)


# The name the alert views have always used for the dashboard's table.
NEXT_STEPS = DASHBOARD_STEPS
