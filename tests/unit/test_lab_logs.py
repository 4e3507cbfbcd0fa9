"""The lab reads the agents' container logs (lines as containerd writes them)."""

from __future__ import annotations

from bgplb_lab.drills import mesh_held_for_dead, stall_summary, stalls_logged

PREFIX = "2026-12-02T04:06:25.035Z stderr F "
LOG = "\n".join(
    PREFIX + line
    for line in (
        '{"ts": "x", "level": "WARNING", "logger": "bgplb.agent", "msg": "mesh: nodes held'
        ' for dead changed", "dead": ["n4"], "was": [], "voters": {"n4": ["n1", "n2"]}}',
        '{"ts": "x", "level": "WARNING", "logger": "bgplb.agent", "msg": "mesh: nodes held'
        ' for dead changed", "dead": ["n3", "n4"], "was": ["n4"]}',
        '{"ts": "x", "level": "WARNING", "logger": "bgplb.agent", "msg": "mesh: nodes held'
        ' for dead changed", "dead": [], "was": ["n3", "n4"]}',
        '{"ts": "x", "level": "WARNING", "logger": "bgplb.agent", "msg": "agent stalled",'
        ' "where": "thread", "seconds": 0.402, "cpu_seconds": 0.049, "gc_seconds": 0.0}',
        '{"ts": "x", "level": "WARNING", "logger": "bgplb.agent", "msg": "agent stalled",'
        ' "where": "event_loop", "seconds": 0.407, "cpu_seconds": 0.05, "gc_seconds": 0.0}',
        '{"ts": "x", "level": "INFO", "logger": "bgplb.agent", "msg": "speaker updated",'
        ' "changes": 1, "note": "agent stalled"}',
        "not json: agent stalled {",
    )
)


def test_verdicts_are_counted_where_they_begin() -> None:
    assert mesh_held_for_dead(LOG, "n4") == 1
    assert mesh_held_for_dead(LOG, "n3") == 1
    assert mesh_held_for_dead(LOG, "n1") == 0


def test_stalls_are_read_and_summed_up() -> None:
    stalls = stalls_logged(LOG)
    assert [s["where"] for s in stalls] == ["thread", "event_loop"]
    assert stall_summary(stalls) == {"count": 2, "longest": stalls[1]}
    assert stall_summary([]) == {}
