"""MetalLB beside bgplb in the shared lab, put through the same drills (issue 13).

These assert what each system must get right; the figures (and their ratios) are
printed here and recorded by `make bench-versus` from repeated runs. They run last
on the shared lab: MetalLB stays installed once these begin.
"""

from __future__ import annotations

import pytest

from bgplb_lab import metallb, versus
from bgplb_lab.kubelets import KubeletLab
from bgplb_lab.topology import Lab


@pytest.fixture(scope="module")
def metallb_vip(lab: Lab) -> str:
    assert isinstance(lab, KubeletLab)
    return versus.setup(lab)


def test_metallb_serves_the_demo_pods_beside_bgplb(lab: Lab, metallb_vip: str) -> None:
    assert metallb_vip.startswith("203.0.113.")
    hops = lab.tor_next_hops(metallb_vip)
    assert hops == {t: set(metallb.SOURCES.values()) for t in ("frr", "bird")}
    answered = lab.client_requests(12, vip=metallb_vip)
    assert "FAILED" not in answered, answered
    # bgplb's own Service is untouched by MetalLB's class.
    svc = lab.get_json("service", "-n", "default", "demo")
    assert svc["status"]["loadBalancer"]["ingress"][0]["ip"] == "203.0.113.1"


def test_service_create_reaches_both_tors_for_both(lab: Lab, metallb_vip: str) -> None:
    assert isinstance(lab, KubeletLab)
    times = versus.service_create(lab, 5)
    print({who: [round(t, 3) for t in ts] for who, ts in times.items()})
    assert all(len(ts) == 5 for ts in times.values())


def test_lb_node_failure_side_by_side(lab: Lab, metallb_vip: str) -> None:
    assert isinstance(lab, KubeletLab)
    results = versus.lb_node_failure(lab, metallb_vip)
    for result in results.values():
        print(result)
    for who, result in results.items():
        # Each withdraws the dead node's next hop and its traffic comes back.
        assert result.figures["route_withdrawn_s"] is not None, (who, result)
        assert result.figures["traffic_restored_s"] < versus.RESTORE_CAP - 3, (who, result)


def test_speaker_restart_side_by_side(lab: Lab, metallb_vip: str) -> None:
    assert isinstance(lab, KubeletLab)
    results = versus.speaker_restart(lab, metallb_vip)
    for result in results.values():
        print(result)
    ours = results["bgplb"].figures
    assert ours["flaps"] == [], ours
    assert ours["failed_requests"] == 0, ours


def test_a_thousand_services_reach_both_tors_for_both(lab: Lab, metallb_vip: str) -> None:
    assert isinstance(lab, KubeletLab)
    figures = versus.bulk(lab, count=1000, per_address=25)
    print(figures)
    for who, f in figures.items():
        # 25 Services to an address on distinct ports: 40 VIPs each, all routed.
        assert f["vips"] == 40, (who, f)
