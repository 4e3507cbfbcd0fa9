"""`bgplb-controller`: kopf watches keep an in-memory index of the cluster; one debounced,
level-triggered loop plans from it and writes the difference. One replica acts.

Leader election: a coordination.k8s.io Lease (`bgplb-controller`) through the
Kubernetes client's own LeaseLock elector — the mechanism kube-controller-manager
uses, with no CRD of its own (kopf's peering needs one and only pauses operators of
equal priority rather than electing one). Followers keep their index warm, so a
takeover plans at once.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import json
import logging
import os
import socket
import threading
import time
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field, replace
from typing import Any

import kopf

from bgplb.api import GROUP, VERSION
from bgplb.api.contract import draining, is_ours, lease_node
from bgplb.controller import metrics
from bgplb.controller.prune import orphan_leases
from bgplb.controller.reconcile import WRITES_IN_FLIGHT, Reconciler
from bgplb.controller.snapshot import ClusterState, lease_live, node_inputs
from bgplb.logs import setup_logging

log = logging.getLogger("bgplb.controller")
LEADER_LEASE = "bgplb-controller"
UNCLAIMED_FOR = 30.0
"""Seconds a slice of a Service not indexed is kept for that Service to arrive."""
CONTACT_GRACE = 1.2
"""Seconds without an answered probe begun (probes go every 0.5 s) before node
liveness freezes."""
RESYNC_AFTER = 1.0
"""Seconds from a watch's re-LIST to the index's own LIST of that kind."""
RESYNC_ATTEMPTS = 5

OURS = {
    "bgploadbalancers": "load_balancers",
    "networkgatewaygroups": "gateways",
    "bgppeers": "peers",
    "bgpsessions": "sessions",
    "bgpadvertisedroutes": "routes",
}


@dataclass
class Controller:
    namespace: str
    identity: str
    lease_expiry: float = 3.0
    debounce: float = 0.02
    """Seconds to gather a burst of changes into one pass, once a burst is under way:
    the first change a pass acts on came less than `burst_gap` after the change
    before it. A change on its own — a lone Service create — is planned at once:
    waiting for company it would not get was 20 of the ~90 ms from its event to its
    route object (docs/BENCHMARKS.md, bench-create-path)."""
    burst_gap: float = 0.05
    """Changes closer together than this are a burst. (Counted from the last pass
    instead, a create came within 0.5 s of the passes its predecessor's statuses
    caused, and waited 20 ms for nothing — bench-create-path run E.)"""
    last_change: float = -1e9
    """When (monotonic) the index last changed."""
    bursting: bool = False
    """The first change not yet planned came hard on the heels of another."""
    state: ClusterState = field(init=False)
    trigger: asyncio.Event = field(default_factory=asyncio.Event)
    leading: threading.Event = field(default_factory=threading.Event)
    synced: bool = False
    reconciler: Reconciler | None = None
    _live: frozenset[str] = frozenset()
    synced_at: float = 0.0
    frozen_live: frozenset[str] | None = None
    """While the controller cannot reach the API server: the Leases live when contact
    was lost. It saw no renewals meanwhile, so it must not take their nodes for dead."""
    failed_probes: int = 0
    last_contact: float | None = None
    """When (monotonic) the last probe the API server answered began."""
    resyncing: dict[str, set[str]] = field(default_factory=dict)
    """Kind → keys its watch changed since the index's own LIST of it began."""
    changed_at: float | None = None
    """When (monotonic) the index first changed since the last pass began."""

    def __post_init__(self) -> None:
        self.state = ClusterState(self.namespace)

    # --- the index ----------------------------------------------------------------

    def changed(self) -> None:
        """The index changed: a pass is due. The first change a pass has not yet
        planned is timed, so the pass can say how long it took to act on it."""
        now = time.monotonic()
        if self.changed_at is None:
            self.changed_at = now
            self.bursting = now - self.last_change < self.burst_gap
        self.last_change = now
        self.trigger.set()

    def observe(self, store: dict[str, Any], key: str, event: Mapping[str, Any]) -> None:
        if event.get("type") == "DELETED":
            store.pop(key, None)
        else:
            store[key] = dict(event["object"])
        self.changed()

    def observe_lease(self, event: Mapping[str, Any]) -> None:
        obj = event["object"]
        name = obj["metadata"]["name"]
        if event.get("type") == "DELETED":
            self.state.leases.pop(name, None)
            self.state.lease_seen.pop(name, None)
            return
        old = self.state.leases.get(name)
        renewed = obj.get("spec", {}).get("renewTime")
        if old is None:
            # First sight: credit the time the holder says it renewed, so a restarted
            # controller does not take every node for dead for a lease period.
            self.state.lease_seen[name] = time.monotonic() - _age(renewed)
        elif _instant(old.get("spec", {}).get("renewTime")) != _instant(renewed):
            # Compared as instants: the same renewal comes as `...Z` from a watch and
            # as `...+00:00` from a typed client.
            self.state.lease_seen[name] = time.monotonic()
        if old is None or old["metadata"].get("annotations") != obj["metadata"].get("annotations"):
            # Its addresses or the floating IPs it holds changed: placement reads both
            # (a move between live nodes waits on the old node's report).
            self.changed()
        self.state.leases[name] = dict(obj)

    def watched(self, kind: str, event: Mapping[str, Any]) -> None:
        """A watch event. kopf LISTs again after a broken watch (an API server restart
        ends every watch with "too old resource version") and reports what it finds as
        events of type None, never what went away meanwhile: the index then LISTs that
        kind itself and drops what is gone. Seen in the lab: two BGPSessions this
        controller deleted just before such a re-LIST stayed in the index, so it never
        created them again."""
        if kind in self.resyncing:
            self.resyncing[kind].add(_key(kind, event["object"]["metadata"]))
        self._route(kind, event)
        if event.get("type") is None and self.synced:
            self.resync_soon(kind)

    def resync_soon(self, kind: str) -> None:
        if kind not in self.resyncing:
            self.resyncing[kind] = set()
            task = asyncio.get_running_loop().create_task(self._resync(kind))
            _PROCESS.setdefault("resyncs", set()).add(task)
            task.add_done_callback(_PROCESS["resyncs"].discard)

    async def _resync(self, kind: str) -> None:
        items: list[dict[str, Any]] | None = None
        for attempt in range(RESYNC_ATTEMPTS):
            # The first wait lets the watch's own re-LIST arrive first; later ones
            # give an API server that is still starting time to answer.
            await asyncio.sleep(RESYNC_AFTER * (attempt + 1))
            self.resyncing[kind] = set()
            try:
                items = await asyncio.to_thread(_list_kind, kind, self.namespace)
                break
            except Exception as e:
                log.warning("index resync failed", extra={"kind": kind, "error": str(e)})
        if items is None:  # the next re-LIST or regained contact tries again
            self.resyncing.pop(kind, None)
            return
        gone = self.relisted(kind, items, self.resyncing.pop(kind, set()))
        if gone:
            log.info("index resynced", extra={"kind": kind, "gone": gone[:20]})

    def relisted(self, kind: str, items: list[dict[str, Any]], touched: set[str]) -> list[str]:
        """Bring the index of `kind` to a LIST of it: what the LIST lacks is gone;
        a key the watch changed after the LIST began keeps the watch's version (it is
        newer). Returns the keys dropped."""
        listed = {_key(kind, obj["metadata"]): obj for obj in items}
        for key, obj in listed.items():
            if key not in touched:
                self._route(kind, {"type": None, "object": obj})
        indexed = self._indexed(kind)
        gone = sorted(k for k in indexed if k not in listed and k not in touched)
        for key in gone:
            self._route(kind, {"type": "DELETED", "object": indexed[key]})
        return gone

    def _indexed(self, kind: str) -> dict[str, Mapping[str, Any]]:
        """Key → an object to report its deletion with, for each indexed `kind`."""
        state = self.state
        if kind in OURS:
            return dict(getattr(state, OURS[kind]))
        if kind == "leases":
            return dict(state.leases)
        if kind == "services":
            return dict(state.services)
        if kind == "endpointslices":
            unclaimed = {k: obj for k, (_, obj) in state.unclaimed_slices.items()}
            return {**unclaimed, **state.endpoint_slices}
        names = state.nodes if kind == "nodes" else state.namespace_labels
        return {name: {"metadata": {"name": name}} for name in names}

    def load(self, kind: str, items: list[dict[str, Any]]) -> None:
        """Fill the index from a full LIST (startup), before any reconcile."""
        for obj in items:
            self._route(kind, {"type": None, "object": obj})

    def _route(self, kind: str, event: Mapping[str, Any]) -> None:
        obj = event["object"]
        meta = obj["metadata"]
        if kind in OURS:
            if meta.get("namespace") == self.namespace:
                self.observe(getattr(self.state, OURS[kind]), meta["name"], event)
        elif kind == "nodes":
            if event.get("type") == "DELETED":
                self.observe(self.state.nodes, meta["name"], event)
            elif self.state.nodes.get(meta["name"]) != (slim := node_inputs(obj)):
                self.observe(self.state.nodes, meta["name"], {**event, "object": slim})
            if event.get("type") == "DELETED" or not draining(obj):
                self.state.drain_seen.pop(meta["name"], None)
            else:
                self.state.drain_seen.setdefault(meta["name"], time.monotonic())
        elif kind == "leases":
            if meta.get("namespace") == self.namespace and lease_node(meta["name"]) is not None:
                self.observe_lease(event)
        elif kind == "services":
            key = f"{meta['namespace']}/{meta['name']}"
            # Another load balancer's Services (MetalLB beside bgplb) are not even
            # indexed: each of their events used to cost a full reconcile.
            if is_ours(obj):
                if key not in self.state.services:
                    self._claim_slices(key)
                self.observe(self.state.services, key, event)
            elif key in self.state.services:  # no longer ours (type or class changed)
                self.observe(self.state.services, key, {"type": "DELETED", "object": obj})
        elif kind == "namespaces":
            labels = dict(meta.get("labels") or {})
            if event.get("type") == "DELETED":
                self.state.namespace_labels.pop(meta["name"], None)
            elif self.state.namespace_labels.get(meta["name"]) != labels:
                self.state.namespace_labels[meta["name"]] = labels
                self.changed()
        elif kind == "endpointslices":
            service = _service_of(meta)
            key = f"{meta['namespace']}/{meta['name']}"
            if service in self.state.services:
                self.observe(self.state.endpoint_slices, key, event)
            elif service:
                self._unclaimed(key, event)

    def _unclaimed(self, key: str, event: Mapping[str, Any]) -> None:
        """A slice of a Service not indexed: kept UNCLAIMED_FOR seconds, in case its
        Service arrives after it; the oldest are forgotten first (seen order)."""
        unclaimed, now = self.state.unclaimed_slices, time.monotonic()
        unclaimed.pop(key, None)
        if event.get("type") != "DELETED":
            unclaimed[key] = (now, dict(event["object"]))
        while unclaimed:
            oldest = next(iter(unclaimed))
            if now - unclaimed[oldest][0] <= UNCLAIMED_FOR:
                break
            del unclaimed[oldest]

    def _claim_slices(self, service: str) -> None:
        """A Service newly ours: the slices of it that came first join the index."""
        for key, (_, obj) in list(self.state.unclaimed_slices.items()):
            if _service_of(obj["metadata"]) == service:
                del self.state.unclaimed_slices[key]
                self.state.endpoint_slices[key] = obj

    # --- the loop -----------------------------------------------------------------

    def live_nodes(self) -> frozenset[str]:
        if self.frozen_live is not None:
            return self.frozen_live
        return self._live_at(time.monotonic())

    def _live_at(self, at: float) -> frozenset[str]:
        return frozenset(
            n for n in self.state.lease_seen if lease_live(self.state, n, at, self.lease_expiry)
        )

    def contact(self, leases: list[dict[str, Any]] | None, began: float | None = None) -> bool:
        """One probe of the API server, begun at `began` (a LIST of this namespace's
        Leases, or None when it failed). Two failures in a row, or no answer to a
        probe begun within CONTACT_GRACE, freeze node liveness; the first success
        after that credits every frozen node with a fresh lease period to renew in.
        Returns whether contact was regained after a failure."""
        if leases is None:
            self.failed_probes += 1
            if self.failed_probes >= 2:
                self.freeze()
            return False
        regained = self.failed_probes > 0 or self.frozen_live is not None
        self.failed_probes = 0
        began = time.monotonic() if began is None else began
        self.last_contact = max(self.last_contact or began, began)
        metrics.API_CONTACT.set(1)
        if self.frozen_live is not None:
            now = time.monotonic()
            for name in self.frozen_live:
                self.state.lease_seen[name] = now
            self.frozen_live = None
            log.info("API server reachable again: node liveness resumes")
        for lease in leases:
            self._route("leases", {"type": None, "object": lease})
        return regained

    def check_contact(self, now: float) -> None:
        """A probe can hang up to its timeout: counting failed probes alone froze
        liveness after a node's Lease had run out unseen (an agent restarted during an
        API server restart was taken for dead and its Services' sessions deleted)."""
        if self.last_contact is not None and now - self.last_contact > CONTACT_GRACE:
            self.freeze()

    def freeze(self) -> None:
        """Liveness as it stood at the last answered probe: renewals after that
        could not be seen."""
        if self.frozen_live is not None:
            return
        at = time.monotonic() if self.last_contact is None else self.last_contact
        self.frozen_live = self._live_at(at)
        metrics.API_CONTACT.set(0)
        log.warning("API server unreachable: node liveness frozen")

    async def contact_loop(self) -> None:
        from kubernetes import client

        # One attempt per probe: urllib3's retries made a failed probe take 4 s.
        config = client.Configuration.get_default_copy()
        config.retries = False
        api = client.CoordinationV1Api(client.ApiClient(config))

        def probe() -> list[dict[str, Any]] | None:
            # The JSON as the watch gives it: the typed client's models took ~1.5 ms
            # of CPU per LIST to build and serialize back, twice a second.
            try:
                reply: Any = api.list_namespaced_lease(
                    self.namespace, _request_timeout=1, _preload_content=False
                )
                items: list[dict[str, Any]] = json.loads(reply.data)["items"]
            except Exception:
                return None
            return items

        while True:
            started = time.monotonic()
            if self.contact(await asyncio.to_thread(probe), started):
                # Whatever went during the outage, a watch may not report.
                for kind in WATCHED:
                    self.resync_soon(kind)
            await asyncio.sleep(max(0.0, 0.5 - (time.monotonic() - started)))

    def holding_off(self) -> bool:
        """Just after startup a Lease can look stale only because its agent has not
        renewed since the API server came back: give every node one lease period."""
        now = time.monotonic()
        if now - self.synced_at >= self.lease_expiry:
            return False
        return self.live_nodes() != frozenset(self.state.leases)

    async def run(self) -> None:
        assert self.reconciler is not None
        pending = False
        while True:
            # Wake at least every 250 ms: Lease expiry is the absence of events.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.trigger.wait(), 0.25)
            # Taken off the trigger at once: a trigger left set while no pass may run
            # (a follower, a hold-off) woke this loop without pause, a core at 100 %.
            pending = pending or self.trigger.is_set()
            self.trigger.clear()
            self.check_contact(time.monotonic())
            live = self.live_nodes()
            if not (self.synced and self.leading.is_set()):
                continue
            if self.frozen_live is not None or self.holding_off():
                continue  # writes would fail, or judge nodes on what it could not see
            # A Lease going orphan is, like expiry, the absence of events.
            orphans = orphan_leases(self.state, time.monotonic(), self.lease_expiry)
            due = any(
                at is not None and time.monotonic() >= at
                for at in (self.reconciler.again_at, self.reconciler.drain_at)
            )
            if not pending and live == self._live and not orphans and not due:
                continue
            if self.bursting:
                await asyncio.sleep(self.debounce)
            self.trigger.clear()
            pending = False
            self._live = live
            since, self.changed_at, self.bursting = self.changed_at, None, False
            try:
                await self.reconciler.run_once(since)
            except Exception:
                log.exception("reconcile failed; retrying")
                await asyncio.sleep(1)
                self.trigger.set()


def _key(kind: str, meta: Mapping[str, Any]) -> str:
    """The index's key: namespace/name for the kinds indexed across namespaces."""
    if kind in ("services", "endpointslices"):
        return f"{meta.get('namespace')}/{meta['name']}"
    return str(meta["name"])


def _service_of(slice_meta: Mapping[str, Any]) -> str | None:
    """'namespace/name' of the Service an EndpointSlice belongs to (None: none)."""
    name = (slice_meta.get("labels") or {}).get("kubernetes.io/service-name")
    return f"{slice_meta['namespace']}/{name}" if name else None


def _instant(renew_time: str | None) -> dt.datetime | str | None:
    """A renewTime as an instant; as written when it does not parse."""
    if not renew_time:
        return None
    try:
        return dt.datetime.fromisoformat(renew_time.replace("Z", "+00:00"))
    except ValueError:
        return renew_time


def _age(renew_time: str | None) -> float:
    then = _instant(renew_time)
    if not isinstance(then, dt.datetime) or then.tzinfo is None:
        return 1e9
    return max(0.0, (dt.datetime.now(dt.UTC) - then).total_seconds())


# kopf calls module-level handlers; they reach the one Controller of the process here.
_PROCESS: dict[str, Any] = {}


def _controller() -> Controller:
    controller: Controller = _PROCESS["controller"]
    return controller


WATCHED = {
    **dict.fromkeys(OURS, (GROUP, VERSION)),
    "nodes": ("", "v1"),
    "leases": ("coordination.k8s.io", "v1"),
    "services": ("", "v1"),
    "endpointslices": ("discovery.k8s.io", "v1"),
    "namespaces": ("", "v1"),
}
"""Every kind the index holds: plural → (group, version)."""


def _register() -> None:
    for plural, (group, version) in WATCHED.items():
        # A coroutine, so kopf runs it on the event loop: a plain function would run
        # in kopf's thread pool, changing the index under a running pass and setting
        # the loop's trigger (an asyncio.Event) from the wrong thread.
        async def handler(event: Mapping[str, Any], _plural: str = plural, **_: Any) -> None:
            _controller().watched(_plural, event)

        kopf.on.event(group, version, plural, id=f"index-{plural}")(handler)


def _list_kind(kind: str, namespace: str) -> list[dict[str, Any]]:
    """One watched kind, LISTed (the client blocks: call it in a thread), as JSON."""
    from kubernetes import client

    if kind in OURS:
        custom = client.CustomObjectsApi()
        reply: Any = custom.list_namespaced_custom_object(GROUP, VERSION, namespace, kind)
        return list(reply["items"])
    core = client.CoreV1Api()
    listings: dict[str, Callable[[], Any]] = {
        "nodes": core.list_node,
        "leases": lambda: client.CoordinationV1Api().list_namespaced_lease(namespace),
        "services": core.list_service_for_all_namespaces,
        "endpointslices": client.DiscoveryV1Api().list_endpoint_slice_for_all_namespaces,
        "namespaces": core.list_namespace,
    }
    api = client.ApiClient()
    return [api.sanitize_for_serialization(x) for x in listings[kind]().items]


def _list_everything(namespace: str) -> list[tuple[str, list[dict[str, Any]]]]:
    """Every watched kind, LISTed (in a thread: the client blocks); the index is
    filled from them on the event loop, the only thread that touches it."""
    return [(kind, _list_kind(kind, namespace)) for kind in WATCHED]


def _steady_lock(name: str, namespace: str, identity: str) -> Any:
    """The client's LeaseLock, with a network error a failed attempt as an API error
    is: it let a refused connection escape and end the elector's thread (seen in the
    lab during an API server restart), leaving this controller acting on a lease it
    no longer renewed — a second replica would have acted beside it."""
    from kubernetes.client.exceptions import ApiException
    from kubernetes.leaderelection.resourcelock.leaselock import LeaseLock

    class SteadyLeaseLock(LeaseLock):
        def get(self, name: str, namespace: str) -> tuple[bool, Any]:
            try:  # the parent catches ApiException itself
                return super().get(name, namespace)  # type: ignore[no-any-return]
            except Exception as e:
                return False, ApiException(status=0, reason=f"{type(e).__name__}: {e}")

        def create(self, name: str, namespace: str, election_record: Any) -> bool:
            try:
                return bool(super().create(name, namespace, election_record))
            except Exception:
                return False

        def update(self, name: str, namespace: str, updated_record: Any) -> bool:
            try:
                return bool(super().update(name, namespace, updated_record))
            except Exception:
                return False

    return SteadyLeaseLock(name, namespace, identity)


def _elect(c: Controller, loop: asyncio.AbstractEventLoop) -> None:
    from kubernetes.leaderelection import electionconfig, leaderelection

    def started() -> None:
        log.info("leading", extra={"identity": c.identity})
        metrics.LEADER.set(1)
        c.leading.set()
        loop.call_soon_threadsafe(c.trigger.set)

    def stopped() -> None:
        # A controller that lost its lease must stop acting at once; exiting is the
        # one sure way (the Pod restarts as a follower).
        log.error("lost leadership; exiting")
        os._exit(1)

    config = electionconfig.Config(
        _steady_lock(LEADER_LEASE, c.namespace, c.identity),
        lease_duration=15,
        renew_deadline=10,
        retry_period=2,
        onstarted_leading=started,
        onstopped_leading=stopped,
    )
    try:
        leaderelection.LeaderElection(config).run()
    except BaseException:
        # Whatever ends the elector, a replica that cannot renew must not act.
        log.exception("leader election ended; exiting")
        os._exit(1)


def in_cluster_server(env: Mapping[str, str]) -> str | None:
    """The API server's address as client-go's InClusterConfig finds it: the
    `kubernetes` Service from the environment, not the name kubernetes.default.svc,
    so the load balancer does not depend on cluster DNS being up."""
    host, port = env.get("KUBERNETES_SERVICE_HOST"), env.get("KUBERNETES_SERVICE_PORT")
    if not host or not port:
        return None
    return f"https://[{host}]:{port}" if ":" in host else f"https://{host}:{port}"


@kopf.on.login()
def _login(**kwargs: Any) -> kopf.ConnectionInfo | None:
    # kopf's own readers: the Pod's service account, else $KUBECONFIG (set by --kubeconfig).
    info: kopf.ConnectionInfo | None = kopf.login_with_service_account(**kwargs)
    server = in_cluster_server(os.environ)
    if info is not None and server is not None:
        return replace(info, server=server)
    return info or kopf.login_with_kubeconfig(**kwargs)


@kopf.on.startup()
async def _startup(settings: kopf.OperatorSettings, **_: Any) -> None:
    from kubernetes import client

    c = _controller()
    settings.peering.standalone = True
    settings.posting.level = logging.WARNING
    settings.watching.server_timeout = 300
    while True:
        try:
            listed = await asyncio.to_thread(_list_everything, c.namespace)
            break
        except Exception as e:  # the API server may not be back yet: wait for it
            log.warning("initial LIST failed; retrying", extra={"error": str(e)})
            await asyncio.sleep(1)
    for kind, items in listed:
        c.load(kind, items)
    c.synced = True
    c.synced_at = time.monotonic()

    # Writes run in threads (the client is synchronous): room for the writes in flight.
    asyncio.get_running_loop().set_default_executor(
        ThreadPoolExecutor(max_workers=WRITES_IN_FLIGHT + 4, thread_name_prefix="api")
    )
    c.reconciler = Reconciler(
        c.state,
        client.CustomObjectsApi(),
        client.CoreV1Api(),
        lease_expiry=c.lease_expiry,
        coordination=client.CoordinationV1Api(),
    )
    loop = asyncio.get_running_loop()
    threading.Thread(target=_elect, args=(c, loop), daemon=True, name="leader").start()
    _PROCESS["loop-task"] = loop.create_task(c.run())
    _PROCESS["contact-task"] = loop.create_task(c.contact_loop())


@kopf.on.cleanup()
async def _cleanup(**_: Any) -> None:
    for name in ("loop-task", "contact-task"):
        task = _PROCESS.pop(name, None)
        if task is not None:
            task.cancel()
    c = _controller()
    if c.leading.is_set():
        await asyncio.to_thread(_release, c)


def _release(c: Controller) -> None:
    """Hand the leader Lease back, so a successor need not wait for it to expire."""
    from kubernetes import client

    api = client.CoordinationV1Api()
    try:
        lease = api.read_namespaced_lease(LEADER_LEASE, c.namespace, _request_timeout=2)
        if lease.spec is not None and lease.spec.holder_identity == c.identity:
            patch = {"spec": {"holderIdentity": None, "renewTime": None, "acquireTime": None}}
            api.patch_namespaced_lease(LEADER_LEASE, c.namespace, patch, _request_timeout=2)
    except Exception as e:
        log.warning("could not release the leader Lease", extra={"error": str(e)})


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    parser = argparse.ArgumentParser(prog="bgplb-controller", description=__doc__)
    parser.add_argument("--namespace", default=os.environ.get("BGPLB_NAMESPACE", "kube-system"))
    parser.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    parser.add_argument(
        "--lease-expiry",
        type=float,
        default=3.0,
        help="seconds without a node Lease renewal before the node counts as down",
    )
    parser.add_argument("--identity", default=os.environ.get("POD_NAME", socket.gethostname()))
    parser.add_argument("--metrics-port", type=int, default=9090)
    parser.add_argument("--health", default="http://0.0.0.0:8081/healthz")
    args = parser.parse_args(argv)
    from kubernetes import client, config
    from prometheus_client import start_http_server

    if args.kubeconfig:
        os.environ["KUBECONFIG"] = args.kubeconfig
        config.load_kube_config(args.kubeconfig)
    else:
        config.load_incluster_config()
    default = client.Configuration.get_default_copy()
    default.connection_pool_maxsize = WRITES_IN_FLIGHT + 4
    client.Configuration.set_default(default)
    if args.metrics_port:
        start_http_server(args.metrics_port)
    _PROCESS["controller"] = Controller(
        args.namespace, f"{args.identity}-{os.getpid()}", args.lease_expiry
    )
    _register()
    # kopf names itself from the user name unless POD_ID is set, and an image's
    # non-root UID has no passwd entry (getpwuid fails): name it after the Pod.
    os.environ.setdefault("POD_ID", args.identity)
    kopf.run(clusterwide=True, standalone=True, liveness_endpoint=args.health)
    return 0
