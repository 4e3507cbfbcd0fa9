"""The agents' mesh on the wire: signed UDP probes and answers (decisions: mesh.py).

Every INTERVAL each agent sends every other agent a probe on the witness port (UDP,
beside the witness's TCP); the answer repeats the probe's nonce, names the answering
node and lists the nodes it has lost. Both are signed with the witness key
(HMAC-SHA256, witness.py), so an answer cannot be forged or replayed, and a node that
is down cannot be made to look alive. A datagram is the 64-hex-digit signature, then
the JSON body.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import logging
import secrets
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, cast

from bgplb.agent.witness import sign

log = logging.getLogger("bgplb.agent")

SIGNATURE_CHARS = 64
PENDING_PER_PEER = 32
"""Nonces kept per peer: answers up to 3 s late (at 100 ms) still count."""
PAUSE_FRESH = 10.0
"""A pause notice older than this (by the sender's wall clock) is a replay: ignored."""
PAUSE_MAX = 60.0


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


class Prober(asyncio.DatagramProtocol):
    """Answers probes; sends them (`probe`); hands verified answers to `on_answer`."""

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
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def error_received(self, exc: Exception) -> None:
        # An unreachable peer (ICMP) is a lost answer, which the mesh counts.
        pass

    def probe(self, peers: Mapping[str, tuple[str, int]]) -> None:
        if self.transport is None:
            return
        for node, address in peers.items():
            nonce = secrets.token_hex(8)
            nonces = self.pending.setdefault(node, [])
            nonces.append(nonce)
            del nonces[:-PENDING_PER_PEER]
            body = {"type": "probe", "node": self.node, "to": node, "nonce": nonce}
            self.transport.sendto(encode(self.key, body), address)
        for gone in set(self.pending) - set(peers):
            del self.pending[gone]

    def pause(self, peers: Mapping[str, tuple[str, int]], seconds: float) -> None:
        """Tell every peer this agent is stopping and a successor answers within
        `seconds`: a restart is not a dead node."""
        if self.transport is None:
            return
        for node, address in peers.items():
            body = {
                "type": "pause",
                "node": self.node,
                "to": node,
                "nonce": secrets.token_hex(8),
                "seconds": seconds,
                "at": time.time(),
            }
            self.transport.sendto(encode(self.key, body), address)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        body = decode(self.key, data)
        if body is None or self.transport is None:
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
            self.transport.sendto(encode(self.key, answer), addr)
        elif kind == "pause" and body.get("to") == self.node and nonce not in self.seen_pauses:
            seconds, at = body.get("seconds"), body.get("at")
            if not all(isinstance(v, int | float) for v in (seconds, at)):
                return
            if abs(time.time() - at) > PAUSE_FRESH:  # type: ignore[operator]
                return
            if len(self.seen_pauses) > 4096:
                self.seen_pauses.clear()  # older ones are stale by PAUSE_FRESH anyway
            self.seen_pauses.add(nonce)
            self.on_pause(node, min(float(seconds), PAUSE_MAX))  # type: ignore[arg-type]
        elif kind == "answer" and nonce in self.pending.get(node, ()):
            self.pending[node].remove(nonce)  # once: a replay counts for nothing
            suspects = body.get("suspects")
            if isinstance(suspects, list) and all(isinstance(s, str) for s in suspects):
                self.on_answer(node, frozenset(suspects))


async def listen(host: str, port: int, prober: Prober) -> asyncio.DatagramTransport:
    loop = asyncio.get_running_loop()
    transport, _ = await loop.create_datagram_endpoint(lambda: prober, local_addr=(host, port))
    return transport
