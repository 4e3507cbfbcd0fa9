"""The e2e lab: the same lab `bgplb-lab up` builds (real nodes, the chart installed by
helm), under a prefix of its own."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgplb_lab import drills
from bgplb_lab.kubelets import KubeletLab
from bgplb_lab.topology import Lab


def build(example: int) -> Lab:
    work = Path(tempfile.mkdtemp(prefix=f"bgplb-e2e-{example}-"))
    return KubeletLab(work, prefix=f"e{example}{os.getpid() % 1000}-", example=example, log=False)


def teardown(lab: Lab) -> None:
    if os.environ.get("BGPLB_KEEP_LOGS"):
        lab.stop()
        print(f"lab logs kept in {lab.workdir}")
    else:
        lab.down()


def settled(lab: Lab) -> Iterator[Lab]:
    """The lab up with every session settled, for a fixture's lifetime."""
    try:
        lab.up()
        drills.wait_stable(lab)
        yield lab
    finally:
        teardown(lab)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Tests that build a lab of their own run before the shared one is up: two
    clusters at once on this machine's two cores starve both (a Lease renewal stalled
    past the fencing margin in CI, and a floating IP's session went down with it)."""

    def shares_the_lab(item: pytest.Item) -> bool:
        return "lab" in getattr(item, "fixturenames", ())

    def installs_metallb(item: pytest.Item) -> bool:
        # Last of all: MetalLB stays installed, and its 1,000-Service drill loads
        # every node's kube-proxy for minutes.
        return "metallb_vip" in getattr(item, "fixturenames", ())

    e2e = [i for i in items if i.nodeid.startswith("e2e/")]
    rest = [i for i in items if not i.nodeid.startswith("e2e/")]
    items[:] = rest + sorted(e2e, key=lambda i: (shares_the_lab(i), installs_metallb(i)))


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """Seed example 3 with the demo Service, every session Established."""
    yield from settled(build(3))
