"""Self-fencing, the pure state machine: events in, a verdict out; table-driven."""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from bgplb.agent.fencing import RETRY_AFTER_FAILURE, Fencing, Verdict, keep_floating_ips
from bgplb.agent.witness import Answer

DOWN = Answer(0.0)  # does not reach the API server either
UP = Answer(30.0, renewed_ago=0.3)  # reaches it, renewed after this agent began failing


def answers(*given: Answer | None) -> dict[str, Answer | None]:
    return {f"w{i}": a for i, a in enumerate(given)}


@pytest.mark.parametrize(
    ("given", "known", "keep"),
    [
        (answers(DOWN, DOWN, None), 3, True),  # down everywhere, 3 of 4 agents heard
        (answers(DOWN, UP), 2, False),  # someone reaches it: I am partitioned
        (answers(None, None), 2, False),  # nobody answers: I am isolated
        (answers(), 0, False),  # alone: cannot tell an outage from isolation
        (answers(DOWN, None), 2, True),  # 2 of 3: a quorum
        # Cut off with one peer of five: two of five is no quorum. The controller,
        # seeing two Leases of five stale, moves our IPs: fence.
        (answers(DOWN, None, None, None), 4, False),
        (answers(DOWN, DOWN, None, None), 4, True),  # three of five
        (answers(DOWN, None, None), 3, False),  # two of four: not more than half
        # An answer not counted by `known` (a stale list) still cannot make a quorum
        # of the agents that are known
        (answers(DOWN), 5, False),
    ],
)
def test_quorum(given: Mapping[str, Answer | None], known: int, keep: bool) -> None:
    assert keep_floating_ips(given, known, settled=2, failing_for=1.5) is keep


def test_witnesses_just_back_in_contact_mean_the_api_server_just_came_back() -> None:
    # Agents renew a second apart: the first back must not make the others fence.
    back = answers(Answer(0.4, 0.1), Answer(0.0, 60))
    assert keep_floating_ips(back, 2, settled=2, failing_for=60)
    settled = answers(Answer(2.5, 0.1), Answer(0.0, 60))
    assert not keep_floating_ips(settled, 2, settled=2, failing_for=60)


def test_a_witness_that_has_not_renewed_since_i_began_failing_proves_nothing() -> None:
    """Found on real kubelets (agents out of phase): the API server has just gone; a
    witness whose last renewal came before this agent's first failure still reports
    minutes of contact. Its renewal predates the outage: keep."""
    stale = Answer(reachable_for=300.0, renewed_ago=1.2)
    assert keep_floating_ips(answers(stale, Answer(0.0, 1.5)), 2, settled=2, failing_for=1.0)
    fresh = Answer(reachable_for=300.0, renewed_ago=0.4)  # renewed after: it is up
    assert not keep_floating_ips(answers(fresh), 1, settled=2, failing_for=1.0)
    # A witness that does not say when it renewed counts as in contact.
    assert not keep_floating_ips(answers(Answer(300.0)), 1, settled=2, failing_for=1.0)


# --- the state machine ------------------------------------------------------------

START = Fencing(duration=3.0, margin=1.0)
LIVE = START.renewed(100.0)


def test_a_start_keeps_what_the_node_holds_until_the_first_renewal() -> None:
    assert START.verdict(0.0) is Verdict.KEEP
    assert START.must_ask(0.0)  # never renewed: it cannot know its IPs were not moved
    assert START.renewed(0.0).verdict(0.0) is Verdict.ALLOW


def test_a_start_in_an_api_outage_keeps_on_a_quorum_and_drops_without() -> None:
    kept = START.renewal_failed(0.0).answered(answers(DOWN), 1, 0.5)
    assert kept.verdict(0.5) is Verdict.ALLOW
    assert kept.kept_by_witnesses
    dropped = START.renewal_failed(0.0).answered(answers(None), 1, 0.5)
    assert dropped.verdict(0.5) is Verdict.DROP


Step = tuple[str, float, tuple[dict[str, Answer | None], int] | None]


def run(steps: list[Step], state: Fencing = LIVE) -> list[Verdict]:
    """Apply events; after each, the verdict at its time."""
    verdicts = []
    for event, at, arg in steps:
        if event == "renewed":
            state = state.renewed(at)
        elif event == "failed":
            state = state.renewal_failed(at)
        elif event == "answers":
            assert state.must_ask(at), f"asked at {at} without need"
            assert arg is not None
            given, known = arg
            state = state.answered(given, known, at)
        verdicts.append(state.verdict(at))
    return verdicts


A, K, D = Verdict.ALLOW, Verdict.KEEP, Verdict.DROP


@pytest.mark.parametrize(
    ("steps", "verdicts"),
    [
        # renewals keep it allowed
        ([("renewed", 101.0, None), ("renewed", 102.0, None)], [A, A]),
        # partitioned: two failures, then the witnesses show the API server up → drop
        (
            [("failed", 101.0, None), ("failed", 102.0, None),
             ("answers", 102.0, (answers(UP, DOWN), 2))],
            [A, A, D],
        ),
        # whole-cluster outage: a quorum answers, none reaches it → keep, and ask again
        (
            [("failed", 101.0, None), ("answers", 102.0, (answers(DOWN, DOWN), 2)),
             ("failed", 103.0, None), ("answers", 103.0, (answers(DOWN, DOWN), 2))],
            [A, A, A, A],
        ),
        # kept, then the others come back before us and have settled → drop
        (
            [("answers", 102.0, (answers(DOWN, DOWN), 2)),
             ("answers", 106.0, (answers(Answer(2.5, 0.2), DOWN), 2))],
            [A, D],
        ),
        # fenced, renewed again: still dropped for one lease period, then allowed
        (
            [("answers", 102.0, (answers(None, None), 2)), ("renewed", 110.0, None),
             ("renewed", 112.9, None), ("renewed", 113.0, None)],
            [D, D, D, A],
        ),
    ],
)  # fmt: skip
def test_sequences(steps: list[Step], verdicts: list[Verdict]) -> None:
    assert run(steps) == verdicts


def test_asks_only_when_overdue_and_not_fenced() -> None:
    assert not LIVE.must_ask(101.9)
    assert LIVE.must_ask(102.0)  # duration - margin after the last renewal
    fenced = LIVE.answered(answers(None), 1, 102.0)
    assert not fenced.must_ask(103.0)  # its IPs are gone already


def test_asks_exactly_when_overdue() -> None:
    assert LIVE.ask_at() == 102.0
    assert LIVE.renewed(101.5).ask_at() == 103.5
    assert LIVE.renewal_failed(101.0).ask_at() == 102.0  # a failure does not move it
    assert LIVE.answered(answers(None), 1, 102.0).ask_at() is None  # fenced


def test_answers_after_a_renewal_that_landed_meanwhile_change_nothing() -> None:
    asked = LIVE.renewal_failed(101.0)
    assert asked.must_ask(102.0)
    renewed = asked.renewed(102.1)
    assert renewed.answered(answers(None), 1, 102.3) == renewed
    assert renewed.answered(answers(None), 1, 102.3).verdict(102.3) is Verdict.ALLOW


def test_what_it_tells_other_agents() -> None:
    state = START.renewed(100.0).renewed(101.0)
    assert state.reachable_for(101.5) == pytest.approx(1.5)
    assert state.renewed_ago(101.5) == pytest.approx(0.5)
    assert state.reachable_for(103.0) == 0.0  # overdue: it does not reach the API server now
    assert state.renewal_failed(101.2).reachable_for(101.5) == 0.0
    assert START.renewed_ago(0.0) is None


def test_a_failed_renewal_is_retried_at_once_while_the_deadline_is_ahead() -> None:
    """The soak: a renewal timed out 1.8 s after the last success (sent at 101.0);
    the next, a second later, came at the deadline (102.0) itself and the agent
    fenced on one lost renewal. Now it is retried at once."""
    failed = LIVE.renewal_failed(101.0)
    assert failed.renew_in(started=101.0, now=101.8) == RETRY_AFTER_FAILURE
    # Past the deadline, or fenced: the usual cadence (no herd on the API server).
    assert failed.renew_in(started=102.1, now=102.2) == pytest.approx(0.9)
    fenced = failed.answered({}, 0, 102.0)
    assert fenced.renew_in(started=101.0, now=101.5) == pytest.approx(0.5)
    # Renewing fine: once a second.
    assert LIVE.renew_in(started=100.0, now=100.3) == pytest.approx(0.7)


def test_renewals_are_hedged_only_up_to_the_fencing_deadline() -> None:
    """hedge.py may spend attempts until the moment the agent would fence; not when
    fenced, before the first renewal, or already past it."""
    assert LIVE.renew_by(101.0) == pytest.approx(LIVE.last_renewed + 2.0)  # type: ignore[operator]
    assert LIVE.renew_by(102.5) is None
    assert Fencing().renew_by(0.0) is None
    assert LIVE.renewal_failed(101.0).answered({}, 0, 102.0).renew_by(102.5) is None
