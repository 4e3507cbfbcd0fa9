"""Who gets which address, checked on both ToRs of the shared lab (issue 14)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import pytest

from bgplb_lab.daemons import wait_for
from bgplb_lab.kubelets import BACKEND_PORT
from bgplb_lab.manifests import service
from bgplb_lab.topology import Lab

KEY = "networking.bgplb.io/sharing-key"


def keyed(name: str, port: int, key: str | None, **spec: Any) -> dict[str, Any]:
    svc = service(
        name, selector={"app": "demo"}, ports=[{"port": port, "targetPort": BACKEND_PORT}], **spec
    )
    if key:
        svc["metadata"]["annotations"] = {KEY: key}
    return svc


def vip(lab: Lab, name: str) -> str | None:
    ingress = lab.get_json("service", "-n", "default", name)["status"]["loadBalancer"]
    return str(ingress["ingress"][0]["ip"]) if ingress.get("ingress") else None


def answered(lab: Lab, address: str, port: int) -> str:
    cmd = [sys.executable, "-m", "bgplb_lab.client", address, "--port", str(port), "--count", "4"]
    return lab.client.exec(*cmd, check=False, timeout=60)


def test_services_with_one_sharing_key_share_a_vip_on_both_tors(lab: Lab) -> None:
    names = ("shared-web", "shared-alt", "shared-again")
    address: str | None = None
    try:
        lab.apply([keyed("shared-web", 80, "demo"), keyed("shared-alt", 8081, "demo")])
        wait_for("both Services' VIPs", lambda: vip(lab, "shared-web") and vip(lab, "shared-alt"))
        address = vip(lab, "shared-web")
        assert address is not None
        assert vip(lab, "shared-alt") == address
        on_tors(lab, address, True)
        # One address, two Services: kube-proxy tells them apart by port.
        for port in (80, 8081):
            wait_for(f"{address}:{port} answered", serving(lab, address, port), timeout=30)
        # The same key on a port already taken there: an address of its own.
        lab.apply([keyed("shared-again", 80, "demo")])
        wait_for("the third Service's VIP", lambda: vip(lab, "shared-again"))
        assert vip(lab, "shared-again") != address
        # No key, asking for the shared address: refused, naming holder and reason.
        with pytest.raises(RuntimeError, match="already the VIP of Service default/shared-"):
            lab.apply([keyed("intruder", 9000, None, loadBalancerIP=address)])
    finally:
        lab.kubectl("delete", "service", "-n", "default", "--ignore-not-found", *names)
    on_tors(lab, address, False)


def on_tors(lab: Lab, address: str, wanted: bool) -> None:
    def there() -> bool:
        hops = lab.tor_next_hops(address).values()
        return all(hops) if wanted else not any(hops)

    wait_for(f"{address} {'on' if wanted else 'off'} both ToRs", there, timeout=30)


def serving(lab: Lab, address: str, port: int) -> Callable[[], bool]:
    return lambda: "FAILED" not in answered(lab, address, port)
