"""Events: what to say, and how often — pure.

One node flap used to post two Events per Service ("advertising via 2 nodes", then
"via 3"): thousands for one fault. Now a Service's Event says only what changed for
it (advertised or not, its VIP); next-hop changes are said once, on the
BGPLoadBalancer, for all routes together; the same Event repeated is counted on the
first one (as client-go's EventCorrelator aggregates); and each object has a token
bucket, as client-go's spam filter does, so a flapping object cannot flood etcd.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from bgplb.core.routes import Route

AGGREGATE_SECONDS = 600.0
"""A repeat of the same Event within this long is counted on the first."""


def next_hop_changes(
    before: Mapping[str, Route], after: Mapping[str, Route], names: Mapping[IPv4Address, str]
) -> str:
    """One line for every next hop that left or joined routes present before and
    after (new and removed routes have their own Events); empty if none did."""
    left: dict[IPv4Address, int] = {}
    joined: dict[IPv4Address, int] = {}
    for key in before.keys() & after.keys():
        old, new = set(before[key].next_hops), set(after[key].next_hops)
        for hop in old - new:
            left[hop] = left.get(hop, 0) + 1
        for hop in new - old:
            joined[hop] = joined.get(hop, 0) + 1

    def said(hop: IPv4Address, count: int, verb: str) -> str:
        node = names.get(hop)
        who = f"{node} ({hop})" if node else str(hop)
        return f"{who} {verb} the next hops of {count} route{'s' if count != 1 else ''}"

    parts = [said(h, n, "left") for h, n in sorted(left.items())]
    parts += [said(h, n, "joined") for h, n in sorted(joined.items())]
    return "; ".join(parts)


def event_name(object_name: str, uid: str, reason: str, message: str) -> str:
    """The same Event about the same object gets the same name, so repeats can be
    counted on it (within the 253 characters of a name)."""
    digest = hashlib.sha256(f"{uid}/{reason}/{message}".encode()).hexdigest()[:16]
    return f"{object_name[:200]}.{digest}"


@dataclass
class Bucket:
    tokens: float
    updated: float


@dataclass
class EventLimiter:
    """Per-object token buckets (`burst` Events, then one per `refill_seconds`), and
    the Events already posted, for counting repeats."""

    burst: int = 10
    refill_seconds: float = 60.0
    buckets: dict[str, Bucket] = field(default_factory=dict)
    posted: dict[str, tuple[int, float]] = field(default_factory=dict)
    """Event name → (count, when first posted)."""

    def admit(self, uid: str, now: float) -> bool:
        bucket = self.buckets.get(uid)
        if bucket is None:
            bucket = self.buckets[uid] = Bucket(float(self.burst), now)
        bucket.tokens = min(
            float(self.burst), bucket.tokens + (now - bucket.updated) / self.refill_seconds
        )
        bucket.updated = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def repeat(self, name: str, now: float) -> int:
        """The count this Event now has: 1 for a first (or one posted long ago)."""
        count, first = self.posted.get(name, (0, now))
        if now - first > AGGREGATE_SECONDS:
            count, first = 0, now
        self.posted[name] = (count + 1, first)
        return count + 1

    def forget_before(self, now: float) -> None:
        """Drop what no longer matters, so memory stays bounded."""
        self.posted = {n: v for n, v in self.posted.items() if now - v[1] <= AGGREGATE_SECONDS}
        self.buckets = {
            k: b
            for k, b in self.buckets.items()
            if b.tokens + (now - b.updated) / self.refill_seconds < self.burst
        }
