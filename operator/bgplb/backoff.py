"""Retry delays for clients of the API server: exponential, capped (4 s: a watch
resumes cheaply from the watch cache, and an agent must see new configuration soon
after an outage), fully jittered,
so agents that lost their watches together (an API server restart) do not come back
together (client-go's informers back off the same way)."""

from __future__ import annotations

import random

BASE_SECONDS = 0.5
CAP_SECONDS = 4.0


def delay(failures: int, rng: random.Random | None = None) -> float:
    """Seconds to wait before retry number `failures` (1, 2, ...): uniform in
    [0, min(cap, base * 2^(failures-1))]."""
    ceiling = min(CAP_SECONDS, BASE_SECONDS * 2 ** max(0, failures - 1))
    return (rng or random).uniform(0, ceiling)
