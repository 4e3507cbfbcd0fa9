"""An in-memory Speaker for fast unit tests of the logic around it."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import replace
from ipaddress import IPv4Address

from bgplb.agent.speaker.model import PeerStatus, SpeakerConfig
from bgplb.api.bgpsession import SessionState


class FakeSpeaker:
    """Holds what was applied; sessions change state only when a test says so."""

    def __init__(self) -> None:
        self.held = SpeakerConfig(asn=0, router_id=IPv4Address(0))
        self.changes = 0
        self._status: dict[IPv4Address, PeerStatus] = {}
        self._events: asyncio.Queue[PeerStatus] = asyncio.Queue()

    async def apply(self, desired: SpeakerConfig) -> int:
        held = self.held
        changes = int((held.asn, held.router_id) != (desired.asn, desired.router_id))
        changes += sum(1 for a, p in desired.peers.items() if held.peers.get(a) != p)
        changes += sum(1 for a in held.peers if a not in desired.peers)
        changes += len(desired.paths ^ held.paths)
        for address in desired.peers:
            self._status.setdefault(address, PeerStatus(address, "Active"))
        for address in set(self._status) - set(desired.peers):
            del self._status[address]
        self.held = desired
        self.changes += changes
        return changes

    async def peer_status(self) -> dict[IPv4Address, PeerStatus]:
        return dict(self._status)

    def set_state(self, address: IPv4Address, state: SessionState) -> None:
        status = replace(self._status[address], state=state)
        self._status[address] = status
        self._events.put_nowait(status)

    async def watch(self) -> AsyncIterator[PeerStatus]:
        while True:
            yield await self._events.get()
