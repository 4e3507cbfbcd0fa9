"""BFD on the wire (decisions: bfd.py): one thread, its sockets and its timers.

A thread of its own, not the agent's event loop: a late packet is a session the ToR
drops (three missed at 300 ms), and the loop can be busy for longer than that.

Safety: a session sends only from an address this node holds. Its socket is bound
to the address (no IP_FREEBIND), so once the agent drops a floating IP (fenced, or
moved) every send fails and the ToR's BFD session, and with it the BGP session,
goes down: no node keeps another's session alive.
"""

from __future__ import annotations

import contextlib
import logging
import random
import secrets
import selectors
import socket
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address

from bgplb.agent.bfd import PORT, SOURCE_PORTS, Packet, Session, State, Timers

log = logging.getLogger("bgplb.agent")

IP_RECVTTL = 12
"""linux/in.h; not in Python's socket module."""
TTL = 255
"""Single hop: sent with 255, and only 255 accepted (RFC 5881 5, GTSM)."""
TICK = 0.02
"""The thread's longest sleep: how late a detection can be noticed."""

Key = tuple[IPv4Address, IPv4Address]
"""(local address, peer address)."""


@dataclass
class _Running:
    session: Session
    sock: socket.socket
    next_send: float = 0.0


@dataclass
class BfdSpeaker:
    """Keeps the BFD sessions `sync` asks for, on a thread started by `start`."""

    sessions: dict[Key, _Running] = field(default_factory=dict)
    receivers: dict[IPv4Address, socket.socket] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    closed: threading.Event = field(default_factory=threading.Event)
    selector: selectors.DefaultSelector = field(default_factory=selectors.DefaultSelector)
    thread: threading.Thread | None = None

    def start(self) -> None:
        self.thread = threading.Thread(target=self._run, name="bfd", daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.closed.set()
        if self.thread is not None:
            self.thread.join(timeout=1.0)
        with self.lock:
            for key in list(self.sessions):
                self._remove(key)

    def states(self) -> dict[Key, State]:
        with self.lock:
            return {k: r.session.state for k, r in self.sessions.items()}

    def sync(self, wanted: Mapping[Key, Timers]) -> dict[Key, str]:
        """Run exactly the sessions in `wanted` (changed timers restart a session).
        Returns the ones that could not start, with why (an address this node does
        not hold: they are tried again on the next sync)."""
        failed: dict[Key, str] = {}
        with self.lock:
            for key in [k for k, r in self.sessions.items() if wanted.get(k) != r.session.timers]:
                self._remove(key)
            for key, timers in wanted.items():
                if key in self.sessions:
                    continue
                try:
                    self._add(key, timers)
                except OSError as e:
                    failed[key] = str(e)
        return failed

    # --- under the lock -----------------------------------------------------------

    def _add(self, key: Key, timers: Timers) -> None:
        local, _ = key
        if local not in self.receivers:
            rx = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            try:
                rx.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                rx.setsockopt(socket.IPPROTO_IP, IP_RECVTTL, 1)
                rx.bind((str(local), PORT))
            except OSError:
                rx.close()
                raise
            rx.setblocking(False)
            self.receivers[local] = rx
            self.selector.register(rx, selectors.EVENT_READ, local)
        self.sessions[key] = _Running(Session(self._discriminator(), timers), _sender(*key))
        log.info("bfd session started", extra={"local": str(local), "peer": str(key[1])})

    def _remove(self, key: Key) -> None:
        running = self.sessions.pop(key)
        running.sock.close()
        local = key[0]
        if not any(k[0] == local for k in self.sessions):
            rx = self.receivers.pop(local)
            self.selector.unregister(rx)
            rx.close()

    def _discriminator(self) -> int:
        used = {r.session.discriminator for r in self.sessions.values()}
        while (d := secrets.randbits(32)) == 0 or d in used:
            pass
        return d

    # --- the thread ---------------------------------------------------------------

    def _run(self) -> None:
        while not self.closed.is_set():
            with self.lock:
                timeout = self._due(time.monotonic())
                ready = self.selector.select(0) if self.receivers else []
                for key, _ in ready:
                    self._receive(key.fileobj, key.data)  # type: ignore[arg-type]
            if not ready:
                if self.receivers:
                    self.selector.select(timeout)  # woken by a packet, read next round
                else:
                    self.closed.wait(timeout)

    def _due(self, now: float) -> float:
        """Expire and send what is due; the seconds until something else is."""
        wait = TICK
        for key, r in self.sessions.items():
            was = r.session.state
            r.session = r.session.expired(now)
            if r.session.owe_final or now >= r.next_send:
                self._send(r, now)
            interval = r.session.transmit_interval()
            if interval is not None:
                wait = min(wait, max(0.0, r.next_send - now))
            if r.session.state != was:
                _logged(key, was, r.session)
        return wait

    def _send(self, r: _Running, now: float) -> None:
        interval = r.session.transmit_interval()
        if interval is None and not r.session.owe_final:
            r.next_send = now + 1.0
            return
        r.session, packet = r.session.packet()
        # Up to 25 % early, never late (6.8.7); 10 % with a multiplier of 1.
        jitter = random.uniform(0.75, 0.9 if r.session.timers.multiplier == 1 else 1.0)
        r.next_send = now + (interval or 1.0) * jitter
        with contextlib.suppress(OSError):  # the address is gone: the ToR sees silence
            r.sock.send(packet.encode())

    def _receive(self, rx: socket.socket, local: IPv4Address) -> None:
        while True:
            try:
                data, ancillary, _, (host, _port) = rx.recvmsg(128, socket.CMSG_SPACE(4))
            except (BlockingIOError, InterruptedError):
                return
            except OSError:
                return
            ttl = next(
                (
                    int.from_bytes(d[:4], "little")
                    for level, kind, d in ancillary
                    if level == socket.IPPROTO_IP and kind == socket.IP_TTL
                ),
                None,
            )
            packet = Packet.decode(data)
            if packet is None or ttl != TTL:
                continue
            key = self._match(local, IPv4Address(host), packet)
            if key is None:
                continue
            r = self.sessions[key]
            was = r.session.state
            r.session = r.session.received(packet, time.monotonic())
            if r.session.state != was:
                _logged(key, was, r.session)

    def _match(self, local: IPv4Address, peer: IPv4Address, packet: Packet) -> Key | None:
        if packet.your_discriminator:
            for key, r in self.sessions.items():
                if r.session.discriminator == packet.your_discriminator:
                    return key if key == (local, peer) else None
            return None
        key = (local, peer)
        return key if key in self.sessions else None


def _sender(local: IPv4Address, peer: IPv4Address) -> socket.socket:
    """A socket from `local` and a port in 49152-65535 (RFC 5881 4) to the peer's
    BFD port, TTL 255."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    try:
        sock.setsockopt(socket.IPPROTO_IP, socket.IP_TTL, TTL)
        for _ in range(64):
            try:
                sock.bind((str(local), random.randint(*SOURCE_PORTS)))
                break
            except OSError as e:
                if e.errno != 98:  # EADDRINUSE: another port
                    raise
        else:
            raise OSError(98, "no free BFD source port")
        sock.connect((str(peer), PORT))
        sock.setblocking(False)
    except OSError:
        sock.close()
        raise
    return sock


def _logged(key: Key, was: State, session: Session) -> None:
    log.info(
        "bfd session state changed",
        extra={
            "local": str(key[0]),
            "peer": str(key[1]),
            "state": session.state.name,
            "was": was.name,
            "diag": session.diag.name,
        },
    )
