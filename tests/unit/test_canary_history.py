"""Histories of canary results through the engine and the rules: whatever order sends,
arrivals, losses and unreadable mailboxes come in, the estate shows the latest verdict
per region and seed (a new canary in flight never hides it), and the alerts say what
that verdict says."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from hypothesis import given
from hypothesis import strategies as st

from noc.clock import FakeClock
from noc.config import NocConfig, parse_config
from noc.engine import Engine
from noc.model import AuthVerdict, CanarySample, CanaryState
from noc.rules import canary_conditions

SLOW_SECONDS = 60.0
SENT = datetime(2026, 12, 3, 19, 0, tzinfo=UTC)


def config() -> NocConfig:
    submission = {
        "host": "smtp.example.com",
        "username": "canary@example.com",
        "password_env": "NOC_CANARY",
        "from_address": "canary@example.com",
    }
    seed = {
        "address": "seed@seed.example",
        "imap_host": "imap.seed.example",
        "imap_user": "seed",
        "imap_password_env": "NOC_SEED",
        "slow_seconds": SLOW_SECONDS,
    }
    return parse_config(
        {
            "regions": [
                {"id": "ro", "role": "primary", "submission": submission},
                {"id": "bg", "submission": submission},
            ],
            "canary": [{"name": "gmail", **seed}, {"name": "yahoo", **seed}],
        }
    )


CONFIG = config()

samples = st.builds(
    lambda region, seed, state, latency, spam, dkim, outstanding, index: CanarySample(
        region=region,
        seed=seed,
        token=f"noc-{region}-{index}",
        state=state,
        at=float(index),
        sent_wall=SENT + timedelta(seconds=index),
        latency_seconds=latency if state is CanaryState.ARRIVED else None,
        folder=("spam" if spam else "inbox") if state is CanaryState.ARRIVED else None,
        mailbox=("Junk" if spam else "INBOX") if state is CanaryState.ARRIVED else None,
        auth=AuthVerdict(spf="pass", dkim=dkim, dmarc="pass")
        if state is CanaryState.ARRIVED
        else None,
        outstanding=outstanding,
        error=None if state in (CanaryState.ARRIVED, CanaryState.PENDING) else "why",
    ),
    st.sampled_from(["ro", "bg"]),
    st.sampled_from(["gmail", "yahoo"]),
    st.sampled_from(list(CanaryState)),
    st.floats(min_value=0, max_value=3 * SLOW_SECONDS),
    st.booleans(),
    st.sampled_from(["pass", "fail", None]),
    st.integers(min_value=0, max_value=4),
    st.integers(min_value=0, max_value=10_000),
)


def expected_rules(sample: CanarySample) -> set[str]:
    if sample.state in (CanaryState.LOST, CanaryState.FAILED):
        return {"canary_lost"}
    if sample.state is CanaryState.UNREAD:
        return {"source_unreachable"}
    if sample.state is CanaryState.PENDING:
        return set()
    rules = set()
    if (sample.latency_seconds or 0) > SLOW_SECONDS:
        rules.add("canary_slow")
    if sample.folder == "spam" or (sample.auth is not None and sample.auth.dkim != "pass"):
        rules.add("canary_auth")
    return rules


@given(st.lists(samples, max_size=40))
def test_the_latest_verdict_per_region_and_seed_is_shown_and_alerted(
    history: list[CanarySample],
) -> None:
    engine = Engine(CONFIG, FakeClock())
    latest: dict[tuple[str, str], CanarySample] = {}
    for sample in history:
        engine.ingest_canary(sample)
        key = (sample.region, sample.seed)
        if sample.state is not CanaryState.PENDING or key not in latest:
            latest[key] = sample
        else:  # in flight: the last verdict stays, with the new count awaited
            latest[key] = CanarySample(
                **{**_fields(latest[key]), "outstanding": sample.outstanding}
            )
        snapshot = engine.snapshot()
        shown = {(c.region, c.seed): c for c in snapshot.canary}
        assert shown == latest
        alerted: dict[tuple[str | None, str], set[str]] = {}
        for condition in canary_conditions(snapshot, CONFIG):
            seed = condition.id.rsplit(":", 1)[1]
            alerted.setdefault((condition.region, seed), set()).add(condition.rule)
        for key, verdict in latest.items():
            assert alerted.get(key, set()) == expected_rules(verdict), verdict


def _fields(sample: CanarySample) -> dict[str, object]:
    return {name: getattr(sample, name) for name in CanarySample.__slots__}
