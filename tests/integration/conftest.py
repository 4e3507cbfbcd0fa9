"""Fixtures that start real daemons in network namespaces (root required).

Every namespace and process a test creates is removed afterwards, failed or not:
the segment's context manager kills each namespace's processes and deletes it.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from bgplb_lab.daemons import BIRD, FRR, GoBGPd
from bgplb_lab.netns import Host, segment

SEGMENT = IPv4Network("192.0.2.0/24")
FLOATING_IPS = ("192.0.2.100", "192.0.2.101")
"""The floating IPs the tests use: static neighbours on both ToRs, which open their
sessions as a production ToR configured for them would (README: On the ToRs)."""
TOR_ASN, CLUSTER_ASN = 65000, 65001


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    path = Path(tempfile.mkdtemp(prefix="bgplb-test-"))
    path.chmod(0o755)  # FRR drops to user frr and must reach its files
    yield path
    if os.environ.get("BGPLB_KEEP_LOGS") is None:
        shutil.rmtree(path, ignore_errors=True)


@dataclass
class Fabric:
    frr: FRR
    bird: BIRD
    nodes: dict[str, Host]
    gobgpd: dict[str, GoBGPd]
    workdir: Path


@pytest.fixture(scope="module")
def fabric(workdir: Path, request: pytest.FixtureRequest) -> Iterator[Fabric]:
    """3 nodes (gobgpd each) and 2 ToRs (FRR, BIRD) on one L2 segment."""
    prefix = f"bt{os.getpid() % 10000}{request.module.__name__[-3:]}-"
    with segment(prefix) as seg:
        tor_frr = seg.add_host("tor1", "192.0.2.1/24")
        tor_bird = seg.add_host("tor2", "192.0.2.2/24")
        nodes = {f"n{i}": seg.add_host(f"n{i}", f"192.0.2.1{i}/24") for i in (1, 2, 3)}
        frr = FRR(tor_frr, workdir, TOR_ASN, SEGMENT, CLUSTER_ASN, static=FLOATING_IPS).start()
        bird = BIRD(tor_bird, workdir, TOR_ASN, SEGMENT, CLUSTER_ASN, static=FLOATING_IPS).start()
        daemons = {name: GoBGPd(host, workdir).start() for name, host in nodes.items()}
        try:
            yield Fabric(frr, bird, nodes, daemons, workdir)
        finally:
            for d in daemons.values():
                d.stop()
            frr.stop()
            bird.stop()
