"""`bgplb advertise` (the seed's bgpadvertiser) against a real FRR peer."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from ipaddress import IPv4Network
from pathlib import Path

import pytest

from bgplb_lab.daemons import BIRD, FRR, wait_for
from bgplb_lab.netns import Host, run, segment

VIP = "198.51.100.10"


@pytest.fixture
def net() -> Iterator[tuple[FRR, Host, Path, BIRD]]:
    work = Path(tempfile.mkdtemp(prefix="bgplb-test-"))
    work.chmod(0o755)
    with segment(f"bv{os.getpid() % 10000}-") as seg:
        frr = FRR(
            seg.add_host("tor", "192.0.2.1/24"), work, 65000, IPv4Network("192.0.2.0/24"), 65001
        ).start()
        bird = BIRD(
            seg.add_host("tor2", "192.0.2.2/24"), work, 65000, IPv4Network("192.0.2.0/24"), 65001
        ).start()
        node = seg.add_host("n1", "192.0.2.11/24")
        try:
            yield frr, node, work, bird
        finally:
            bird.stop()
            frr.stop()
            shutil.rmtree(work, ignore_errors=True)


def _get(node: Host, url: str) -> int:
    code = (
        "import urllib.request, urllib.error\n"
        "try:\n"
        f"    print(urllib.request.urlopen({url!r}, timeout=3).status)\n"
        "except urllib.error.HTTPError as e:\n"
        "    print(e.code)\n"
    )
    return int(node.exec(sys.executable, "-c", code).strip())


def test_advertise_until_ctrl_c_then_clean_up(net: tuple[FRR, Host, Path, BIRD]) -> None:
    frr, node, work, bird = net
    config = work / "bgpadvertiser.conf"
    config.write_text(
        "localIP: 192.0.2.11\nlocalASN: 65001\npeers:\n- peerIP: 192.0.2.1\n  peerASN: 65000\n"
        "- peerIP: 192.0.2.2\n  peerASN: 65000\n"
    )
    log = work / "advertise.log"
    proc = node.popen(
        [
            sys.executable,
            "-m",
            "bgplb.cli",
            "advertise",
            "--config",
            str(config),
            "--advertise-ip",
            VIP,
        ],
        log,
    )
    try:
        wait_for("the VIP on FRR", lambda: frr.next_hops(f"{VIP}/32") == {"192.0.2.11"}, timeout=40)
        wait_for(
            "the VIP on BIRD", lambda: bird.next_hops(f"{VIP}/32") == {"192.0.2.11"}, timeout=40
        )
        wait_for("health 200", lambda: _get(node, "http://127.0.0.1:8080/healthz") == 200)
        lines = [json.loads(x) for x in log.read_text().splitlines() if x.startswith("{")]
        changes = [x for x in lines if x["msg"] == "session state changed"]
        established = {x["peer"] for x in changes if x["to"] == "Established"}
        assert established == {"192.0.2.1", "192.0.2.2"}
    finally:
        proc.send_signal(signal.SIGINT)
        assert proc.wait(15) == 0
    wait_for("the VIP withdrawn", lambda: not frr.next_hops(f"{VIP}/32"), timeout=15)
    wait_for("the VIP withdrawn from BIRD", lambda: not bird.next_hops(f"{VIP}/32"), timeout=15)
    # Nothing left behind in the node's namespace: no gobgpd, no advertiser.
    assert run("ip", "netns", "pids", node.netns).split() == []


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (
            "localIP: 192.0.2.11\nlocalASN: 65001\npeers: []\n",
            "peers: List should have at least 1",
        ),
        (
            "localIP: 2001:db8::1\nlocalASN: 65001\n"
            "peers:\n- peerIP: 192.0.2.1\n  peerASN: 65000\n",
            "localIP: IPv6 is not supported yet",
        ),
        (
            "localIP: 192.0.2.11\nlocalASN: 65001\npeers:\n- peerIP: 192.0.2.1\n  peerASN: 65001\n",
            "peers[0].peerASN: equals localASN: only eBGP is supported",
        ),
    ],
)
def test_bad_config_names_the_field(tmp_path: Path, config: str, message: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(config)
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bgplb.cli",
            "advertise",
            "--config",
            str(path),
            "--advertise-ip",
            VIP,
        ],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0
    assert message in done.stderr
