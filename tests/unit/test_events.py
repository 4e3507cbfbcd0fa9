"""Events: one line for a node flap, repeats counted, a per-object rate limit."""

from __future__ import annotations

from ipaddress import IPv4Address, IPv4Network

from bgplb.controller.events import AGGREGATE_SECONDS, EventLimiter, event_name, next_hop_changes
from bgplb.core.routes import Route

A, B, C = IPv4Address("192.0.2.11"), IPv4Address("192.0.2.12"), IPv4Address("192.0.2.13")


def route(*hops: IPv4Address) -> Route:
    return Route(IPv4Network("203.0.113.1/32"), tuple(sorted(hops)))


def test_a_node_leaving_a_thousand_routes_is_one_line() -> None:
    before = {f"ns/s{i}": route(A, B, C) for i in range(1000)}
    after = {f"ns/s{i}": route(A, B) for i in range(1000)}
    names = {C: "n3"}
    assert next_hop_changes(before, after, names) == (
        "n3 (192.0.2.13) left the next hops of 1000 routes"
    )
    assert next_hop_changes(after, before, names) == (
        "n3 (192.0.2.13) joined the next hops of 1000 routes"
    )
    assert next_hop_changes(before, before, names) == ""
    # new and removed routes are not next-hop changes (they have Events of their own)
    assert next_hop_changes({}, after, names) == ""


def test_the_same_event_has_the_same_name_and_its_repeats_are_counted() -> None:
    name = event_name("web", "uid-1", "Advertising", "advertising 203.0.113.1")
    assert name == event_name("web", "uid-1", "Advertising", "advertising 203.0.113.1")
    assert name != event_name("web", "uid-1", "NotAdvertised", "advertising 203.0.113.1")
    assert len(event_name("x" * 300, "u", "r", "m")) <= 253
    limiter = EventLimiter()
    assert [limiter.repeat(name, t) for t in (0.0, 1.0, 2.0)] == [1, 2, 3]
    assert limiter.repeat(name, AGGREGATE_SECONDS + 1) == 1  # long after: a new one


def test_each_object_has_a_burst_then_one_a_minute() -> None:
    limiter = EventLimiter(burst=3, refill_seconds=60)
    assert [limiter.admit("svc", 0.0) for _ in range(4)] == [True, True, True, False]
    assert limiter.admit("other", 0.0)  # another object has its own bucket
    assert not limiter.admit("svc", 30.0)
    assert limiter.admit("svc", 61.0)
    assert not limiter.admit("svc", 62.0)


def test_memory_stays_bounded() -> None:
    limiter = EventLimiter(burst=2, refill_seconds=1)
    for i in range(1000):
        limiter.admit(f"o{i}", 0.0)
        limiter.repeat(f"e{i}", 0.0)
    limiter.forget_before(AGGREGATE_SECONDS + 10)
    assert not limiter.buckets
    assert not limiter.posted
