"""The node's Lease: renewed every second; the controller's liveness signal.

The controller moves a node's floating IPs once its Lease expires; what the agent
does when it cannot renew is fencing.py's.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import functools
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from typing import Any

from bgplb.api.contract import (
    ADDRESSES_ANNOTATION,
    HOLDING_ANNOTATION,
    WITNESS_ANNOTATION,
    format_addresses,
    format_holding,
    lease_name,
)

DEFAULT_DURATION = 3.0
RENEWAL_THREADS = 6
"""Threads for renewals alone: a hedged round runs up to three attempts, and the
attempts it abandons at its deadline may hold their threads a while longer."""


def coordination_api(configuration: Any = None) -> Any:
    """A CoordinationV1Api of its own, with urllib3's retries off. Its default retries
    a connection that times out three more times, so one attempt ran four times its
    timeout (3.2 s at 0.8), past the fencing deadline, holding its thread after the
    hedged round had given it up; seen as an API outage ended, where the first
    renewals queued behind them. Hedged rounds (hedge.py) do the retrying."""
    from kubernetes import client

    config = configuration or client.Configuration.get_default_copy()
    config.retries = 0
    return client.CoordinationV1Api(client.ApiClient(config))


def _micro_time(t: dt.datetime) -> str:
    return t.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


@dataclass
class LeaseKeeper:
    """Creates, then renews, `bgplb-node-<node>` in the operator's namespace."""

    api: Any
    """kubernetes.client.CoordinationV1Api"""
    namespace: str
    node: str
    duration: float = DEFAULT_DURATION
    timeout: float = 0.8
    witness: str | None = None
    """This agent's witness address (`host:port`), advertised in the Lease."""
    threads: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(RENEWAL_THREADS, thread_name_prefix="lease")
    )

    async def renew_async(
        self,
        now: dt.datetime,
        addresses: Iterable[IPv4Interface] = (),
        holding: tuple[int, Iterable[IPv4Address]] | None = None,
        timeout: float | None = None,
    ) -> None:
        """`renew` on threads of its own, not the event loop's default executor:
        there a renewal queued behind status writes and Secret reads stuck on a slow
        API server, and missed its fencing deadline with nothing wrong with it."""
        call = functools.partial(self.renew, now, addresses, None, holding, timeout)
        await asyncio.get_running_loop().run_in_executor(self.threads, call)

    def renew(
        self,
        now: dt.datetime,
        addresses: Iterable[IPv4Interface] = (),
        duration: float | None = None,
        holding: tuple[int, Iterable[IPv4Address]] | None = None,
        timeout: float | None = None,
    ) -> None:
        """Renew, carrying the node's addresses with their prefix lengths: the
        controller places floating IPs on nodes that have an address in their subnet.
        `duration` longer than usual: this agent is stopping and its successor will
        renew within it (the controller keeps the node live that long). `timeout`:
        this request's, when a hedged round gives it less or more than usual."""
        from kubernetes.client.exceptions import ApiException

        timeout = self.timeout if timeout is None else timeout

        body = {
            "apiVersion": "coordination.k8s.io/v1",
            "kind": "Lease",
            "metadata": {
                "name": lease_name(self.node),
                "namespace": self.namespace,
                "annotations": {
                    ADDRESSES_ANNOTATION: format_addresses(addresses),
                    **({WITNESS_ANNOTATION: self.witness} if self.witness else {}),
                    **({HOLDING_ANNOTATION: format_holding(*holding)} if holding else {}),
                },
            },
            "spec": {
                "holderIdentity": self.node,
                "leaseDurationSeconds": max(1, round(duration or self.duration)),
                "renewTime": _micro_time(now),
            },
        }
        try:
            self.api.patch_namespaced_lease(
                lease_name(self.node), self.namespace, body, _request_timeout=timeout
            )
        except ApiException as e:
            if e.status != 404:
                raise
            body["spec"]["acquireTime"] = _micro_time(now)  # type: ignore[index]
            self.api.create_namespaced_lease(self.namespace, body, _request_timeout=timeout)
