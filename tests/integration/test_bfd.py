"""BFD from the agent (bfd.py, bfd_speaker.py) against real FRR bfdd and BIRD: both
ToRs bring the sessions Up, and when the node goes silent they drop its BGP sessions
on BFD's word, not at the hold timer."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from bgplb.agent.speaker.gobgp import GoBGPSpeaker
from bgplb.agent.speaker.model import PathConfig, PeerConfig, SpeakerConfig
from bgplb_lab.daemons import BIRD, FRR, GoBGPd, wait_for
from bgplb_lab.netns import Host, segment

SEGMENT = IPv4Network("192.0.2.0/24")
TOR_ASN, CLUSTER_ASN = 65000, 65001
NODE = "192.0.2.11"
TORS = {"frr": "192.0.2.1", "bird": "192.0.2.2"}
INTERVAL_MS = 300
HELPER = Path(__file__).with_name("bfd_node.py")


@dataclass
class Lab:
    frr: FRR
    bird: BIRD
    node: Host
    gobgpd: GoBGPd
    workdir: Path


@pytest.fixture
def lab(workdir: Path) -> Iterator[Lab]:
    tmp_path = workdir
    with segment(f"bf{os.getpid() % 10000}-") as seg:
        frr_host = seg.add_host("tor1", f"{TORS['frr']}/24")
        bird_host = seg.add_host("tor2", f"{TORS['bird']}/24")
        node = seg.add_host("n1", f"{NODE}/24")
        frr = FRR(frr_host, tmp_path, TOR_ASN, SEGMENT, CLUSTER_ASN, bfd_ms=INTERVAL_MS).start()
        bird = BIRD(bird_host, tmp_path, TOR_ASN, SEGMENT, CLUSTER_ASN, bfd_ms=INTERVAL_MS).start()
        gobgpd = GoBGPd(node, tmp_path).start()
        try:
            asyncio.run(_peer(gobgpd))
            yield Lab(frr, bird, node, gobgpd, tmp_path)
        finally:
            gobgpd.stop()
            frr.stop()
            bird.stop()


async def _peer(gobgpd: GoBGPd) -> None:
    peers = {
        IPv4Address(tor): PeerConfig(
            IPv4Address(tor),
            TOR_ASN,
            CLUSTER_ASN,
            IPv4Address(NODE),
            hold_time=9,
            keepalive=3,
            connect_retry=1,
        )
        for tor in TORS.values()
    }
    path = PathConfig(IPv4Network("203.0.113.10/32"), IPv4Address(NODE))
    speaker = GoBGPSpeaker(gobgpd.target)
    try:
        await speaker.apply(SpeakerConfig(CLUSTER_ASN, IPv4Address(NODE), peers, frozenset({path})))
    finally:
        await speaker.close()


def frr_bfd_up(lab: Lab) -> bool:
    peers = json.loads(lab.frr.vtysh("show bfd peers json"))
    return any(p.get("peer") == NODE and p.get("status") == "up" for p in peers)


def bird_bfd_up(lab: Lab) -> bool:
    return any(
        NODE in line and " Up " in line for line in lab.bird.birdc("show bfd sessions").splitlines()
    )


def frr_established(lab: Lab) -> bool:
    return NODE in lab.frr.established()


def bird_established(lab: Lab) -> bool:
    out = lab.bird.birdc("show protocols all")
    return any(
        f"Neighbor address: {NODE}" in block and "BGP state:          Established" in block
        for block in out.split("\n\n")
    )


def test_the_tors_drop_a_silent_node_on_bfd_not_the_hold_timer(lab: Lab) -> None:
    helper = lab.node.popen(
        [sys.executable, str(HELPER), NODE, json.dumps(list(TORS.values())), str(INTERVAL_MS)],
        lab.workdir / "bfd-node.log",
        env={"PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        wait_for("BFD Up on FRR", lambda: frr_bfd_up(lab), timeout=30)
        wait_for("BFD Up on BIRD", lambda: bird_bfd_up(lab), timeout=30)
        wait_for("BGP Established on FRR", lambda: frr_established(lab), timeout=30)
        wait_for("BGP Established on BIRD", lambda: bird_established(lab), timeout=30)
        lines = [json.loads(x) for x in (lab.workdir / "bfd-node.log").read_text().splitlines()]
        assert lines[-1]["states"] == dict.fromkeys(TORS.values(), "UP")
        time.sleep(3)  # a few fast intervals: nothing may drop while the node is fine
        assert frr_bfd_up(lab)
        assert bird_bfd_up(lab)

        # The node goes silent: everything it sends is lost (its BGP keepalives too).
        lab.node.exec("iptables", "-A", "OUTPUT", "-j", "DROP")
        silent = time.monotonic()
        seen: dict[str, float] = {}
        while len(seen) < 2 and time.monotonic() - silent < 8:  # the hold timer is 9 s
            for tor, up in (("frr", frr_established), ("bird", bird_established)):
                if tor not in seen and not up(lab):
                    seen[tor] = time.monotonic() - silent
            time.sleep(0.05)
        print(f"BFD {INTERVAL_MS} ms x 3: BGP session dropped after {seen}")
        assert set(seen) == {"frr", "bird"}, "a ToR kept the session until its hold timer"
        # On BFD's word: FRR deletes the dynamic neighbour, so its log says why.
        assert "(Cease/BFD Down)" in (lab.workdir / "bgpd-tor1.log").read_text()
        assert "BFD session down" in lab.bird.birdc("show protocols all")
    finally:
        helper.terminate()
        helper.wait(timeout=10)
