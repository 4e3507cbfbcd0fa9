"""The lab's demo backend stands in for a user's workload: it must not be the first
thing its node starves."""

from __future__ import annotations

from bgplb_lab.kubelets import backend


def test_the_demo_backend_requests_cpu() -> None:
    # Without a CPU request a Pod is BestEffort (cpu.shares 2): in the drills it went
    # silent for up to 1.5 s whenever bgplb's Pods on its node were busy.
    deployment = backend("demo:lab")[0]
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["resources"]["requests"]["cpu"]
