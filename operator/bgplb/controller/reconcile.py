"""One reconcile: snapshot → plan → diff → writes. Level-triggered: it reads only the
in-memory index of the cluster, so it can run any number of times for one change."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any, TypeVar

from kubernetes.client.exceptions import ApiException
from pydantic import BaseModel, ValidationError

from bgplb.api import GROUP, VERSION, BGPAdvertisedRouteSpec, BGPSessionSpec
from bgplb.api.bgploadbalancer import BGPLoadBalancerStatus
from bgplb.api.bgppeer import BGPPeerStatus
from bgplb.api.common import Condition, read
from bgplb.api.contract import SINGLETON_NAME
from bgplb.api.networkgatewaygroup import NetworkGatewayGroupStatus
from bgplb.controller import metrics
from bgplb.controller.diff import Writes, diff_objects, status_differs
from bgplb.controller.disruption import GuardState, Liveness, step
from bgplb.controller.events import EventLimiter, event_name, next_hop_changes
from bgplb.controller.prune import orphan_leases
from bgplb.controller.snapshot import (
    ClusterState,
    drain_deadline,
    in_force,
    observed_generations,
    observed_live,
    snapshot_from,
    witnesses,
)
from bgplb.controller.withdrawals import PACE_SECONDS, Bounded, Window, bound, window
from bgplb.core.objects import gateway_status, route_objects, session_objects
from bgplb.core.plan import DesiredState, plan, with_decisions

log = logging.getLogger("bgplb.controller")
S = TypeVar("S", bound=BaseModel)
JSON = dict[str, Any]
COMPONENT = "bgplb-controller"
WRITES_IN_FLIGHT = 16


def condition(
    previous: list[Condition], type_: str, *, ok: bool, reason: str, message: str, generation: int
) -> Condition:
    """A condition that keeps its lastTransitionTime while its status holds."""
    status = "True" if ok else "False"
    old = next((c for c in previous if c.type == type_), None)
    since = old.last_transition_time if old and old.status == status else dt.datetime.now(dt.UTC)
    return Condition(
        type=type_,
        status=status,
        reason=reason,
        message=message[:32000],
        last_transition_time=since,
        observed_generation=generation,
    )


JSON_PATCH = "application/json-patch+json"


def _frozen_message(liveness: Liveness) -> str:
    stale = sorted(liveness.stale)
    shown = ", ".join(stale[:5]) + (f" and {len(stale) - 5} more" if len(stale) > 5 else "")
    return (
        f"the Leases of {len(stale)} nodes went stale at once ({shown}) "
        "while the API server answers: taken for an infrastructure fault, so floating IPs "
        "and next hops stay as they are until enough Leases are fresh again"
    )


def _paced_message(bounded: Bounded) -> str:
    return (
        f"{bounded.withdrawn + bounded.held} routes and sessions would go at once, with no "
        f"configuration change; withdrawing {bounded.withdrawn} now and the rest "
        f"{PACE_SECONDS:g} s apart, in case the input that says so is wrong"
    )


def _status_of(cls: type[S], raw: Mapping[str, Any]) -> S:
    """An object's status as last written, to carry conditions' transition times on;
    one that does not parse (written by hand, or by another version) is rewritten
    from scratch rather than ending the reconcile for every object."""
    try:
        return read(cls, raw.get("status") or {})
    except ValidationError as e:
        name = raw.get("metadata", {}).get("name")
        log.warning(
            "status does not parse; rewriting it", extra={"object": name, "error": str(e)[:300]}
        )
        return cls()


def _describe(call: str, args: tuple[Any, ...]) -> str:
    """The object a call writes, for a person: its plural and name."""
    parts = []
    for arg in args:
        if isinstance(arg, str) and arg not in (GROUP, VERSION):
            parts.append(arg)
        elif isinstance(arg, Mapping) and "name" in (arg.get("metadata") or {}):
            parts.append(str(arg["metadata"]["name"]))
    return f"{call}({', '.join(parts)})"


def _api_message(e: ApiException) -> str:
    try:
        return str(json.loads(e.body or "")["message"])
    except (TypeError, ValueError, KeyError):
        return str(e.reason)


def replacing(path: str, value: Any) -> list[dict[str, Any]]:
    """A JSON patch that stores `value` whole at `path`. A merge patch would keep
    every key the new value leaves out (a removed floating IP, a removed
    gracefulRestart), since a dump omits empty fields instead of nulling them."""
    return [{"op": "add", "path": path, "value": value}]


def _pointer(key: str) -> str:
    """`key` as one JSON-pointer segment (label keys hold '/')."""
    return key.replace("~", "~0").replace("/", "~1")


@dataclass
class Reconciler:
    state: ClusterState
    custom: Any
    """kubernetes.client.CustomObjectsApi"""
    core: Any
    """kubernetes.client.CoreV1Api"""
    lease_expiry: float = 3.0
    coordination: Any = None
    """kubernetes.client.CoordinationV1Api (None: Leases are never pruned)"""
    guard: GuardState = field(default_factory=GuardState)
    """The disruption guard's memory as of the last plan (window: one Lease duration)."""
    liveness: Liveness = field(default_factory=lambda: Liveness(frozenset(), False))
    held_because: str = ""
    config_seen: tuple[object, ...] | None = None
    """The configuration's generations at the last plan (a change: withdrawals asked)."""
    paced: Bounded | None = None
    """The last plan's withdrawals, when some were put off."""
    again_at: float | None = None
    drain_at: float | None = None
    """When the next draining node's drain period ends: a pass then withdraws it."""
    withdrawals: Window | None = None
    refused: dict[str, str] = field(default_factory=dict)
    """Writes the API server refused in the last pass: object → why."""
    """When to reconcile again although nothing changed (paced withdrawals)."""
    """Why the last good plan is being kept (a singleton that does not parse)."""
    previous: DesiredState | None = None
    announced: dict[str, tuple[str, str]] = field(default_factory=dict)
    """Service → (reason, VIP) its last Event was about."""
    events: EventLimiter = field(default_factory=EventLimiter)
    objects_diffed_at: float = 0.0
    """When (monotonic) the last pass knew which route and session objects to write."""
    objects_written_at: float = 0.0
    """When (monotonic) the last pass had written its route and session objects."""

    @property
    def namespace(self) -> str:
        return self.state.namespace

    async def run_once(self, changed_at: float | None = None) -> int:
        """One pass. `changed_at`: when (monotonic) the first index change it acts on
        came, to time the pass from it."""
        started = time.perf_counter()
        now = time.monotonic()
        self.events.forget_before(now)  # once a pass, not once an Event: it walks them all
        guarded, liveness = step(
            self.guard, observed_live(self.state, now, self.lease_expiry), now, self.lease_expiry
        )
        await self._note_liveness(liveness)
        snapshot, problems = snapshot_from(self.state, now, self.lease_expiry, liveness.live)
        unreadable = [
            kind
            for kind, raw, parsed in (
                (
                    "BGPLoadBalancer",
                    self.state.load_balancers.get(SINGLETON_NAME),
                    snapshot.load_balancer,
                ),
                ("NetworkGatewayGroup", self.state.gateways.get(SINGLETON_NAME), snapshot.gateway),
            )
            if raw is not None and parsed is None
        ]
        if unreadable:
            return await self._hold(unreadable, problems)
        self.held_because = ""
        if self.previous is not None:
            # Decisions not yet seen back through the watches still count as current.
            snapshot = with_decisions(snapshot, self.previous)
        config = self._config_generations()
        before = self.previous
        if before is None:
            # A first pass (a start, a new leader): no plan of its own yet, so pace
            # against what the cluster holds, and take as asked-for only configuration
            # the statuses say the data plane does not reflect yet.
            before = in_force(self.state)
            if self.config_seen is None:
                self.config_seen = observed_generations(self.state)
        budget = window(self.withdrawals, len(before.routes) + len(before.sessions), now)
        bounded = bound(
            before,
            plan(snapshot),
            asked=config != self.config_seen,
            allowed=budget.allowed - budget.used,
        )
        self.withdrawals = replace(budget, used=budget.used + bounded.withdrawn)
        desired = bounded.desired
        await self._note_pacing(bounded)
        planned = time.monotonic()
        writes = await self._apply(desired, problems)
        if self.previous is not None:
            names = {n.ip: n.name for n in snapshot.nodes}
            changed = next_hop_changes(self.previous.routes, desired.routes, names)
            raw_lb = self.state.load_balancers.get(SINGLETON_NAME)
            if changed and raw_lb is not None:
                await self.post_event(raw_lb, "Normal", "NextHopsChanged", changed)
        self.previous = desired
        lb = snapshot.load_balancer
        self.drain_at = drain_deadline(self.state, now, lb.drain_seconds) if lb else None
        self.guard = guarded
        self.config_seen = config
        metrics.RECONCILE_SECONDS.observe(time.perf_counter() - started)
        metrics.ROUTES.set(len(desired.routes))
        if writes:
            log.info(
                "reconciled",
                extra={
                    "writes": writes,
                    "vips": len(desired.vips),
                    "sessions": len(desired.sessions),
                    **_timing(
                        changed_at, now, planned, self.objects_diffed_at, self.objects_written_at
                    ),
                },
            )
        return writes

    def _config_generations(self) -> tuple[object, ...]:
        """What the user configures: a change here asked for whatever it withdraws."""

        def generation(raw: Mapping[str, Any] | None) -> object:
            return None if raw is None else raw["metadata"].get("generation")

        return (
            generation(self.state.load_balancers.get(SINGLETON_NAME)),
            generation(self.state.gateways.get(SINGLETON_NAME)),
            tuple(sorted((n, generation(r)) for n, r in self.state.peers.items())),
        )

    async def _note_pacing(self, bounded: Bounded) -> None:
        was, self.paced = self.paced, bounded if bounded.held else None
        metrics.WITHDRAWALS_HELD.set(bounded.held)
        assert self.withdrawals is not None
        self.again_at = self.withdrawals.started + PACE_SECONDS if bounded.held else None
        if bounded.held and was is None:
            message = _paced_message(bounded)
            log.warning("withdrawals paced", extra={"now": bounded.withdrawn, "held": bounded.held})
            raw = self.state.load_balancers.get(SINGLETON_NAME)
            if raw is not None:
                await self.post_event(raw, "Warning", "WithdrawalsPaced", message)

    # --- writes -----------------------------------------------------------------

    def _owner(self) -> list[JSON]:
        lb = self.state.load_balancers.get(SINGLETON_NAME)
        if lb is None:
            return []
        return [
            {
                "apiVersion": f"{GROUP}/{VERSION}",
                "kind": "BGPLoadBalancer",
                "name": SINGLETON_NAME,
                "uid": lb["metadata"]["uid"],
                "controller": True,
                "blockOwnerDeletion": False,
            }
        ]

    async def _call(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
        try:
            return await asyncio.to_thread(fn, *args, _request_timeout=10, **kwargs)
        except ApiException as e:
            metrics.API_ERRORS.labels(getattr(fn, "__name__", "call")).inc()
            if e.status in (404, 409):  # gone or changed meanwhile: the next pass redoes it
                log.info("write skipped", extra={"status": e.status, "reason": e.reason})
                return None
            if e.status in (400, 403, 422):
                # This object refused (invalid, or denied by a policy): report it and
                # go on; every other object is still written. Raising would end the
                # reconcile, and the writes after it, for everything.
                what = _describe(getattr(fn, "__name__", "call"), args)
                self.refused[what] = f"{e.status} {_api_message(e)}"[:300]
                log.warning("write refused", extra={"object": what, "status": e.status,
                                                    "why": self.refused[what]})  # fmt: skip
                return None
            raise

    async def _write_objects(self, plural: str, writes: Writes) -> int:
        owner = self._owner()
        api, ns = self.custom, self.namespace
        calls: list[Awaitable[Any]] = []
        for obj in writes.create:
            obj["metadata"]["ownerReferences"] = owner
            calls.append(
                self._call(api.create_namespaced_custom_object, GROUP, VERSION, ns, plural, obj)
            )
        for obj in writes.update:
            patch = replacing("/spec", obj["spec"]) + [
                {"op": "add", "path": f"/metadata/labels/{_pointer(k)}", "value": v}
                for k, v in obj["metadata"].get("labels", {}).items()
            ]
            name = obj["metadata"]["name"]
            calls.append(
                self._call(
                    api.patch_namespaced_custom_object, GROUP, VERSION, ns, plural, name, patch,
                    _content_type=JSON_PATCH,
                )
            )  # fmt: skip
        for name in writes.delete:
            calls.append(
                self._call(api.delete_namespaced_custom_object, GROUP, VERSION, ns, plural, name)
            )
        await self._concurrently(calls)
        return len(writes)

    async def _concurrently(self, calls: list[Awaitable[Any]]) -> None:
        """Independent writes, a bounded number in flight: a burst of Services is
        written in a fraction of the time one-by-one writes take."""
        limit = asyncio.Semaphore(WRITES_IN_FLIGHT)

        async def one(call: Awaitable[Any]) -> None:
            async with limit:
                await call

        await asyncio.gather(*(one(c) for c in calls))

    async def post_event(
        self, obj: Mapping[str, Any], kind: str, reason: str, message: str
    ) -> None:
        """A core/v1 Event about `obj` (shown by `kubectl describe`): rate-limited per
        object, and a repeat counted on the first (events.py)."""
        meta = obj["metadata"]
        uid = meta.get("uid") or f"{meta['namespace']}/{meta['name']}"
        message = message[:1000]
        now = time.monotonic()
        if not self.events.admit(uid, now):
            metrics.EVENTS_DROPPED.inc()
            return
        name = event_name(meta["name"], uid, reason, message)
        count = self.events.repeat(name, now)
        stamp = dt.datetime.now(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        if count > 1:
            patch = {"count": count, "lastTimestamp": stamp}
            got = await self._call(self.core.patch_namespaced_event, name, meta["namespace"], patch)
            if got is not None:
                return  # else gone meanwhile (expired): post it anew
        body = {
            "metadata": {"name": name, "namespace": meta["namespace"]},
            "involvedObject": {
                "apiVersion": obj.get("apiVersion", "v1"),
                "kind": obj.get("kind", "Service"),
                "name": meta["name"],
                "namespace": meta["namespace"],
                "uid": meta.get("uid"),
            },
            "type": kind,
            "reason": reason,
            "message": message,
            "source": {"component": COMPONENT},
            "reportingComponent": COMPONENT,
            "firstTimestamp": stamp,
            "lastTimestamp": stamp,
            "count": count,
        }
        await self._call(self.core.create_namespaced_event, meta["namespace"], body)

    async def _status(self, plural: str, name: str, status: Any) -> None:
        body = replacing("/status", status.model_dump(mode="json", by_alias=True))
        await self._call(
            self.custom.patch_namespaced_custom_object_status,
            GROUP,
            VERSION,
            self.namespace,
            plural,
            name,
            body,
            _content_type=JSON_PATCH,
        )

    async def _apply(self, desired: DesiredState, problems: list[str]) -> int:
        ns = self.namespace
        writes = 0
        # Refusals of the last pass still count until this one writes the same
        # objects again (the status is written before the Services are).
        earlier, self.refused = self.refused, {}
        if SINGLETON_NAME in self.state.load_balancers:
            sessions = diff_objects(
                session_objects(desired, ns), self.state.sessions, BGPSessionSpec
            )
            routes = diff_objects(
                route_objects(desired, ns), self.state.routes, BGPAdvertisedRouteSpec
            )
            self.objects_diffed_at = time.monotonic()
            # Routes before sessions: a new session then starts with every route known.
            writes += await self._write_objects("bgpadvertisedroutes", routes)
            writes += await self._write_objects("bgpsessions", sessions)
        else:
            self.objects_diffed_at = time.monotonic()
        self.objects_written_at = time.monotonic()

        async def config_statuses() -> int:
            n = await self._gateway_status(desired)
            n += await self._peer_statuses(desired)
            refused = {**earlier, **self.refused}
            said = [f"write refused: {what}: {why}" for what, why in sorted(refused.items())[:10]]
            return n + await self._load_balancer_status(desired, [*problems, *said])

        # A Service's status (its EXTERNAL-IP) depends on none of the configuration's
        # statuses: written beside them, not after them (it came 150-400 ms after its
        # route object in the lab, behind the BGPLoadBalancer's status).
        done = await asyncio.gather(config_statuses(), self._service_statuses(desired))
        writes += sum(done)
        writes += await self._prune_leases()
        metrics.WRITES.inc(writes)
        return writes

    async def _hold(self, unreadable: list[str], problems: list[str]) -> int:
        """A singleton that does not parse plans nothing: planning without it would
        withdraw every VIP. The last good plan stays in force (nothing is written
        but the reason, in the BGPLoadBalancer's condition and an Event)."""
        because = "; ".join(problems) or f"{', '.join(unreadable)} does not parse"
        if because != self.held_because:
            self.held_because = because
            log.warning("configuration does not parse; keeping the last good plan",
                        extra={"problems": because[:2000]})  # fmt: skip
            raw = self.state.load_balancers.get(SINGLETON_NAME)
            if raw is not None:
                await self.post_event(
                    raw, "Warning", "InvalidConfiguration",
                    f"keeping the last good plan: {because}"[:1000],
                )  # fmt: skip
        return await self._load_balancer_status(
            self.previous, [f"keeping the last good plan: {because}"]
        )

    async def _note_liveness(self, liveness: Liveness) -> None:
        """Metric and Event when the guard freezes or releases node liveness."""
        was, self.liveness = self.liveness, liveness
        metrics.LIVENESS_FROZEN.set(int(liveness.frozen))
        if liveness.frozen == was.frozen:
            return
        raw = self.state.load_balancers.get(SINGLETON_NAME)
        if liveness.frozen:
            message = _frozen_message(liveness)
            log.warning("node liveness frozen", extra={"stale": sorted(liveness.stale)})
            if raw is not None:
                await self.post_event(raw, "Warning", "NodeLivenessFrozen", message)
        else:
            log.info("node liveness released: enough Leases are fresh again")
            if raw is not None:
                await self.post_event(
                    raw, "Normal", "NodeLivenessReleased", "enough node Leases are fresh again"
                )

    async def _prune_leases(self) -> int:
        if self.coordination is None:
            return 0
        orphans = orphan_leases(self.state, time.monotonic(), self.lease_expiry)
        for name in orphans:
            log.info("deleting the Lease of a deleted Node", extra={"lease": name})
            await self._call(self.coordination.delete_namespaced_lease, name, self.namespace)
        return len(orphans)

    async def _gateway_status(self, desired: DesiredState) -> int:
        raw = self.state.gateways.get(SINGLETON_NAME)
        if raw is None:
            return 0
        generation = raw["metadata"].get("generation", 0)
        previous = _status_of(NetworkGatewayGroupStatus, raw)
        status = gateway_status(desired, generation)
        unplaced = status.unplaced
        status = status.model_copy(
            update={
                "witnesses": witnesses(self.state),
                "conditions": [
                    condition(
                        previous.conditions,
                        "Ready",
                        ok=not unplaced,
                        reason="AllPlaced" if not unplaced else "Unplaced",
                        message="; ".join(f"{u.ip}: {u.reason}" for u in unplaced)
                        or "every floating IP is on a node",
                        generation=generation,
                    )
                ],
            }
        )
        moved = {
            ip: n
            for ip, n in status.floating_ips.items()
            # a move between live nodes passes through `releasing` (core/floating.py)
            if previous.floating_ips.get(ip, previous.releasing.get(ip)) not in (None, n)
        }
        if moved:
            metrics.FLOATING_IP_MOVES.inc(len(moved))
            await self.post_event(
                raw,
                "Normal",
                "FloatingIPMoved",
                ", ".join(f"{ip} → {n}" for ip, n in sorted(moved.items())),
            )
        if status_differs(NetworkGatewayGroupStatus, raw.get("status"), status):
            await self._status("networkgatewaygroups", SINGLETON_NAME, status)
            return 1
        return 0

    async def _peer_statuses(self, desired: DesiredState) -> int:
        writes = 0
        established: dict[str, int] = {}
        for raw in self.state.sessions.values():
            if (raw.get("status") or {}).get("state") == "Established":
                peer = raw.get("spec", {}).get("peer", "")
                established[peer] = established.get(peer, 0) + 1
        planned: dict[str, int] = {}
        for spec in desired.sessions.values():
            planned[spec.peer] = planned.get(spec.peer, 0) + 1
        by_state: dict[str, int] = {}
        for raw in self.state.sessions.values():
            state = (raw.get("status") or {}).get("state") or "Unknown"
            by_state[state] = by_state.get(state, 0) + 1
        for state, count in by_state.items():
            metrics.SESSIONS.labels(state).set(count)
        for name, raw in self.state.peers.items():
            generation = raw["metadata"].get("generation", 0)
            previous = _status_of(BGPPeerStatus, raw)
            wanted = raw.get("spec", {}).get("sessions", 1)
            shortfall = desired.session_shortfalls.get(name)
            up = established.get(name, 0)
            status = BGPPeerStatus(
                sessions=planned.get(name, 0),
                established_sessions=up,
                observed_generation=generation,
                conditions=[
                    condition(
                        previous.conditions,
                        "Ready",
                        ok=up >= wanted and not shortfall,
                        reason="Established"
                        if up >= wanted
                        else ("Shortfall" if shortfall else "Connecting"),
                        message=shortfall or f"{up} of {wanted} sessions established",
                        generation=generation,
                    )
                ],
            )
            if status_differs(BGPPeerStatus, raw.get("status"), status):
                await self._status("bgppeers", name, status)
                writes += 1
        return writes

    async def _load_balancer_status(self, desired: DesiredState | None, problems: list[str]) -> int:
        """`desired` None: no plan to report (the configuration does not parse yet)."""
        raw = self.state.load_balancers.get(SINGLETON_NAME)
        if raw is None:
            return 0
        generation = raw["metadata"].get("generation", 0)
        previous = _status_of(BGPLoadBalancerStatus, raw)
        issues = [*problems, *(desired.problems if desired else [])]
        status = BGPLoadBalancerStatus(
            observed_generation=generation,
            allocated_vips=len(desired.vips) if desired else previous.allocated_vips,
            conditions=[
                condition(
                    previous.conditions,
                    "Ready",
                    ok=not issues,
                    reason="Planned" if not issues else "ConfigurationProblem",
                    message="; ".join(issues) or "configuration planned",
                    generation=generation,
                ),
                condition(
                    previous.conditions,
                    "WithdrawalsPaced",
                    ok=self.paced is not None,
                    reason="MassWithdrawal" if self.paced is not None else "WithinBound",
                    message=_paced_message(self.paced)
                    if self.paced is not None
                    else "no reconcile withdraws more than a quarter of the routes and sessions",
                    generation=generation,
                ),
                condition(
                    previous.conditions,
                    "NodeLivenessFrozen",
                    ok=self.liveness.frozen,
                    reason="MassLeaseStaleness" if self.liveness.frozen else "LeasesFresh",
                    message=_frozen_message(self.liveness)
                    if self.liveness.frozen
                    else "node liveness follows the agents' Leases",
                    generation=generation,
                ),
            ],
        )
        if status_differs(BGPLoadBalancerStatus, raw.get("status"), status):
            await self._status("bgploadbalancers", SINGLETON_NAME, status)
            return 1
        return 0

    async def _service_statuses(self, desired: DesiredState) -> int:
        calls: list[Awaitable[Any]] = []
        mine = set(desired.vips) | set(desired.service_problems)
        for key in sorted(mine):
            raw = self.state.services.get(key)
            if raw is None:
                continue
            vip = desired.vips.get(key)
            want = [{"ip": str(vip)}] if vip else []
            have = (raw.get("status") or {}).get("loadBalancer", {}).get("ingress") or []
            if [{"ip": i.get("ip")} for i in have] != want:
                namespace, name = key.split("/", 1)
                calls.append(
                    self._call(
                        self.core.patch_namespaced_service_status,
                        name,
                        namespace,
                        {"status": {"loadBalancer": {"ingress": want}}},
                    )
                )
            route = desired.routes.get(key)
            problem = desired.service_problems.get(key)
            if route is not None:
                message = (
                    f"advertising {vip} via {len(route.next_hops)} "
                    f"node{'s' if len(route.next_hops) != 1 else ''}"
                )
                kind, reason = "Normal", "Advertising"
                if problem:  # advertised, but not quite as asked (a bad community)
                    message, kind = f"{message}; {problem}", "Warning"
            else:
                message, kind, reason = problem or "not advertised", "Warning", "NotAdvertised"
            # Said when the Service's own state changes, not when its next hops do
            # (one node flap would be an Event per Service: said once, above).
            about = (reason, f"{vip} {problem or ''}" if route is not None else message)
            if self.announced.get(key) != about:
                # After a restart the first pass only learns what stands, so a restart
                # posts no Events about things that did not change.
                if self.previous is not None:
                    calls.append(self.post_event(raw, kind, reason, message))
                self.announced[key] = about
        for key in set(self.announced) - mine:
            del self.announced[key]
        await self._concurrently(calls)
        return len(calls)


def _timing(
    changed_at: float | None, began: float, planned: float, diffed: float, written: float
) -> dict[str, float | None]:
    """A pass's figures, in seconds: from the first change it acts on to its route
    and session objects written (what an agent waits for), and of that, the wait
    for the pass to begin, the planning, and the objects: building and diffing them
    against what the cluster holds, then their writes."""
    return {
        "since_change_s": None if changed_at is None else round(written - changed_at, 4),
        "waited_s": None if changed_at is None else round(began - changed_at, 4),
        "plan_s": round(planned - began, 4),
        "objects_s": round(written - planned, 4),
        "diff_s": round(diffed - planned, 4),
        "writes_s": round(written - diffed, 4),
    }
