"""The order of a pass's writes: what waits on what."""

from __future__ import annotations

import asyncio
import threading
import time
from ipaddress import IPv4Address
from typing import Any

from bgplb.controller.reconcile import Reconciler
from bgplb.controller.snapshot import ClusterState
from bgplb.core.plan import DesiredState


class SlowAPI:
    """Each call takes `seconds`; when each began and ended is noted by method name."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.began: dict[str, float] = {}
        self.ended: dict[str, float] = {}
        self.lock = threading.Lock()

    def __getattr__(self, name: str) -> Any:
        def call(*args: Any, **kwargs: Any) -> dict[str, Any]:
            with self.lock:
                self.began.setdefault(name, time.monotonic())
            time.sleep(self.seconds)
            with self.lock:
                self.ended[name] = time.monotonic()
            return {}

        return call


def test_a_services_status_is_not_written_after_the_configurations() -> None:
    """Its EXTERNAL-IP depends on none of the BGPLoadBalancer's, BGPPeers' or
    NetworkGatewayGroup's statuses, so it is not queued behind them."""
    state = ClusterState("kube-system")
    state.load_balancers["default"] = {
        "metadata": {"name": "default", "namespace": "kube-system", "uid": "u", "generation": 1},
        "spec": {},
    }
    state.services["default/web"] = {
        "metadata": {"name": "web", "namespace": "default", "uid": "w"},
        "spec": {"type": "LoadBalancer"},
    }
    custom, core = SlowAPI(0.3), SlowAPI(0.3)
    reconciler = Reconciler(state, custom, core)
    desired = DesiredState(vips={"default/web": IPv4Address("203.0.113.5")})
    asyncio.run(reconciler._apply(desired, []))
    lb_status = custom.ended["patch_namespaced_custom_object_status"]
    assert core.began["patch_namespaced_service_status"] < lb_status
