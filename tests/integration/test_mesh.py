"""The agents' mesh over real UDP between network namespaces: a dead node is held
for dead by every other agent within a second; one bad link, or 5 % loss, holds
nobody for dead; a node back is re-added after the hold-down."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bgplb.agent.mesh import HOLD_DOWN
from bgplb_lab.daemons import stop_processes, wait_for
from bgplb_lab.netns import Segment, segment

NODES = {"n1": "192.0.2.11", "n2": "192.0.2.12", "n3": "192.0.2.13", "n4": "192.0.2.14"}
PORT = 9094
KEY = "a-test-key-of-enough-bytes"
HELPER = Path(__file__).with_name("mesh_node.py")


class Mesh:
    def __init__(self, seg: Segment, logs: Path) -> None:
        self.seg, self.logs = seg, logs
        self.procs = {}
        for name, ip in NODES.items():
            peers = {n: a for n, a in NODES.items() if n != name}
            self.procs[name] = seg.hosts[name].popen(
                [sys.executable, str(HELPER), name, ip, str(PORT), KEY, json.dumps(peers)],
                logs / f"{name}.log",
                env={"PYTHONPATH": os.pathsep.join(sys.path)},
            )

    def lines(self, node: str) -> list[dict[str, object]]:
        out = []
        for line in (self.logs / f"{node}.log").read_text().splitlines():
            try:
                out.append(json.loads(line))
            except ValueError:
                continue
        return out

    def dead(self, node: str) -> list[str]:
        lines = self.lines(node)
        return list(lines[-1]["dead"]) if lines else []  # type: ignore[call-overload]

    def changes(self, node: str) -> int:
        return len(self.lines(node)) - 1


@pytest.fixture
def mesh(tmp_path: Path) -> Iterator[Mesh]:
    with segment(f"mh{os.getpid() % 10000}-") as seg:
        for name, ip in NODES.items():
            seg.add_host(name, f"{ip}/24")
        m = Mesh(seg, tmp_path)
        try:
            wait_for("every prober up", lambda: all(m.lines(n) for n in NODES), timeout=20)
            yield m
        finally:
            stop_processes(*m.procs.values(), timeout=5)


def test_a_dead_node_is_held_for_dead_by_all_then_re_added_after_the_hold_down(
    mesh: Mesh,
) -> None:
    time.sleep(2)
    assert all(mesh.changes(n) == 0 for n in NODES), "nobody is held for dead while all answer"
    cut = time.time()
    mesh.seg.hosts["n4"].exec("ip", "link", "set", "eth0", "down")
    for n in ("n1", "n2", "n3"):
        wait_for(f"{n} holds n4 for dead", lambda n=n: mesh.dead(n) == ["n4"], timeout=5)
    took = max(float(mesh.lines(n)[-1]["at"]) for n in ("n1", "n2", "n3")) - cut  # type: ignore[arg-type]
    print(f"n4 held for dead by all three after {took:.2f}s")
    assert took < 3.0, "before a 3 s Lease could expire"
    back = time.time()
    mesh.seg.hosts["n4"].exec("ip", "link", "set", "eth0", "up")
    for n in ("n1", "n2", "n3"):
        wait_for(f"{n} re-adds n4", lambda n=n: mesh.dead(n) == [], timeout=15)
    readded = min(float(mesh.lines(n)[-1]["at"]) for n in ("n1", "n2", "n3"))  # type: ignore[arg-type]
    assert readded - back >= HOLD_DOWN, "not before the hold-down"


def test_one_bad_link_or_lossy_link_holds_nobody_for_dead(mesh: Mesh) -> None:
    n1 = mesh.seg.hosts["n1"]
    n1.exec("iptables", "-w", "-I", "INPUT", "-s", NODES["n4"], "-j", "DROP")
    try:
        time.sleep(3)
        assert all(mesh.changes(n) == 0 for n in NODES), {n: mesh.lines(n) for n in NODES}
    finally:
        n1.exec("iptables", "-w", "-D", "INPUT", "-s", NODES["n4"], "-j", "DROP", check=False)
    n2 = mesh.seg.hosts["n2"]
    # 5 % loss each way on n2's link (netem is not in this kernel: iptables' statistic)
    lossy = [
        [chain, "-m", "statistic", "--mode", "random", "--probability", "0.05", "-j", "DROP"]
        for chain in ("INPUT", "OUTPUT")
    ]
    for rule in lossy:
        n2.exec("iptables", "-w", "-I", *rule)
    try:
        time.sleep(10)
        assert all(mesh.changes(n) == 0 for n in NODES), {n: mesh.lines(n) for n in NODES}
    finally:
        for rule in lossy:
            n2.exec("iptables", "-w", "-D", *rule, check=False)


def test_a_restarting_agent_that_said_so_is_not_held_for_dead(mesh: Mesh) -> None:
    """SIGTERM: the agent tells its peers a successor answers within 4 s (here no
    successor comes): nobody holds it for dead before then; everybody does after."""
    stopped = time.time()
    mesh.procs["n4"].terminate()
    mesh.procs["n4"].wait(5)
    for n in ("n1", "n2", "n3"):
        wait_for(f"{n} holds n4 for dead", lambda n=n: mesh.dead(n) == ["n4"], timeout=10)
    first = min(float(mesh.lines(n)[-1]["at"]) for n in ("n1", "n2", "n3"))  # type: ignore[arg-type]
    assert first - stopped >= 4.0, "not while its successor may still come"
