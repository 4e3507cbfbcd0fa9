"""BFD (RFC 5880, single hop RFC 5881) for the sessions this node runs, as a pure
state machine and its packets (the sockets and timers: bfd_speaker.py).

Why the agent speaks BFD itself: a ToR keeps a dead node's BGP session, and with it
every path the session carried, until its hold timer (9 s in the lab) — the dead
node's next hop included, even once the other speakers withdrew it. BFD lets the
ToR drop the session within `multiplier x interval`. gobgpd 3.10 has no BFD, and
GoBGP 4's sends from whatever address the kernel picks (the node's), while a
floating-IP session must be matched by its floating IP: so the packets go from the
session's own local address here.

Asynchronous mode only (no demand mode, no echo, no authentication).
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass, replace

VERSION = 1
PORT = 3784
"""Single-hop control packets go to this UDP port (RFC 5881)."""
SOURCE_PORTS = (49152, 65535)
SLOW_TX_US = 1_000_000
"""While a session is not Up it sends at most once a second (RFC 5880 6.8.3)."""
_FORMAT = struct.Struct("!BBBBIIIII")
LENGTH = _FORMAT.size


class State(enum.IntEnum):
    ADMIN_DOWN = 0
    DOWN = 1
    INIT = 2
    UP = 3


class Diag(enum.IntEnum):
    NONE = 0
    DETECTION_EXPIRED = 1
    NEIGHBOR_DOWN = 3
    ADMIN_DOWN = 7


@dataclass(frozen=True)
class Timers:
    """What a BGPPeer asks for (microseconds on the wire, milliseconds in the API)."""

    transmit_us: int = 300_000
    receive_us: int = 300_000
    multiplier: int = 3


@dataclass(frozen=True)
class Packet:
    state: State
    my_discriminator: int
    your_discriminator: int
    multiplier: int
    desired_min_tx_us: int
    required_min_rx_us: int
    diag: int = 0
    poll: bool = False
    final: bool = False

    def encode(self) -> bytes:
        flags = (self.state << 6) | (0x20 if self.poll else 0) | (0x10 if self.final else 0)
        return _FORMAT.pack(
            (VERSION << 5) | (self.diag & 0x1F),
            flags,
            self.multiplier,
            LENGTH,
            self.my_discriminator,
            self.your_discriminator,
            self.desired_min_tx_us,
            self.required_min_rx_us,
            0,  # no echo
        )

    @staticmethod
    def decode(data: bytes) -> Packet | None:
        """The packet, or None for one RFC 5880 6.8.6 says to discard (authentication
        and demand mode are not spoken here: such packets are discarded too)."""
        if len(data) < LENGTH:
            return None
        vers_diag, flags, mult, length, mine, yours, tx, rx, _ = _FORMAT.unpack_from(data)
        if vers_diag >> 5 != VERSION or length < LENGTH or length > len(data):
            return None
        if mult == 0 or mine == 0 or flags & 0x0F:  # C/A/D/M: multipoint, auth, demand
            return None
        state = State(flags >> 6)
        if yours == 0 and state not in (State.DOWN, State.ADMIN_DOWN):
            return None
        return Packet(
            state=state,
            my_discriminator=mine,
            your_discriminator=yours,
            multiplier=mult,
            desired_min_tx_us=tx,
            required_min_rx_us=rx,
            diag=vers_diag & 0x1F,
            poll=bool(flags & 0x20),
            final=bool(flags & 0x10),
        )


@dataclass(frozen=True)
class Session:
    """One BFD session: this node's local address to one peer."""

    discriminator: int
    timers: Timers = Timers()
    state: State = State.DOWN
    diag: Diag = Diag.NONE
    remote_discriminator: int = 0
    remote_state: State = State.DOWN
    remote_min_rx_us: int = 1
    remote_min_tx_us: int = 0
    remote_multiplier: int = 0
    last_received: float | None = None
    polling: bool = False
    """A Poll Sequence is on (this side's intervals changed): P until an F comes."""
    owe_final: bool = False
    """The peer polled: the next packet, sent at once, carries F."""

    # --- what to send, and when -------------------------------------------------

    @property
    def desired_min_tx_us(self) -> int:
        if self.state == State.UP:
            return self.timers.transmit_us
        return max(self.timers.transmit_us, SLOW_TX_US)

    def transmit_interval(self) -> float | None:
        """Seconds between packets before jitter; None: the peer wants none."""
        if self.remote_min_rx_us == 0:
            return None
        return max(self.desired_min_tx_us, self.remote_min_rx_us) / 1e6

    def detection_time(self) -> float:
        return self.remote_multiplier * max(self.timers.receive_us, self.remote_min_tx_us) / 1e6

    def packet(self) -> tuple[Session, Packet]:
        """The next packet to send, and the session after sending it (an F is owed once)."""
        p = Packet(
            state=self.state,
            my_discriminator=self.discriminator,
            your_discriminator=self.remote_discriminator,
            multiplier=self.timers.multiplier,
            desired_min_tx_us=self.desired_min_tx_us,
            required_min_rx_us=self.timers.receive_us,
            diag=self.diag,
            poll=self.polling and not self.owe_final,
            final=self.owe_final,
        )
        return replace(self, owe_final=False), p

    # --- events -------------------------------------------------------------------

    def received(self, p: Packet, now: float) -> Session:
        """RFC 5880 6.8.6, from "set bfd.RemoteDiscr" on (the caller has matched the
        packet to this session)."""
        s = replace(
            self,
            remote_discriminator=p.my_discriminator,
            remote_state=p.state,
            remote_min_rx_us=p.required_min_rx_us,
            remote_min_tx_us=p.desired_min_tx_us,
            remote_multiplier=p.multiplier,
            last_received=now,
            owe_final=self.owe_final or p.poll,
            polling=self.polling and not p.final,
        )
        if s.state == State.ADMIN_DOWN:
            return self
        if p.state == State.ADMIN_DOWN:
            return s._to(State.DOWN, Diag.NEIGHBOR_DOWN) if s.state != State.DOWN else s
        if s.state == State.DOWN:
            if p.state == State.DOWN:
                return s._to(State.INIT, Diag.NONE)
            if p.state == State.INIT:
                return s._to(State.UP, Diag.NONE)
            return s
        if s.state == State.INIT:
            return s._to(State.UP, Diag.NONE) if p.state in (State.INIT, State.UP) else s
        if p.state == State.DOWN:  # we are Up
            return s._to(State.DOWN, Diag.NEIGHBOR_DOWN)
        return s

    def expired(self, now: float) -> Session:
        """Down if nothing came within the detection time (6.8.4)."""
        if self.state not in (State.INIT, State.UP) or self.last_received is None:
            return self
        if now - self.last_received <= self.detection_time():
            return self
        return replace(self._to(State.DOWN, Diag.DETECTION_EXPIRED), remote_discriminator=0)

    def _to(self, state: State, diag: Diag) -> Session:
        # Coming Up lowers this side's transmit interval from the slow one: tell the
        # peer with a Poll Sequence (6.8.3); going Down ends any.
        if state != State.UP:
            return replace(self, state=state, diag=diag, polling=False)
        return replace(self, state=state, diag=diag, polling=self.polling or self.state != state)
