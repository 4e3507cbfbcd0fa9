"""One renewal attempt lasts its timeout, not four times it: urllib3's own retries
are off for the Lease (the hedged round retries, on its own terms)."""

from __future__ import annotations

import contextlib
import datetime as dt
import socket
import time
from collections.abc import Iterator

import pytest
from kubernetes import client

from bgplb.agent.lease import LeaseKeeper, coordination_api

TIMEOUT = 0.3


@contextlib.contextmanager
def unanswering_server() -> Iterator[int]:
    """A loopback port whose accept queue is full: connections to it time out (their
    SYNs are dropped), as to an API server that is down behind a live address."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    try:
        for _ in range(4):  # fill the queue; whatever does not fit just waits
            filler = socket.socket()
            filler.setblocking(False)
            with contextlib.suppress(BlockingIOError):
                filler.connect(("127.0.0.1", port))
            fillers.append(filler)
        time.sleep(0.1)
        yield port
    finally:
        for filler in fillers:
            filler.close()
        server.close()


def test_an_attempt_against_an_unreachable_api_server_ends_at_its_timeout() -> None:
    with unanswering_server() as port:
        config = client.Configuration(host=f"https://127.0.0.1:{port}")
        config.verify_ssl = False
        keeper = LeaseKeeper(coordination_api(config), "kube-system", "n1")
        started = time.monotonic()
        with pytest.raises(Exception, match="timed out"):
            keeper.renew(dt.datetime.now(dt.UTC), timeout=TIMEOUT)
        took = time.monotonic() - started
    assert took < 2 * TIMEOUT  # with urllib3's three retries: four timeouts
