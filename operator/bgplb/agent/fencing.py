"""Self-fencing, as one pure state machine.

Events in: a Lease renewal succeeded, one failed, the witnesses answered; time is
passed in. Out: a verdict for this node's floating IPs.

The controller moves a node's floating IPs once its Lease is `duration` old, so an
agent whose last renewal is `duration - margin` old must drop them first (an address
is then never live on two nodes, even across a partition from the API server) —
unless a quorum of witnesses shows the API server is down for everyone, in which
case nobody can move anything and dropping them would take the data plane down for
nothing. Whom to ask, and how answers are authenticated: witness.py.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace

from bgplb.agent.witness import Answer

SLACK = 0.2
"""Seconds a witness's renewal must follow this agent's first failure to count: the
two clocks only meet through a request's round trip."""


RENEW_EVERY = 1.0
"""Seconds between Lease renewals while they succeed."""
RETRY_AFTER_FAILURE = 0.05
"""Seconds before the next attempt after a failed renewal, while the deadline is ahead."""


class Verdict(enum.Enum):
    ALLOW = "allow"
    """Hold the floating IPs the controller assigned to this node."""
    KEEP = "keep"
    """Leave the interfaces as they are: a start, before the first renewal or verdict."""
    DROP = "drop"
    """Hold none: fenced, or recovering from a fence."""


def keep_floating_ips(
    answers: Mapping[str, Answer | None], known: int, settled: float, failing_for: float
) -> bool:
    """Whether witnesses show an API outage for everyone. `answers`: node → its
    verified answer (None: no answer, or not a valid one); `known`: how many other
    agents there are to ask. Keep only if

    - no witness shows the API server up for it: in contact for `settled` seconds and
      renewed within the `failing_for` seconds this agent has been failing (a renewal
      from before then predates the outage; contact for less than `settled` means the
      API server is just back, and the controller gives every node a fresh lease
      period then); and
    - a quorum answered: this agent and the answering witnesses are more than half of
      all known agents. A node cut off together with some peers, but not with most,
      fences: the controller (which sees fewer than half of the Leases stale) moves its
      IPs. With no other agent known it cannot tell an outage from isolation: fence.
    """
    heard = [a for a in answers.values() if a is not None]

    def api_up_for_it(a: Answer) -> bool:
        renewed_since_i_failed = a.renewed_ago is None or a.renewed_ago < failing_for - SLACK
        return a.reachable_for >= settled and renewed_since_i_failed

    if known == 0 or any(api_up_for_it(a) for a in heard):
        return False
    return 2 * (len(heard) + 1) > known + 1


@dataclass(frozen=True)
class Fencing:
    duration: float = 3.0
    """The Lease duration: the controller moves this node's IPs once it is this old."""
    margin: float = 1.0
    """How long before that the agent fences."""
    last_renewed: float | None = None
    contact_since: float | None = None
    """Since when every renewal has succeeded (None: the last one failed)."""
    failing_since: float | None = None
    """When the first failed renewal since the last success started (None: none)."""
    fenced: bool | None = None
    """None until the first renewal or witness verdict after a start."""
    recovered_at: float | None = None
    """The first renewal after a fence."""
    kept_by_witnesses: bool = False

    # --- events ----------------------------------------------------------------

    def renewed(self, now: float) -> Fencing:
        return replace(
            self,
            last_renewed=now,
            contact_since=now if self.contact_since is None else self.contact_since,
            failing_since=None,
            fenced=False,
            recovered_at=now if self.fenced else self.recovered_at,
            kept_by_witnesses=False,
        )

    def renewal_failed(self, started: float) -> Fencing:
        return replace(
            self,
            contact_since=None,
            failing_since=started if self.failing_since is None else self.failing_since,
        )

    def answered(self, answers: Mapping[str, Answer | None], known: int, now: float) -> Fencing:
        """The witnesses' answers, asked because `must_ask`. A renewal that succeeded
        while they were asked makes them moot."""
        if not self.overdue(now):
            return self
        failing_for = now - (self.failing_since or self.last_renewed or now)
        if keep_floating_ips(answers, known, self.duration - self.margin, failing_for):
            return replace(
                self, fenced=bool(self.fenced), kept_by_witnesses=True
            )  # a start with nothing known yet: the IPs it holds stay
        return replace(self, fenced=True, recovered_at=None, kept_by_witnesses=False)

    # --- questions ---------------------------------------------------------------

    def overdue(self, now: float) -> bool:
        """The last renewal is too old to hold floating IPs on its own say-so. Before
        a first renewal the agent cannot know its IPs were not moved meanwhile."""
        return self.last_renewed is None or now - self.last_renewed >= self.duration - self.margin

    def renew_by(self, now: float) -> float | None:
        """The deadline a renewal round may spend hedged attempts up to (hedge.py):
        the moment it fences. None when fenced, before a first renewal, or already
        past it: then one attempt at a time, no herd on a recovering API server."""
        if self.fenced is not False or self.last_renewed is None or self.overdue(now):
            return None
        return self.last_renewed + self.duration - self.margin

    def ask_at(self) -> float | None:
        """When `must_ask` next turns true without any other event (None: it is true
        now, or only a renewal can change it). The agent wakes then, not at its next
        renewal attempt: that may be up to a request timeout late."""
        if self.fenced is True or self.last_renewed is None:
            return None
        return self.last_renewed + self.duration - self.margin

    def renew_in(self, started: float, now: float) -> float:
        """Seconds until the next renewal attempt; the last one started at `started`.
        After a success, the usual interval. After a failure, at once while the
        deadline is still ahead: waiting out the interval put the next attempt on the
        deadline itself, so one lost renewal fenced (the soak's lossy link found it
        twice in ten minutes). Past the deadline or fenced, the usual interval again:
        no herd of retries on a recovering API server."""
        if self.failing_since is not None and self.fenced is not True and not self.overdue(now):
            return RETRY_AFTER_FAILURE
        return max(0.0, RENEW_EVERY - (now - started))

    def must_ask(self, now: float) -> bool:
        """Whether to ask the witnesses now (and fence on their answers)."""
        return self.fenced is not True and self.overdue(now)

    def verdict(self, now: float) -> Verdict:
        if self.fenced is None:
            return Verdict.KEEP
        if self.fenced:
            return Verdict.DROP
        # After a fence, wait one lease period: by then the controller has either
        # moved the IPs (and the inputs say so) or kept them here.
        if self.recovered_at is not None and now - self.recovered_at < self.duration:
            return Verdict.DROP
        return Verdict.ALLOW

    def reachable_for(self, now: float) -> float:
        """What this agent tells others that ask it as a witness: for how long it has
        been renewing its Lease without a failure (0: it cannot now)."""
        if self.contact_since is None or self.overdue(now):
            return 0.0
        return now - self.contact_since

    def renewed_ago(self, now: float) -> float | None:
        """What a witness also says: how long ago its last renewal succeeded."""
        return None if self.last_renewed is None else now - self.last_renewed
