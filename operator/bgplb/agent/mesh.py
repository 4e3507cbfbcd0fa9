"""Which nodes the agents' mesh holds for dead, as one pure state machine.

Lease expiry takes the controller 3 s to notice a dead load-balancer node. The agents
probe each other directly (probe.py: signed UDP every 100 ms) and each answer
carries the answering agent's own suspects, so every agent knows, within a few
probes, how many of the others have lost a node. A node is held for dead once a
quorum of the agents that could probe it agree, for two probes running — its own
bad link to one agent, or one agent's bad link, withdraws nothing — and the agent
then leaves it out of the
next hops it advertises, before its Lease expires. The controller, converging later
on the same next hops, changes nothing more. A node held for dead comes back only
after the quorum has seen it alive for a hold-down, so a flapping node is not re-added
on every answer.

Silence is counted in probes, not in time: a peer is silent when this agent sent it
LOST_PROBES probes in a row and the first of them has gone unanswered for
SILENT_AFTER. An agent that was itself stalled (CPU starved, its whole machine
paused) sent nothing meanwhile, so it holds nobody silent for it, and the suspects
it reports the moment it wakes are empty rather than everyone. (Counted in time,
a machine-wide pause of half a second made every agent suspect every other on
waking, and the stale suspects in their first answers held every node for dead:
seen in the soak run in CI.)

Events in: probes sent, a verified answer (who, its suspects), the peers known;
time passed in. Out: the nodes held for dead.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from ipaddress import IPv4Address

from bgplb.api import BGPAdvertisedRouteSpec

INTERVAL = 0.1
"""Seconds between probes of each peer."""
SILENT_AFTER = 0.35
"""A peer is a suspect once the first probe it left unanswered is this old (0.45 s
after its last answer at most, probing every 100 ms)..."""
LOST_PROBES = 4
"""...and at least this many probes in a row went unanswered: four lost, not one or
two. On a link losing 5 % each way a probe or its answer is lost about 1 time in 10,
four in a row about once in 11,000 probes (once in ~20 minutes per prober): one
prober's suspicion, which withdraws nothing without a quorum."""
NEVER_HEARD_AFTER = 10.0
"""A peer this agent has never heard is a suspect only this long after it became
known: a new agent is listed (from its first Lease renewal) before it answers, and
holding a node that is still starting for dead withdraws its next hop for nothing
(seen in the lab: every new agent was held for dead for the hold-down)."""
CONFIRM = 0.2
"""A quorum must hold this long (two probe intervals) before it is a verdict. After
a stall of the whole lab's network every agent really was silent to every other,
and the first answers after it say so: those suspects are stale one probe later,
when the next answers come (seen in CI's soak, run 8: every node held for dead at
once). A dead node stays silent, so this costs a real failure 0.2 s."""
HOLD_DOWN = 3.0
"""A node held for dead must be seen alive by the quorum this long to come back."""


@dataclass(frozen=True)
class Mesh:
    me: str
    known_since: Mapping[str, float] = field(default_factory=dict)
    """Peer → when this agent first knew of it (a new peer is not suspected at once)."""
    heard: Mapping[str, float] = field(default_factory=dict)
    """Peer → when its last verified answer came."""
    their_suspects: Mapping[str, frozenset[str]] = field(default_factory=dict)
    """Peer → the nodes its last answer said it had lost."""
    dead: frozenset[str] = frozenset()
    """Held for dead: left out of the next hops."""
    alive_since: Mapping[str, float] = field(default_factory=dict)
    """Held-for-dead node → since when the quorum no longer says so."""
    dead_since: Mapping[str, float] = field(default_factory=dict)
    suspected_since: Mapping[str, float] = field(default_factory=dict)
    """Node not yet held for dead → since when the quorum has said it is (CONFIRM)."""
    unanswered: Mapping[str, tuple[float, int]] = field(default_factory=dict)
    """Peer → (when the first probe since its last answer went, how many went)."""
    last_probe: float | None = None
    """When this agent last sent its probes."""
    paused_until: Mapping[str, float] = field(default_factory=dict)
    """Peer → until when its silence means nothing: its agent is restarting (it said
    so as it stopped, as it holds its Lease for the next agent)."""

    # --- events ----------------------------------------------------------------

    def peers(self, nodes: Iterable[str], now: float) -> Mesh:
        """The peers to probe now (the other agents, from the gateway status)."""
        wanted = set(nodes) - {self.me}
        known = {n: self.known_since.get(n, now) for n in sorted(wanted)}
        return replace(
            self,
            known_since=known,
            heard={n: t for n, t in self.heard.items() if n in wanted},
            their_suspects={n: s for n, s in self.their_suspects.items() if n in wanted},
            dead=self.dead & wanted,
            alive_since={n: t for n, t in self.alive_since.items() if n in wanted},
            dead_since={n: t for n, t in self.dead_since.items() if n in wanted},
            suspected_since={n: t for n, t in self.suspected_since.items() if n in wanted},
            unanswered={n: u for n, u in self.unanswered.items() if n in wanted},
            paused_until={n: t for n, t in self.paused_until.items() if n in wanted},
        )

    def probed(self, nodes: Iterable[str], now: float) -> Mesh:
        """A probe went to each of `nodes`."""
        unanswered = dict(self.unanswered)
        for node in nodes:
            if node in self.known_since:
                first, count = unanswered.get(node, (now, 0))
                unanswered[node] = (first, count + 1)
        return replace(self, unanswered=unanswered, last_probe=now)

    def answered(self, node: str, suspects: Iterable[str], now: float) -> Mesh:
        if node not in self.known_since:
            return self
        return replace(
            self,
            heard={**self.heard, node: now},
            their_suspects={**self.their_suspects, node: frozenset(suspects) - {node}},
            unanswered={n: u for n, u in self.unanswered.items() if n != node},
        )

    def paused(self, node: str, until: float) -> Mesh:
        if node not in self.known_since:
            return self
        return replace(self, paused_until={**self.paused_until, node: until})

    def tick(self, now: float) -> Mesh:
        """Re-decide who is held for dead."""
        dead, alive_since, dead_since = set(self.dead), dict(self.alive_since), {}
        suspected_since = {}
        for node in self.known_since:
            if self.quorum_says_dead(node, now):
                since = self.suspected_since.get(node, now)
                if node not in dead and now - since < CONFIRM - 1e-9:
                    suspected_since[node] = since
                    continue
                dead.add(node)
                alive_since.pop(node, None)
                dead_since[node] = self.dead_since.get(node, now)
            elif node in dead:
                since = alive_since.setdefault(node, now)
                if now - since >= HOLD_DOWN:
                    dead.discard(node)
                    alive_since.pop(node)
                else:
                    dead_since[node] = self.dead_since[node]
        return replace(
            self,
            dead=frozenset(dead),
            alive_since=alive_since,
            dead_since=dead_since,
            suspected_since=suspected_since,
        )

    # --- questions ---------------------------------------------------------------

    def silent(self, node: str, now: float) -> bool:
        paused = self.paused_until.get(node, 0.0)
        first, count = self.unanswered.get(node, (now, 0))
        if now < paused or count < LOST_PROBES:
            return False
        if node not in self.heard:
            since = self.known_since.get(node, now)
            return now - max(since, paused) >= NEVER_HEARD_AFTER
        return now - max(first, paused) >= SILENT_AFTER

    def suspects(self, now: float) -> frozenset[str]:
        """What this agent tells the others it has lost."""
        return frozenset(n for n in self.known_since if self.silent(n, now))

    def quorum_says_dead(self, node: str, now: float) -> bool:
        """More than half of the agents that probe `node` (every agent but it, this
        one included) have lost it. An agent this one cannot hear casts no vote: it
        may be the one cut off. So an agent cut off from everyone declares nothing
        (its own vote is no majority once there are three agents or more)."""
        if now < self.paused_until.get(node, 0.0):
            return False  # it said (signed) it is restarting: a peer that missed that may not
        probers = [n for n in self.known_since if n != node]
        return 2 * len(self.voters(node, now)) > len(probers) + 1

    def voters(self, node: str, now: float) -> list[str]:
        """The agents that have lost `node`, as this one sees it: itself if `node` is
        silent to it, and every other prober it can hear whose last answer said so."""
        out = [self.me] if self.silent(node, now) else []
        for prober in self.known_since:
            if prober == node or self.silent(prober, now):
                continue
            if node in self.their_suspects.get(prober, ()):
                out.append(prober)
        return out


def without_dead_next_hops(
    routes: Iterable[BGPAdvertisedRouteSpec], dead: Iterable[IPv4Address]
) -> tuple[BGPAdvertisedRouteSpec, ...]:
    """Routes with the dead nodes' next hops left out — except where that would leave
    a route none: a VIP stays on the fabric through whatever the controller last
    said, rather than be withdrawn on the mesh's word alone."""
    gone = set(dead)
    out = []
    for route in routes:
        alive = [h for h in route.next_hops if h not in gone]
        keep = alive and len(alive) < len(route.next_hops)
        out.append(route.model_copy(update={"next_hops": alive}) if keep else route)
    return tuple(out)
