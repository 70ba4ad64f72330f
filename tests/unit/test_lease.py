"""The lease's rule book (noc.lease), as a Hypothesis state machine: agents ask for
the lease, renew it, pause (time passes while they do nothing), and write with their
token, into the control plane and into a region store.

Promises checked after every step:
- at most one agent believes it leads (by its own clock) at any moment;
- tokens only grow, one per term;
- the control plane accepts a write only from the newest term, and a store's
  accepted writes never go back to an older term;
- an agent that believes it leads is never refused (the fence refuses only the
  deposed).
"""

from __future__ import annotations

from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from noc.lease import Belief, Holder, LeaseModel, fence_allows

AGENTS = ("a", "b", "c")
LEASE = 10.0


class LeaseMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0
        self.model = LeaseModel()
        self.beliefs: dict[str, Belief] = {}
        self.tokens: list[int] = []
        self.store_highest = 0
        self.store_accepted: list[int] = []
        self.terms: dict[str, int] = {}  # the last token each agent held

    @rule(seconds=st.floats(min_value=0, max_value=2 * LEASE, allow_nan=False))
    def time_passes(self, seconds: float) -> None:
        self.now += seconds

    @rule(agent=st.sampled_from(AGENTS))
    def ask(self, agent: str) -> None:
        if agent in self.beliefs:
            return
        holder = self.model.acquire(agent, f"t{self.now}", self.now, LEASE)
        if holder is not None:
            assert not self.tokens or holder.token > self.tokens[-1]
            self.tokens.append(holder.token)
            self.beliefs[agent] = Belief(holder, self.now, LEASE)
            self.terms[agent] = holder.token

    @rule(agent=st.sampled_from(AGENTS))
    def renew(self, agent: str) -> None:
        belief = self.beliefs.get(agent)
        if belief is None:
            return
        if self.model.renew(belief.holder, self.now, LEASE):
            self.beliefs[agent] = Belief(belief.holder, self.now, LEASE)
        else:
            del self.beliefs[agent]

    @rule(agent=st.sampled_from(AGENTS))
    def resign(self, agent: str) -> None:
        belief = self.beliefs.pop(agent, None)
        if belief is not None:
            self.model.release(belief.holder, self.now)

    @precondition(lambda self: bool(self.terms))
    @rule(data=st.data())
    def write(self, data: st.DataObject) -> None:
        """Any agent that ever led writes with its last token: a deposed one too (its
        write was delayed past its term)."""
        agent = data.draw(st.sampled_from(sorted(self.terms)))
        token = self.terms[agent]
        believed = agent in self.beliefs and self.beliefs[agent].valid(self.now)
        control_ok = self.model.fenced_write_allowed(token)
        store_ok = fence_allows(self.store_highest, token)
        if believed:
            assert control_ok and store_ok, (agent, token, self.model)
        if control_ok:
            assert token == self.tokens[-1]
        if store_ok:
            self.store_highest = max(self.store_highest, token)
            self.store_accepted.append(token)

    @invariant()
    def one_believer(self) -> None:
        believers = [a for a, b in self.beliefs.items() if b.valid(self.now)]
        assert len(believers) <= 1, (believers, self.now, self.beliefs)
        if believers:
            assert self.model.current(self.now) == self.beliefs[believers[0]].holder

    @invariant()
    def store_never_goes_back(self) -> None:
        assert self.store_accepted == sorted(self.store_accepted)


TestLease = LeaseMachine.TestCase


def test_holder_text_round_trip() -> None:
    text = '{"vantage":"a","token":3,"since":"2026-12-03T10:00:00+00:00"}'
    holder = Holder.from_text(text)
    assert holder == Holder("a", 3, "2026-12-03T10:00:00+00:00")
    assert holder is not None and holder.text == text
    assert Holder.from_text("garbage") is None
