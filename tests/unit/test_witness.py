"""Witness answers are authenticated: a real server and client on loopback."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import aiohttp
import pytest
from aiohttp import web

from bgplb.agent import witness
from bgplb.agent.witness import Answer
from bgplb_lab.kube import free_port

KEY = b"k" * 32


async def _serving(port: int, node: str, key: bytes) -> web.AppRunner:
    return await witness.serve(
        "127.0.0.1", port, node, key=key, reachable_for=lambda: 0.0, renewed_ago=lambda: 1.5
    )


def test_a_witness_with_the_key_is_heard_others_are_not() -> None:
    async def scenario() -> dict[str, Answer | None]:
        good, wrong_key, wrong_node = free_port(), free_port(), free_port()
        runners = [
            await _serving(good, "n2", KEY),
            await _serving(wrong_key, "n3", b"x" * 32),
            await _serving(wrong_node, "n9", KEY),  # published as n4's address
        ]
        try:
            return await witness.ask(
                {
                    "n2": f"127.0.0.1:{good}",
                    "n3": f"127.0.0.1:{wrong_key}",
                    "n4": f"127.0.0.1:{wrong_node}",
                    "n5": f"127.0.0.1:{free_port()}",  # nobody listens
                },
                KEY,
            )
        finally:
            for r in runners:
                await r.cleanup()

    assert asyncio.run(scenario()) == {
        "n2": Answer(0.0, 1.5),
        "n3": None,
        "n4": None,
        "n5": None,
    }


def test_a_replayed_or_altered_answer_is_refused() -> None:
    body = json.dumps({"node": "n2", "nonce": "a" * 32, "reachableForSeconds": 0}).encode()
    signature = witness.sign(KEY, body)
    assert witness.verify(KEY, body, signature, "a" * 32, "n2") == Answer(0.0)
    assert witness.verify(KEY, body, signature, "b" * 32, "n2") is None  # another question's
    altered = body.replace(b'"reachableForSeconds": 0', b'"reachableForSeconds": 9')
    assert witness.verify(KEY, altered, signature, "a" * 32, "n2") is None
    assert witness.verify(KEY, b"[]", witness.sign(KEY, b"[]"), "a" * 32, "n2") is None


def test_a_question_without_a_proper_nonce_is_refused() -> None:
    async def scenario() -> list[int]:
        port = free_port()
        runner = await _serving(port, "n2", KEY)
        try:
            async with aiohttp.ClientSession() as s:
                statuses = []
                for query in ("", "?nonce=xyz", "?nonce=" + "A" * 32):
                    async with s.get(f"http://127.0.0.1:{port}/witness{query}") as r:
                        statuses.append(r.status)
                return statuses
        finally:
            await runner.cleanup()

    assert asyncio.run(scenario()) == [400, 400, 400]


def test_the_key_file_must_hold_a_real_key(tmp_path: Path) -> None:
    path = tmp_path / "key"
    path.write_bytes(b"short\n")
    with pytest.raises(ValueError, match="at least 16 bytes"):
        witness.read_key(path)
    path.write_bytes(KEY + b"\n")
    assert witness.read_key(path) == KEY
