"""The agents' mesh on the wire: signed UDP probes and answers (decisions: mesh.py).

Every INTERVAL each agent sends every other agent a probe on the witness port (UDP,
beside the witness's TCP); the answer repeats the probe's nonce, names the answering
node and lists the nodes it has lost. Both are signed with the witness key
(HMAC-SHA256, witness.py), so an answer cannot be forged or replayed, and a node that
is down cannot be made to look alive. A datagram is the 64-hex-digit signature, then
the JSON body.

Probes are answered on a thread of their own, not on the agent's event loop: an
answer says the node is up, and must not wait behind a reconcile or a burst of
watch events (the loop can be busy for longer than the mesh's silence threshold
on a CPU-starved node). Everything else a datagram brings (answers to this
agent's probes, pause notices) is handed to the loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
import secrets
import socket
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from bgplb.agent.witness import sign

log = logging.getLogger("bgplb.agent")

SIGNATURE_CHARS = 64
PENDING_PER_PEER = 32
"""Nonces kept per peer: answers up to 3 s late (at 100 ms) still count."""
PAUSE_FRESH = 10.0
"""A pause notice older than this (by the sender's wall clock) is a replay: ignored."""
PAUSE_MAX = 60.0
PAUSE_COPIES = 3
"""A pause notice is sent this many times (same nonce, counted once): one lost
datagram must not make a restart look like a dead node."""
RECEIVE_TIMEOUT = 0.2
"""How soon the answering thread notices `close`."""


def encode(key: bytes, body: Mapping[str, Any]) -> bytes:
    data = json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
    return sign(key, data).encode() + data


def decode(key: bytes, datagram: bytes) -> dict[str, Any] | None:
    """The body of a datagram signed with `key`; None for anything else."""
    signature, data = datagram[:SIGNATURE_CHARS], datagram[SIGNATURE_CHARS:]
    try:
        if not hmac.compare_digest(sign(key, data).encode(), signature):
            return None
        body = json.loads(data)
    except (ValueError, TypeError):
        return None
    return body if isinstance(body, dict) else None


class Prober:
    """Answers probes; sends them (`probe`); hands verified answers to `on_answer`
    and pause notices to `on_pause`, both on the event loop that called `start`."""

    def __init__(
        self,
        node: str,
        key: bytes,
        suspects: Callable[[], Iterable[str]],
        on_answer: Callable[[str, frozenset[str]], None],
        on_pause: Callable[[str, float], None] = lambda node, seconds: None,
    ) -> None:
        self.on_pause = on_pause
        self.seen_pauses: set[str] = set()
        self.node = node
        self.key = key
        self.suspects = suspects
        self.on_answer = on_answer
        self.pending: dict[str, list[str]] = {}
        """Peer → nonces of its recent probes, oldest first."""
        self.sock: socket.socket | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closed = threading.Event()

    def start(self, host: str, port: int) -> None:
        """Bind the witness port (UDP) and answer on a thread; call on the loop."""
        self.loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        try:
            sock.bind((host, port))
        except OSError:
            sock.close()
            raise
        sock.settimeout(RECEIVE_TIMEOUT)
        self.sock = sock
        threading.Thread(target=self._serve, name="mesh-answers", daemon=True).start()

    def close(self) -> None:
        self.closed.set()
        if self.sock is not None:
            self.sock.close()

    def _send(self, body: Mapping[str, Any], address: tuple[str, int]) -> None:
        if self.sock is None or self.closed.is_set():
            return
        # An unreachable peer is a lost answer, which the mesh counts.
        with contextlib.suppress(OSError):
            self.sock.sendto(encode(self.key, body), address)

    def _serve(self) -> None:
        assert self.sock is not None
        while not self.closed.is_set():
            try:
                data, addr = self.sock.recvfrom(65535)
            except TimeoutError:
                continue
            except OSError:
                if self.closed.is_set():
                    return
                continue  # an ICMP error for an earlier datagram: nothing to answer
            self.datagram_received(data, addr)

    def probe(self, peers: Mapping[str, tuple[str, int]]) -> None:
        for node, address in peers.items():
            nonce = secrets.token_hex(8)
            nonces = self.pending.setdefault(node, [])
            nonces.append(nonce)
            del nonces[:-PENDING_PER_PEER]
            self._send({"type": "probe", "node": self.node, "to": node, "nonce": nonce}, address)
        for gone in set(self.pending) - set(peers):
            del self.pending[gone]

    def pause(self, peers: Mapping[str, tuple[str, int]], seconds: float) -> None:
        """Tell every peer this agent is stopping and a successor answers within
        `seconds`: a restart is not a dead node."""
        for node, address in peers.items():
            body = {
                "type": "pause",
                "node": self.node,
                "to": node,
                "nonce": secrets.token_hex(8),
                "seconds": seconds,
                "at": time.time(),
            }
            for _ in range(PAUSE_COPIES):
                self._send(body, address)

    def datagram_received(self, data: bytes, addr: tuple[str, int]) -> None:
        """On the answering thread: answer a probe here; pass anything else on."""
        body = decode(self.key, data)
        if body is None:
            return
        kind, node, nonce = body.get("type"), body.get("node"), body.get("nonce")
        if not isinstance(node, str) or not isinstance(nonce, str):
            return
        if kind == "probe" and body.get("to") == self.node:
            answer = {
                "type": "answer",
                "node": self.node,
                "nonce": nonce,
                "suspects": sorted(self.suspects()),
            }
            self._send(answer, addr)
        elif kind in ("answer", "pause") and self.loop is not None:
            with contextlib.suppress(RuntimeError):  # the loop is closing
                self.loop.call_soon_threadsafe(self.received, body)

    def received(self, body: Mapping[str, Any]) -> None:
        """On the event loop: an answer to one of this agent's probes, or a pause."""
        kind, node, nonce = body["type"], body["node"], body["nonce"]
        if kind == "pause" and body.get("to") == self.node and nonce not in self.seen_pauses:
            seconds, at = body.get("seconds"), body.get("at")
            if not isinstance(seconds, int | float) or not isinstance(at, int | float):
                return
            if abs(time.time() - at) > PAUSE_FRESH:
                return
            if len(self.seen_pauses) > 4096:
                self.seen_pauses.clear()  # older ones are stale by PAUSE_FRESH anyway
            self.seen_pauses.add(nonce)
            self.on_pause(node, min(float(seconds), PAUSE_MAX))
        elif kind == "answer" and nonce in self.pending.get(node, ()):
            self.pending[node].remove(nonce)  # once: a replay counts for nothing
            suspects = body.get("suspects")
            if isinstance(suspects, list) and all(isinstance(s, str) for s in suspects):
                self.on_answer(node, frozenset(suspects))
