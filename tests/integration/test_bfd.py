"""BFD from the speaker Pod's container (`bgplb bfd`, driven as the agent drives it)
against real FRR bfdd and BIRD: both ToRs bring the sessions Up; when the node goes
silent, or drops the session's address, they drop its BGP sessions on BFD's word,
not at the hold timer."""

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

from bgplb.agent.bfd import State, Timers
from bgplb.agent.bfd_server import BfdClient
from bgplb.agent.speaker.gobgp import GoBGPSpeaker
from bgplb.agent.speaker.model import PathConfig, PeerConfig, SpeakerConfig
from bgplb_lab.daemons import BIRD, FRR, GoBGPd, wait_for
from bgplb_lab.netns import Host, segment

SEGMENT = IPv4Network("192.0.2.0/24")
TOR_ASN, CLUSTER_ASN = 65000, 65001
NODE = "192.0.2.11"
TORS = {"frr": "192.0.2.1", "bird": "192.0.2.2"}
INTERVAL_MS = 300
BGPLB = Path(sys.executable).with_name("bgplb")
WANTED = {
    (IPv4Address(NODE), IPv4Address(tor)): Timers(INTERVAL_MS * 1000, INTERVAL_MS * 1000, 3)
    for tor in TORS.values()
}


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


@pytest.fixture
def bfd(lab: Lab) -> Iterator[BfdClient]:
    socket = lab.workdir / "bfd.sock"
    socket.unlink(missing_ok=True)  # an earlier test's
    proc = lab.node.popen(
        [str(BGPLB), "bfd", f"--socket={socket}"],
        lab.workdir / "bfd.log",
        env={"PYTHONPATH": os.pathsep.join(sys.path)},
    )
    try:
        wait_for("the BFD socket", socket.exists, timeout=20)
        yield BfdClient(socket)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def push(
    client: BfdClient, wanted: dict[tuple[IPv4Address, IPv4Address], Timers]
) -> tuple[dict[str, State], dict[str, str]]:
    return asyncio.run(client.sync(wanted))


def tors_up(lab: Lab) -> None:
    wait_for("BFD Up on FRR", lambda: frr_bfd_up(lab), timeout=30)
    wait_for("BFD Up on BIRD", lambda: bird_bfd_up(lab), timeout=30)
    wait_for("BGP Established on FRR", lambda: frr_established(lab), timeout=30)
    wait_for("BGP Established on BIRD", lambda: bird_established(lab), timeout=30)


def dropped_within(lab: Lab, seconds: float) -> dict[str, float]:
    """ToR → seconds until it no longer had the node's BGP session."""
    start, seen = time.monotonic(), {}
    while len(seen) < 2 and time.monotonic() - start < seconds:
        for tor, up in (("frr", frr_established), ("bird", bird_established)):
            if tor not in seen and not up(lab):
                seen[tor] = round(time.monotonic() - start, 2)
        time.sleep(0.05)
    return seen


def test_the_tors_drop_a_silent_node_on_bfd_not_the_hold_timer(lab: Lab, bfd: BfdClient) -> None:
    failed = push(bfd, WANTED)[1]
    assert failed == {}
    tors_up(lab)
    states = push(bfd, WANTED)[0]
    assert states == {f"{NODE}>{tor}": State.UP for tor in TORS.values()}
    time.sleep(3)  # a few fast intervals: nothing may drop while the node is fine
    assert frr_bfd_up(lab)
    assert bird_bfd_up(lab)

    # The node goes silent: everything it sends is lost (its BGP keepalives too).
    lab.node.exec("iptables", "-A", "OUTPUT", "-j", "DROP")
    seen = dropped_within(lab, 8)  # the hold timer is 9 s
    print(f"BFD {INTERVAL_MS} ms x 3, node silent: BGP session dropped after {seen}")
    assert set(seen) == {"frr", "bird"}, "a ToR kept the session until its hold timer"
    # On BFD's word: FRR deletes the dynamic neighbour, so its log says why.
    assert "(Cease/BFD Down)" in (lab.workdir / "bgpd-tor1.log").read_text()
    assert "BFD session down" in lab.bird.birdc("show protocols all")


def test_bfd_stops_with_the_address_and_never_starts_from_one_not_held(
    lab: Lab, bfd: BfdClient
) -> None:
    assert push(bfd, WANTED)[1] == {}
    tors_up(lab)
    # A session from an address this node does not hold is refused, with why, and
    # the others are untouched.
    stranger = (IPv4Address("192.0.2.99"), IPv4Address(TORS["frr"]))
    states, failed = push(bfd, {**WANTED, stranger: Timers()})
    assert list(failed) == [f"{stranger[0]}>{stranger[1]}"]
    assert "192.0.2.99" not in " ".join(states)
    assert frr_bfd_up(lab)
    # The address leaves the node (a fenced or moved floating IP): BFD can no longer
    # send from it, so the ToRs drop the session without waiting for the hold timer,
    # even though the container was not told.
    lab.node.exec("ip", "address", "del", f"{NODE}/24", "dev", "eth0")
    seen = dropped_within(lab, 8)
    print(f"BFD {INTERVAL_MS} ms x 3, address removed: BGP session dropped after {seen}")
    assert set(seen) == {"frr", "bird"}
