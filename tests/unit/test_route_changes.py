"""Reading a ToR kernel's route changes from `ip -ts -o monitor route`: the lines
are the ones the lab's FRR ToR printed when n3 was cordoned, then uncordoned."""

from __future__ import annotations

from datetime import datetime

from bgplb_lab.daemons import route_changes, routes_added
from bgplb_lab.drills import TrafficLog

N1, N2, N3 = "192.0.2.11", "192.0.2.12", "192.0.2.13"
OUT = (
    "[2026-12-03T02:09:41.171408] 203.0.113.1 nhid 12 proto bgp metric 20 "
    f"\\\tnexthop via {N1} dev eth0 weight 1 \\\tnexthop via {N2} dev eth0 weight 1 "
)
BACK = (
    "[2026-12-03T02:09:49.324337] 203.0.113.1 nhid 19 proto bgp metric 20 "
    f"\\\tnexthop via {N1} dev eth0 weight 1 \\\tnexthop via {N2} dev eth0 weight 1 "
    f"\\\tnexthop via {N3} dev eth0 weight 1 "
)


def test_each_change_of_the_next_hops_with_its_instant() -> None:
    changes = route_changes(f"{OUT}\n{BACK}\n", "203.0.113.1", {N1, N2, N3})
    assert [c.next_hops for c in changes] == [{N1, N2}, {N1, N2, N3}]
    assert changes[0].at == datetime(2026, 12, 3, 2, 9, 41, 171408).timestamp()


def test_a_route_replaced_with_the_same_next_hops_is_no_change() -> None:
    # FRR moves a route to a new nexthop group when a path it did not use goes.
    same = OUT.replace("nhid 12", "nhid 14").replace("41.171408", "45.000001")
    assert len(route_changes(f"{OUT}\n{same}\n", "203.0.113.1", {N1, N2, N3})) == 1


def test_other_routes_are_ignored_and_a_deleted_route_has_no_next_hop() -> None:
    other = OUT.replace("203.0.113.1 ", "203.0.113.2 ")
    deleted = "[2026-12-03T02:09:50.000000] Deleted 203.0.113.1 nhid 19 proto bgp metric 20"
    changes = route_changes(f"{other}\n{deleted}\n", "203.0.113.1", {N1, N2, N3})
    assert [c.next_hops for c in changes] == [frozenset()]


def test_the_requests_in_flight_at_a_change_are_those_started_before_and_ended_after() -> None:
    log = TrafficLog(
        [
            {"t": 10.00, "ok": True, "dt": 0.004},  # ended before
            {"t": 10.02, "ok": False, "dt": 0.010},  # in flight at 10.025
            {"t": 10.03, "ok": True, "dt": 0.003},  # started after
        ]
    )
    assert [r["t"] for r in log.in_flight(10.025)] == [10.02]


def test_routes_added_since_a_moment_and_not_there_before() -> None:
    new = OUT.replace("203.0.113.1 ", "203.0.113.70 ")
    local = "[2026-12-03T02:09:42.000000] local 192.0.2.1 dev eth0 table local proto kernel"
    net = "[2026-12-03T02:09:42.000000] 10.0.0.0/24 dev eth1 proto kernel scope link"
    events = "\n".join([OUT, new, local, net])
    since = datetime(2026, 12, 3, 2, 9, 41).timestamp()
    added = routes_added(events, since, {"203.0.113.1"})
    assert added == {"203.0.113.70": datetime(2026, 12, 3, 2, 9, 41, 171408).timestamp()}
    assert routes_added(events, since + 1, set()) == {}
