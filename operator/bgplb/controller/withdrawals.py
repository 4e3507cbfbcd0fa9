"""A bound on what one reconcile withdraws — pure.

A plan made from input that looks empty (a cache that lost its Services, a Node list
gone) would withdraw everything in one reconcile, and every VIP would leave the
fabric before anyone could look. So, unless the configuration itself changed (the
BGPLoadBalancer, NetworkGatewayGroup or a BGPPeer: someone asked), one reconcile
removes at most a share of the routes and sessions in any window of PACE_SECONDS
(reconciles can follow each other within milliseconds, so the budget is the window's,
not each reconcile's); the rest stay as they were and go in later windows, while the
BGPLoadBalancer's condition says so. A real
mass deletion still completes (halving 1,000 routes takes a dozen steps); a glitch
has that long to heal, and most of the fabric keeps working meanwhile.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace

from bgplb.core.plan import DesiredState

SHARE = 0.25
"""At most this share of the routes and sessions go in one window..."""
FLOOR = 4
"""...or this many, whichever is more (a small cluster's ordinary changes are never held)."""
PACE_SECONDS = 5.0
"""The window."""


@dataclass(frozen=True)
class Window:
    started: float
    allowed: int
    """Withdrawals this window allows: a share of what was in force when it began."""
    used: int = 0


def window(current: Window | None, in_force: int, now: float) -> Window:
    """The window a reconcile at `now` falls in; a new one once the last has run out."""
    if current is None or now - current.started >= PACE_SECONDS:
        return Window(now, max(FLOOR, math.ceil(SHARE * in_force)))
    return current


@dataclass(frozen=True)
class Bounded:
    desired: DesiredState
    """The plan with the withdrawals beyond the bound put back from the last one."""
    withdrawn: int
    held: int
    """Withdrawals put off to a later reconcile."""


def bound(
    previous: DesiredState | None, desired: DesiredState, *, asked: bool, allowed: int
) -> Bounded:
    """`previous`: the plan in force; `asked`: the configuration changed since;
    `allowed`: what is left of the window's budget."""
    if previous is None:
        return Bounded(desired, 0, 0)
    gone = [("route", k) for k in sorted(previous.routes.keys() - desired.routes.keys())]
    gone += [("session", k) for k in sorted(previous.sessions.keys() - desired.sessions.keys())]
    if asked or len(gone) <= allowed:
        return Bounded(desired, len(gone), 0)
    held = gone[max(0, allowed) :]
    routes = dict(desired.routes)
    sessions = dict(desired.sessions)
    vips = dict(desired.vips)
    for what, key in held:
        if what == "route":
            routes[key] = previous.routes[key]
            if key in previous.vips:
                vips.setdefault(key, previous.vips[key])
        else:
            sessions[key] = previous.sessions[key]
    kept = replace(desired, routes=routes, sessions=sessions, vips=vips)
    return Bounded(kept, len(gone) - len(held), len(held))
