"""Retry delays: growing, capped, and spread out."""

from __future__ import annotations

import random

from bgplb import backoff


def test_delays_grow_to_a_cap_and_are_spread() -> None:
    rng = random.Random(7)
    for failures, ceiling in ((1, 0.5), (2, 1.0), (3, 2.0), (20, 4.0)):
        samples = [backoff.delay(failures, rng) for _ in range(200)]
        assert all(0 <= d <= ceiling for d in samples)
        assert max(samples) > 0.8 * ceiling  # the range is used...
        assert len({round(d, 3) for d in samples}) > 150  # ...and agents do not agree
