"""The drills' flap detector: a real flap is named, clock drift in a ToR's display is not."""

from __future__ import annotations

from bgplb_lab.drills import flaps


def test_bird_since_drifting_by_a_millisecond_is_not_a_flap() -> None:
    # Seen in CI: BIRD shows a monotonic 'since' on the wall clock, 1 ms apart 72 s later.
    before = {"bird/192.0.2.101": ("node3", 12183.022)}
    after = {"bird/192.0.2.101": ("node3", 12183.023)}
    assert flaps(before, after) == []


def test_bird_session_established_again_is_a_flap() -> None:
    before = {"bird/192.0.2.101": ("node3", 12183.022)}
    assert flaps(before, {"bird/192.0.2.101": ("node3", 12250.5)}) == ["bird/192.0.2.101"]
    assert flaps(before, {"bird/192.0.2.101": ("node5", 12183.022)}) == ["bird/192.0.2.101"]
    assert flaps(before, {}) == ["bird/192.0.2.101"]


def test_bird_since_across_midnight_is_compared_on_the_clock_face() -> None:
    assert flaps({"bird/a": ("node1", 86399.9995)}, {"bird/a": ("node1", 0.0005)}) == []


def test_frr_counters_must_match_and_the_epoch_may_jitter_by_a_second() -> None:
    before = {"frr/192.0.2.11": (1, 0, 1000)}
    assert flaps(before, {"frr/192.0.2.11": (1, 0, 1001)}) == []
    assert flaps(before, {"frr/192.0.2.11": (2, 1, 1001)}) == ["frr/192.0.2.11"]
