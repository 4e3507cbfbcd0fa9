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


@pytest.fixture(scope="session")
def lab() -> Iterator[Lab]:
    """Seed example 3 with the demo Service, every session Established."""
    yield from settled(build(3))
