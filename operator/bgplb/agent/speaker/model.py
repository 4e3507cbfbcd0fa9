"""What a node's BGP speaker should hold, and the Speaker protocol that applies it."""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from typing import Protocol

from bgplb.api.bgpsession import SessionState
from bgplb.core.attributes import NONE, Attributes


@dataclass(frozen=True, slots=True)
class PeerConfig:
    """One neighbour, complete: a driver never sends a partial peer."""

    address: IPv4Address
    peer_asn: int
    local_asn: int
    local_address: IPv4Address | None = None
    """Source of the session: a floating IP or the node's IP."""
    multihop_ttl: int = 255
    hold_time: int = 90
    keepalive: int = 30
    connect_retry: int = 2
    password: str = ""
    graceful_restart: bool = False
    restart_time: int = 120
    add_path_send_max: int = 0
    """> 0: advertise up to this many paths per prefix (ADD-PATH send)."""
    description: str = ""

    def needs_reset_to_change_to(self, other: PeerConfig) -> bool:
        """Changes a running session cannot take without being rebuilt."""
        return (
            self.local_address,
            self.peer_asn,
            self.local_asn,
            self.password,
            self.graceful_restart,
            self.restart_time,
            self.add_path_send_max,
        ) != (
            other.local_address,
            other.peer_asn,
            other.local_asn,
            other.password,
            other.graceful_restart,
            other.restart_time,
            other.add_path_send_max,
        )


@dataclass(frozen=True, slots=True, order=True)
class PathConfig:
    """One path to advertise. With ADD-PATH a VIP has one per next hop."""

    prefix: IPv4Network
    next_hop: IPv4Address
    identifier: int = 0
    """ADD-PATH path identifier; distinct per next hop of a prefix (0 without ADD-PATH)."""
    attributes: Attributes = NONE
    """Communities, prepend, MED: a change re-sends the path under the same identifier
    (an implicit replace on the wire, never a withdrawal)."""

    @property
    def key(self) -> tuple[IPv4Network, IPv4Address, int]:
        """What identifies the path on the wire; `attributes` only describe it."""
        return (self.prefix, self.next_hop, self.identifier)


def path_identifier(next_hop: IPv4Address) -> int:
    """A next hop's address is a path identifier that is unique and never changes."""
    return int(next_hop)


@dataclass(frozen=True)
class SpeakerConfig:
    asn: int
    router_id: IPv4Address
    peers: Mapping[IPv4Address, PeerConfig] = field(default_factory=dict)
    paths: frozenset[PathConfig] = frozenset()
    denied: Mapping[IPv4Network, frozenset[IPv4Address]] = field(default_factory=dict)
    """Prefix → neighbours it must not be sent to (a pool's peerSelector leaves them
    out); prefixes sent to every neighbour are absent."""


@dataclass(frozen=True, slots=True)
class PeerStatus:
    address: IPv4Address
    state: SessionState
    established_since: dt.datetime | None = None
    received_prefixes: int = 0
    advertised_prefixes: int = 0
    last_error: str = ""


class Speaker(Protocol):
    """A BGP speaker driven towards a desired configuration."""

    async def apply(self, desired: SpeakerConfig) -> int:
        """Make the speaker hold exactly `desired`; returns how many changes were sent.

        Idempotent: applying what is already held sends nothing.
        """
        ...

    async def peer_status(self) -> dict[IPv4Address, PeerStatus]:
        """Every neighbour's session state and counters now."""
        ...

    def watch(self) -> AsyncIterator[PeerStatus]:
        """Session state changes as they happen (not polled)."""
        ...
