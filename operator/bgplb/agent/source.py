"""Where an agent reads what its node should hold: a file, or the API."""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path
from typing import Any, Protocol

import yaml
from pydantic import ValidationError

from bgplb import backoff
from bgplb.agent.desired import SecretKey
from bgplb.api import (
    GROUP,
    VERSION,
    BGPAdvertisedRoute,
    BGPAdvertisedRouteSpec,
    BGPSession,
    BGPSessionSpec,
    NetworkGatewayGroup,
)
from bgplb.api.bgploadbalancer import PoolEntryError, parse_pool_entry
from bgplb.api.common import read
from bgplb.api.contract import NODE_LABEL, SINGLETON_NAME, node_label_value

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Inputs:
    sessions: Mapping[str, BGPSessionSpec] = field(default_factory=dict)
    routes: tuple[BGPAdvertisedRouteSpec, ...] = ()
    floating_ips: Mapping[IPv4Address, str] = field(default_factory=dict)
    """Floating IP → node holding it (NetworkGatewayGroup status)."""
    passwords: Mapping[SecretKey, str] = field(default_factory=dict)
    witnesses: Mapping[str, str] = field(default_factory=dict)
    """Node → witness address (NetworkGatewayGroup status), kept on disk with the rest
    so an agent restarted during an API outage still knows whom to ask."""
    pools: tuple[tuple[int, int], ...] | None = None
    """The `default` BGPLoadBalancer's address pools as inclusive integer ranges: the
    only addresses the agent advertises. None: no BGPLoadBalancer read (a desired
    file without one: not checked)."""
    epoch: int = 0
    """The placement epoch of `floating_ips` (NetworkGatewayGroup status): the agent
    reports it in its Lease, with the floating IPs it holds, once it has applied them."""


class Source(Protocol):
    def read(self) -> Inputs: ...

    def changes(self) -> AsyncIterator[float]:
        """Yields once per burst of changes: when (monotonic) the first of it was seen."""
        ...


def _secret_values(obj: Mapping[str, Any]) -> dict[str, str]:
    """The Secret's keys that hold text; a key that does not (not base64, not UTF-8)
    is left out, so only the sessions using it go without a password."""
    values: dict[str, str] = {}
    for key, encoded in (obj.get("data") or {}).items():
        try:
            values[key] = base64.b64decode(encoded, validate=True).decode()
        except (ValueError, TypeError):
            log.warning(
                "password Secret key is not UTF-8 text; its sessions stay down",
                extra={"secret": obj.get("metadata", {}).get("name"), "key": key},
            )
    values.update(obj.get("stringData") or {})
    return values


Parsed = dict[tuple[str, str], tuple[str, Any]]
"""(kind, name) → (resourceVersion, its parsed spec): what an earlier read parsed."""


@dataclass
class _Collected:
    memo: Parsed | None = None
    """Kept across reads (KubeSource): an object's version is parsed once. Every read
    parsed every object: at 1,000 routes 35-38 ms of CPU per change on a quiet machine
    (`make bench-agent-change`), several times that under load, and a burst of
    creates kept each agent's core busy (CI run 21)."""
    seen: set[tuple[str, str]] = field(default_factory=set)
    sessions: dict[str, BGPSessionSpec] = field(default_factory=dict)
    routes: list[BGPAdvertisedRouteSpec] = field(default_factory=list)
    floating: dict[IPv4Address, str] = field(default_factory=dict)
    passwords: dict[SecretKey, str] = field(default_factory=dict)
    witnesses: dict[str, str] = field(default_factory=dict)
    pools: tuple[tuple[int, int], ...] | None = None
    epoch: int = 0

    def _spec(
        self, cls: type[BGPSession] | type[BGPAdvertisedRoute], obj: Mapping[str, Any]
    ) -> Any:
        meta = obj.get("metadata") or {}
        version = meta.get("resourceVersion")
        key = (str(obj.get("kind")), str(meta.get("name")))
        if self.memo is None or not version:
            return read(cls, obj).spec
        self.seen.add(key)
        known = self.memo.get(key)
        if known is not None and known[0] == version:
            return known[1]
        spec = read(cls, obj).spec
        self.memo[key] = (version, spec)
        return spec

    def add(self, obj: Mapping[str, Any]) -> None:
        kind = obj.get("kind")
        if kind == "BGPSession":
            self.sessions[obj["metadata"]["name"]] = self._spec(BGPSession, obj)
        elif kind == "BGPAdvertisedRoute":
            self.routes.append(self._spec(BGPAdvertisedRoute, obj))
        elif kind == "NetworkGatewayGroup":
            status = read(NetworkGatewayGroup, obj).status
            self.floating = {IPv4Address(ip): node for ip, node in status.floating_ips.items()}
            self.witnesses = dict(status.witnesses)
            self.epoch = status.epoch
        elif kind == "BGPLoadBalancer" and obj["metadata"]["name"] == SINGLETON_NAME:
            self.pools = pool_ranges(obj)
        elif kind == "Secret":
            name = obj["metadata"]["name"]
            self.passwords.update({(name, k): v for k, v in _secret_values(obj).items()})


def inputs_from(objects: list[Mapping[str, Any]], memo: Parsed | None = None) -> Inputs:
    """Typed inputs from raw manifests; other kinds are ignored. `memo`: what earlier
    reads parsed, reused for objects at the same resourceVersion and left holding
    only the objects of this read."""
    got = _Collected(memo)
    for obj in objects:
        try:
            got.add(obj)
        except (ValidationError, KeyError, ValueError) as e:
            # One object we cannot read is left out; every other one still applies.
            log.warning(
                "ignoring an object that does not parse",
                extra={"kind": obj.get("kind"), "object": obj.get("metadata", {}).get("name"),
                       "error": str(e)[:500]},
            )  # fmt: skip
    if memo is not None:
        for gone in memo.keys() - got.seen:
            del memo[gone]
    return Inputs(
        got.sessions,
        tuple(got.routes),
        got.floating,
        got.passwords,
        got.witnesses,
        got.pools,
        got.epoch,
    )


def pool_ranges(obj: Mapping[str, Any]) -> tuple[tuple[int, int], ...]:
    """Every pool entry's addresses, read leniently: an entry the model refuses (a
    CIDR with host bits set) still says which addresses the user meant; one that is
    not an address at all is left out."""
    ranges = []
    for pool in (obj.get("spec") or {}).get("addressPools") or []:
        for entry in pool.get("addresses") or []:
            try:
                ranges.append(parse_pool_entry(str(entry)))
            except PoolEntryError:
                try:
                    net = IPv4Network(str(entry), strict=False)
                except ValueError:
                    continue
                ranges.append((int(net.network_address), int(net.broadcast_address)))
    return tuple(sorted(ranges))


@dataclass
class FileSource:
    """Multi-document YAML; re-read when its modification time changes."""

    path: Path
    poll_seconds: float = 0.5

    def read(self) -> Inputs:
        docs = [d for d in yaml.safe_load_all(self.path.read_text()) if d]
        return inputs_from(docs)

    async def changes(self) -> AsyncIterator[float]:
        seen = None
        while True:
            try:
                stamp = self.path.stat().st_mtime_ns
            except FileNotFoundError:
                stamp = None
            if stamp != seen:
                seen = stamp
                yield time.monotonic()
            await asyncio.sleep(self.poll_seconds)


@dataclass
class KubeSource:
    """The node's view from the API, kept by LIST + WATCH: its own BGPSessions (by the
    node label the controller sets), every BGPAdvertisedRoute, the gateway group;
    password Secrets are read when referenced."""

    api: Any
    """kubernetes.client.CustomObjectsApi"""
    core: Any
    """kubernetes.client.CoreV1Api"""
    namespace: str
    node: str
    _cache: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    _pools: tuple[tuple[int, int], ...] = ()
    """The last pools read: kept while the BGPLoadBalancer is missing (its deletion is
    refused while in use; the routes it owns go with it anyway)."""
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _parsed: Parsed = field(default_factory=dict)
    _queue: asyncio.Queue[float] | None = None
    _loop: asyncio.AbstractEventLoop | None = None

    def _selectors(self) -> dict[str, str]:
        return {
            "bgpsessions": f"{NODE_LABEL}={node_label_value(self.node)}",
            "bgpadvertisedroutes": "",
            "networkgatewaygroups": "",
            "bgploadbalancers": "",
        }

    def read(self) -> Inputs:
        with self._lock:
            if set(self._cache) != set(self._selectors()):
                raise RuntimeError("the API has not been read yet")
            objects: list[Mapping[str, Any]] = [
                obj for items in self._cache.values() for obj in items.values()
            ]
        refs = {
            s["spec"]["passwordSecretRef"]["name"]
            for s in objects
            if s.get("kind") == "BGPSession" and s["spec"].get("passwordSecretRef")
        }
        from kubernetes.client.exceptions import ApiException

        for name in sorted(refs):
            try:
                secret = self.core.read_namespaced_secret(name, self.namespace, _request_timeout=5)
            except ApiException as e:
                if e.status not in (403, 404):
                    raise  # the API itself failing: keep the last known state
                # Missing or forbidden: only the sessions using it fail (no password).
                log.warning(
                    "cannot read a password Secret", extra={"secret": name, "status": e.status}
                )
                continue
            objects.append({"kind": "Secret", "metadata": {"name": name}, "data": secret.data})
        inputs = inputs_from(objects, self._parsed)
        if inputs.pools is None:
            return dataclasses.replace(inputs, pools=self._pools)
        self._pools = inputs.pools
        return inputs

    def _notify(self) -> None:
        if self._loop is not None and self._queue is not None:
            self._loop.call_soon_threadsafe(self._queue.put_nowait, time.monotonic())

    def _follow(self, plural: str, selector: str) -> None:
        """LIST, then WATCH from there; LIST again only when the watch cannot resume."""
        from kubernetes import watch

        version = None
        failures = 0
        while True:
            try:
                if version is None:
                    reply = self.api.list_namespaced_custom_object(
                        GROUP,
                        VERSION,
                        self.namespace,
                        plural,
                        label_selector=selector,
                        _request_timeout=10,
                    )
                    with self._lock:
                        self._cache[plural] = {o["metadata"]["name"]: o for o in reply["items"]}
                    version = reply["metadata"]["resourceVersion"]
                    failures = 0
                    self._notify()
                stream = watch.Watch().stream(
                    self.api.list_namespaced_custom_object,
                    GROUP,
                    VERSION,
                    self.namespace,
                    plural,
                    label_selector=selector,
                    resource_version=version,
                    timeout_seconds=300,
                    _request_timeout=330,
                )
                for event in stream:
                    obj = event["object"]
                    if event["type"] == "ERROR":  # e.g. 410 Gone: the version is too old
                        version = None
                        break
                    version = obj["metadata"]["resourceVersion"]
                    failures = 0
                    with self._lock:
                        items = self._cache.setdefault(plural, {})
                        if event["type"] == "DELETED":
                            items.pop(obj["metadata"]["name"], None)
                        else:
                            items[obj["metadata"]["name"]] = obj
                    self._notify()
            except Exception as e:
                # LIST again, after a jittered backoff: agents that lost their watches
                # together (an API server restart) come back spread out.
                version = None
                failures += 1
                wait = backoff.delay(failures)
                log.warning(
                    "watch broken; retrying",
                    extra={"resource": plural, "error": str(e), "retry_in_s": round(wait, 2)},
                )
                time.sleep(wait)

    async def changes(self) -> AsyncIterator[float]:
        self._loop = asyncio.get_running_loop()
        self._queue = asyncio.Queue()
        for plural, selector in self._selectors().items():
            threading.Thread(
                target=self._follow, args=(plural, selector), daemon=True, name=f"watch-{plural}"
            ).start()
        while True:
            first = await self._queue.get()
            while not self._queue.empty():  # a burst of events is one change
                self._queue.get_nowait()
            yield first


Dumped = dict[int, tuple[Any, Any]]
"""id(spec) → (the spec, kept so the id stays its own; its JSON form)."""


def save_inputs(path: Path, inputs: Inputs, dumped: Dumped | None = None) -> None:
    """The last inputs read from the API, kept on the node's disk (0600: it holds
    session passwords) so the agent can start and serve the control-plane VIP while
    the API server is unreachable. `dumped`: the JSON forms of an earlier save, reused
    for the same (unchanged, see Parsed) specs and left holding this save's only."""
    memo: Dumped = {} if dumped is None else dumped
    fresh: Dumped = {}

    def dump(spec: Any) -> Any:
        known = memo.get(id(spec))
        value = known[1] if known is not None else spec.model_dump(mode="json", by_alias=True)
        fresh[id(spec)] = (spec, value)
        return value

    data = {
        "sessions": {k: dump(v) for k, v in inputs.sessions.items()},
        "routes": [dump(r) for r in inputs.routes],
        "floatingIPs": {str(k): v for k, v in inputs.floating_ips.items()},
        "passwords": [[name, key, value] for (name, key), value in inputs.passwords.items()],
        "witnesses": dict(inputs.witnesses),
        "pools": None if inputs.pools is None else [list(r) for r in inputs.pools],
        "epoch": inputs.epoch,
    }
    tmp = path.with_suffix(".tmp")
    tmp.touch(mode=0o600)
    tmp.write_text(json.dumps(data, sort_keys=True))
    tmp.replace(path)
    memo.clear()
    memo.update(fresh)


def load_inputs(path: Path) -> Inputs:
    data = json.loads(path.read_text())
    return Inputs(
        sessions={k: read(BGPSessionSpec, v) for k, v in data["sessions"].items()},
        routes=tuple(read(BGPAdvertisedRouteSpec, r) for r in data["routes"]),
        floating_ips={IPv4Address(k): v for k, v in data["floatingIPs"].items()},
        passwords={(name, key): value for name, key, value in data["passwords"]},
        witnesses=dict(data.get("witnesses") or {}),
        pools=None if data.get("pools") is None else tuple((a, b) for a, b in data["pools"]),
        epoch=int(data.get("epoch") or 0),
    )
