"""An agent's work per change does not grow with every route it has parsed before:
each object version is parsed once, each spec dumped to the state file once, a node
without Service sessions plans no routes, and a burst of changes gets paused
reconciles instead of back-to-back ones (CI run 21: 1,000 Services, every agent's
core busy re-reading all of them on every create)."""

from __future__ import annotations

import asyncio
import itertools
import json
import time
from pathlib import Path
from typing import Any, cast

from bgplb.agent.desired import node_desired
from bgplb.agent.main import Agent
from bgplb.agent.source import Dumped, Parsed, inputs_from, save_inputs
from tests.unit.test_agent_logic import NODE_IP, session


def _route(name: str, version: str, prefix: str = "203.0.113.10/32") -> dict[str, Any]:
    return {
        "kind": "BGPAdvertisedRoute",
        "metadata": {"name": name, "resourceVersion": version},
        "spec": {
            "prefix": prefix,
            "nextHops": ["192.0.2.11"],
            "service": {"namespace": "default", "name": name},
        },
    }


def test_an_object_version_is_parsed_once_and_forgotten_when_gone() -> None:
    memo: Parsed = {}
    first = inputs_from([_route("a", "1"), _route("b", "1")], memo)
    again = inputs_from([_route("a", "1"), _route("b", "2", "203.0.113.11/32")], memo)
    assert again.routes[0] is first.routes[0]  # the same version: not parsed again
    assert str(again.routes[1].prefix) == "203.0.113.11/32"  # a new one is
    inputs_from([_route("b", "2", "203.0.113.11/32")], memo)
    assert set(memo) == {("BGPAdvertisedRoute", "b")}  # a deleted object leaves


def test_without_versions_nothing_is_remembered() -> None:
    """A desired file's documents carry no resourceVersion: parsed on every read."""
    memo: Parsed = {}
    bare = _route("a", "")
    inputs_from([bare], memo)
    assert memo == {}


def test_the_state_file_is_the_same_with_remembered_dumps(tmp_path: Path) -> None:
    memo: Parsed = {}
    dumped: Dumped = {}
    objects = [_route(f"r{i}", "1", f"203.0.113.{i}/32") for i in range(3)]
    inputs = inputs_from(objects, memo)
    save_inputs(tmp_path / "plain.json", inputs)
    save_inputs(tmp_path / "memo.json", inputs, dumped)
    later = inputs_from(objects[1:], memo)  # one route deleted
    save_inputs(tmp_path / "memo.json", later, dumped)
    save_inputs(tmp_path / "plain-later.json", later)
    assert (
        json.loads((tmp_path / "plain.json").read_text())["routes"][1:]
        == json.loads((tmp_path / "memo.json").read_text())["routes"]
    )
    assert (tmp_path / "memo.json").read_text() == (tmp_path / "plain-later.json").read_text()
    assert len(dumped) == 2  # the deleted route's JSON is not kept


def test_a_node_without_service_sessions_plans_no_routes() -> None:
    bad = inputs_from([_route("wide", "1", "0.0.0.0/0")]).routes
    worker = node_desired(
        "n9", NODE_IP, sessions={"tor-n1": session()}, routes=bad, floating_ips=[],
        passwords={},
    )  # fmt: skip
    assert not worker.service.paths
    assert not worker.refused_routes
    lb_node = node_desired(
        "n1", NODE_IP, sessions={"tor-n1": session()}, routes=bad, floating_ips=[],
        passwords={},
    )  # fmt: skip
    assert lb_node.refused_routes  # the same route on a node that would advertise it


class Timed:
    """A reconcile that takes `took` seconds; more changes arrive while it runs."""

    def __init__(self, agent: Agent, took: float, bursts: int) -> None:
        self.agent, self.took, self.bursts = agent, took, bursts
        self.runs: list[tuple[float, float]] = []

    async def __call__(self) -> None:
        started = time.monotonic()
        await asyncio.sleep(self.took)
        if len(self.runs) < self.bursts:
            self.agent.wake.set()  # a change seen meanwhile
        self.runs.append((started, time.monotonic()))


def test_reconciles_of_a_burst_are_paused_as_long_as_each_took() -> None:
    async def scenario() -> list[tuple[float, float]]:
        agent = Agent(
            node="n1", node_ip=NODE_IP, source=cast(Any, None), service=cast(Any, None),
            control_plane=None, floating=cast(Any, None), writer=cast(Any, None),
        )  # fmt: skip
        timed = Timed(agent, 0.1, bursts=3)
        agent.reconcile = timed  # type: ignore[method-assign]
        agent.wake.set()
        loop = asyncio.create_task(agent.reconcile_loop())
        while len(timed.runs) < 4:
            await asyncio.sleep(0.02)
        # The fourth saw nothing new: a change now is taken at once.
        await asyncio.sleep(0.3)
        agent.wake.set()
        asked = time.monotonic()
        while len(timed.runs) < 5:
            await asyncio.sleep(0.01)
        loop.cancel()
        timed.runs.append((asked, asked))
        return timed.runs

    runs = asyncio.run(scenario())
    for (start, end), (after, _) in itertools.pairwise(runs[:4]):
        assert after - end >= 0.9 * (end - start)  # paused while the burst lasted
    asked = runs[5][0]
    assert runs[4][0] - asked < 0.05  # a lone change waits for nothing
