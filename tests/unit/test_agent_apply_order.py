"""A new route reaches the speaker before the agent writes its state file, and the
agent measures the change's way from its watch to the speaker."""

from __future__ import annotations

import asyncio
import tempfile
import time
from ipaddress import IPv4Address
from pathlib import Path
from typing import Any, cast

from prometheus_client import REGISTRY

from bgplb.agent.floating import SyncResult
from bgplb.agent.main import Agent
from bgplb.agent.source import Inputs
from bgplb.agent.speaker.fake import FakeSpeaker
from bgplb.agent.speaker.model import SpeakerConfig
from tests.unit.test_agent_logic import NODE_IP, ROUTE, session


class Source:
    def __init__(self, inputs: Inputs) -> None:
        self.inputs = inputs

    def read(self) -> Inputs:
        return self.inputs


class Interfaces:
    async def ours(self) -> frozenset[IPv4Address]:
        return frozenset({IPv4Address("192.0.2.100")})

    async def sync(self, desired: object) -> SyncResult:
        return SyncResult()


class Writer:
    def write(self, name: str, status: object) -> None:
        pass


class WatchingSpeaker(FakeSpeaker):
    """Notes whether the state file was already written when a change arrived."""

    listening = 0

    def __init__(self, state_file: Path) -> None:
        super().__init__()
        self.state_file = state_file
        self.file_there_at_apply: list[bool] = []

    async def apply(self, desired: SpeakerConfig) -> int:
        changes = await super().apply(desired)
        if changes:
            self.file_there_at_apply.append(self.state_file.exists())
        return changes


def _applied_count() -> float:
    return REGISTRY.get_sample_value("bgplb_agent_apply_delay_seconds_count") or 0.0


def _agent(
    speaker: WatchingSpeaker,
    floating: Interfaces,
    state: Path | None = None,
    writer: Writer | None = None,
) -> Agent:
    """An agent of n1 holding its floating IP, with one route to advertise, and a
    change just seen."""
    inputs = Inputs(
        sessions={"tor-n1": session()},
        routes=(ROUTE,),
        floating_ips={IPv4Address("192.0.2.100"): "n1"},
    )
    agent = Agent(
        node="n1",
        node_ip=NODE_IP,
        source=cast(Any, Source(inputs)),
        service=cast(Any, speaker),
        control_plane=None,
        floating=cast(Any, floating),
        writer=cast(Any, writer or Writer()),
        state_file=state,
    )
    agent.changed_at = time.monotonic()
    return agent


def test_the_speaker_gets_a_change_before_the_state_file_and_the_delay_is_measured() -> None:
    async def scenario() -> tuple[list[bool], bool, float]:
        with tempfile.TemporaryDirectory() as tmp:
            state = Path(tmp) / "state.json"
            speaker = WatchingSpeaker(state)
            agent = _agent(speaker, Interfaces(), state)
            before = _applied_count()
            await agent.reconcile()
            return speaker.file_there_at_apply, state.exists(), _applied_count() - before

    at_apply, saved, measured = asyncio.run(scenario())
    assert at_apply == [False]  # the speaker had the route before the file was written
    assert saved  # and the file is written in the same reconcile
    assert measured == 1


class SlowInterfaces(Interfaces):
    """Interface work that takes long (pyroute2 in a Pod with little CPU)."""

    async def sync(self, desired: object) -> SyncResult:
        await asyncio.sleep(0.3)
        return SyncResult()


def _applied_sum() -> float:
    return REGISTRY.get_sample_value("bgplb_agent_apply_delay_seconds_sum") or 0.0


def test_the_measured_delay_ends_when_the_speaker_has_the_change() -> None:
    """With no floating IP to move the speaker goes first; the interfaces' re-check
    after it is no part of the change's way to the routers, so not of its figure."""

    async def scenario() -> float:
        agent = _agent(WatchingSpeaker(Path("/nonexistent")), SlowInterfaces())
        before = _applied_sum()
        await agent.reconcile()
        return _applied_sum() - before

    assert asyncio.run(scenario()) < 0.2


class SlowWriter(Writer):
    """Status writes that take long (an API server under load)."""

    def __init__(self) -> None:
        self.written: list[str] = []

    def write(self, name: str, status: object) -> None:
        time.sleep(0.5)
        self.written.append(name)


def test_session_statuses_are_written_off_the_reconciles_path() -> None:
    """A reconcile ends once the data plane has the change; the statuses it calls
    for follow, so the next change (the next Service) does not wait for them."""

    async def scenario() -> tuple[float, list[str]]:
        writer = SlowWriter()
        agent = _agent(WatchingSpeaker(Path("/nonexistent")), Interfaces(), writer=writer)
        reporting = asyncio.create_task(agent.report_loop())
        try:
            started = time.monotonic()
            await agent.reconcile()
            took = time.monotonic() - started
            for _ in range(50):
                if writer.written:
                    break
                await asyncio.sleep(0.05)
        finally:
            reporting.cancel()
        return took, writer.written

    took, written = asyncio.run(scenario())
    assert took < 0.4
    assert written == ["tor-n1"]  # and the status is written all the same
