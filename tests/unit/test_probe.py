"""The mesh's wire (probe.py) on loopback: probes are answered while the agent's
event loop is busy, answers and pause notices reach the loop, forgeries do not."""

from __future__ import annotations

import asyncio
import socket
import time

from bgplb.agent import probe

KEY = b"a-test-key-of-enough-bytes"


def ask(port: int, body: dict[str, object], key: bytes = KEY) -> dict[str, object] | None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.5)
        s.sendto(probe.encode(key, body), ("127.0.0.1", port))
        try:
            data, _ = s.recvfrom(65535)
        except TimeoutError:
            return None
        return probe.decode(KEY, data)


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def busy_loop_case() -> None:
    port = free_port()
    prober = probe.Prober("n1", KEY, lambda: {"n3"}, lambda node, suspects: None)
    prober.start("127.0.0.1", port)
    loop = asyncio.get_running_loop()
    try:
        body = {"type": "probe", "node": "n2", "to": "n1", "nonce": "abc"}
        started = time.monotonic()
        # The loop blocks for a second (a long reconcile); the answer must not wait.
        asked = loop.run_in_executor(None, ask, port, body)
        time.sleep(1.0)
        answer = await asked
        assert answer == {"type": "answer", "node": "n1", "nonce": "abc", "suspects": ["n3"]}
        assert time.monotonic() - started < 1.5
        # A forged probe (wrong key) and one meant for another node get no answer.
        assert (
            await loop.run_in_executor(None, ask, port, body, b"another-key-of-enough-bytes")
            is None
        )
        other = {**body, "to": "n9"}
        assert await loop.run_in_executor(None, ask, port, other) is None
    finally:
        prober.close()


async def answers_case() -> None:
    a_port, b_port = free_port(), free_port()
    answers: list[tuple[str, frozenset[str]]] = []
    pauses: list[tuple[str, float]] = []
    a = probe.Prober(
        "a", KEY, frozenset, lambda n, s: answers.append((n, s)), lambda n, s: pauses.append((n, s))
    )
    b = probe.Prober("b", KEY, lambda: {"c"}, lambda n, s: None)
    a.start("127.0.0.1", a_port)
    b.start("127.0.0.1", b_port)
    try:
        a.probe({"b": ("127.0.0.1", b_port)})
        b.pause({"a": ("127.0.0.1", a_port)}, 5.0)
        for _ in range(50):
            await asyncio.sleep(0.02)
            if answers and pauses:
                break
        await asyncio.sleep(0.1)  # any duplicate would have arrived by now
        assert answers == [("b", frozenset({"c"}))]
        assert pauses == [("b", 5.0)]  # sent three times, counted once
    finally:
        a.close()
        b.close()


def test_a_probe_is_answered_while_the_event_loop_is_busy() -> None:
    asyncio.run(busy_loop_case())


def test_answers_and_pauses_reach_the_loop_once() -> None:
    asyncio.run(answers_case())
