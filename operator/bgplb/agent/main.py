"""`bgplb-agent`: one per node. Reads what its node should hold, drives the local
gobgpd(s), plumbs floating IPs, reports session status, keeps the node's Lease.

Desired state comes from a file (`--desired-file`: BGPSession, BGPAdvertisedRoute,
NetworkGatewayGroup and Secret manifests) or from the API. Status goes to the API or
to `--status-file`. Fail static: when the source cannot be read the agent keeps what
it has; restarting the agent changes nothing in gobgpd.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import datetime as dt
import functools
import logging
import os
import signal
import time
from collections.abc import Callable, Coroutine, Iterable
from dataclasses import dataclass, field
from ipaddress import IPv4Address, IPv4Interface
from pathlib import Path
from typing import Any

import aiohttp
import grpc

from bgplb.agent import hedge, metrics, probe, stalls, witness
from bgplb.agent.bfd import State as BfdState
from bgplb.agent.bfd import Timers
from bgplb.agent.bfd_server import BfdClient
from bgplb.agent.bfd_speaker import Key
from bgplb.agent.desired import NodeDesired, node_desired
from bgplb.agent.fencing import Fencing, Verdict
from bgplb.agent.floating import NetlinkThread
from bgplb.agent.lease import LeaseKeeper, coordination_api
from bgplb.agent.mesh import INTERVAL, Mesh, without_dead_next_hops
from bgplb.agent.source import (
    Dumped,
    FileSource,
    Inputs,
    KubeSource,
    Source,
    load_inputs,
    save_inputs,
)
from bgplb.agent.speaker.gobgp import GoBGPSpeaker
from bgplb.agent.speaker.model import PeerStatus, SpeakerConfig
from bgplb.agent.status import (
    FileStatusWriter,
    KubeStatusWriter,
    Reporter,
    StatusWriter,
    session_status,
)
from bgplb.api.bgpsession import BGPSessionSpec
from bgplb.logs import setup_logging

log = logging.getLogger("bgplb.agent")


WATCH_HELD = 5.0
"""A watch stream that lasted this long was connected: its break starts a new series."""
BURST_PAUSE_CAP = 1.0
"""The longest pause between two reconciles of a burst of changes."""


BFD_NAMES: dict[BfdState | None, str] = {
    BfdState.ADMIN_DOWN: "AdminDown",
    BfdState.DOWN: "Down",
    BfdState.INIT: "Init",
    BfdState.UP: "Up",
}
"""BFD states as BGPSession status spells them."""


def watch_retry_delay(failures: int) -> float:
    """Seconds before reconnecting a gobgpd watch after `failures` failed attempts in
    a row: 0.5 s doubling to 5 s (a restarted daemon is found within 5 s)."""
    return float(min(5.0, 0.5 * 2**failures))


@dataclass
class Agent:
    node: str
    node_ip: IPv4Address
    source: Source
    service: GoBGPSpeaker
    control_plane: GoBGPSpeaker | None
    """The bgpadvertiser static Pod's gobgpd: read for the control-plane sessions'
    status, never changed (the static Pod owns those sessions; bgplb.static_pod)."""
    floating: NetlinkThread
    writer: StatusWriter
    lease: LeaseKeeper | None = None
    fencing: Fencing | None = None
    """Self-fencing state (None: no Lease, nothing to fence against)."""
    witness_key: bytes | None = None
    """The key witness answers are signed with (None: no witnesses; fence on failure)."""
    resync_seconds: float = 5.0
    reporter: Reporter = field(default_factory=Reporter)
    desired: NodeDesired | None = None
    peers: dict[IPv4Address, PeerStatus] = field(default_factory=dict)
    """The service speaker's neighbours, by address."""
    control_plane_peers: dict[IPv4Address, PeerStatus] = field(default_factory=dict)
    """The static Pod speaker's: kept apart, since both may peer with one router."""
    plumbed: frozenset[IPv4Address] | None = None
    """Floating IPs on this node now; read from the interfaces at start."""
    holding_epoch: int = 0
    """The placement epoch `plumbed` reflects (0: none applied yet), for the Lease."""
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    report_due: asyncio.Event = field(default_factory=asyncio.Event)
    """Set by a reconcile: its session statuses are for `report_loop` to write."""
    mesh: Mesh | None = None
    """The agents' mesh verdicts (None: no witness key or port, no mesh)."""
    prober: probe.Prober | None = None
    renewal_tried: asyncio.Event = field(default_factory=asyncio.Event)
    """Set after each renewal attempt: the fence watch re-reads its deadline."""
    bfd: BfdClient | None = None
    """The speaker Pod's BFD container (None: no BFD on this node)."""
    bfd_pushed: dict[Key, Timers] | None = None
    """The wanted set the BFD container last accepted."""
    bfd_states: dict[str, BfdState] = field(default_factory=dict)
    """`local>peer` → state, as the BFD container last said."""
    reconciled_at: float = field(default_factory=time.monotonic)
    last_inputs: Inputs | None = None
    state_file: Path | None = None
    saved: Inputs | None = None
    """What the state file holds (as far as this process wrote or read it)."""
    dumped: Dumped = field(default_factory=dict)
    """The JSON forms of what it holds, for the next save."""
    changed_at: float | None = None
    """When (monotonic) the oldest input change not yet reconciled was seen."""
    speaker_took: float = 0.0
    """How long the last apply to the service speaker took."""
    speaker_done: float = 0.0
    """When (monotonic) the last apply to the service speaker ended."""

    def witnesses(self) -> dict[str, str]:
        """The other agents' witness addresses by node, as the controller last
        published them (no LIST of every Lease: they change only when nodes come or go)."""
        known = self.last_inputs.witnesses if self.last_inputs else {}
        return {node: address for node, address in known.items() if node != self.node}

    def _peer_addresses(self) -> dict[str, tuple[str, int]]:
        out = {}
        for node, address in self.witnesses().items():
            host, _, port = address.rpartition(":")
            with contextlib.suppress(ValueError):
                out[node] = (str(IPv4Address(host)), int(port))
        return out

    def dead_next_hops(self) -> frozenset[IPv4Address]:
        """The node addresses the mesh's quorum holds for dead."""
        if self.mesh is None or not self.mesh.dead:
            return frozenset()
        peers = self._peer_addresses()
        return frozenset(IPv4Address(peers[n][0]) for n in self.mesh.dead if n in peers)

    def _answered(self, node: str, suspects: frozenset[str]) -> None:
        if self.mesh is not None:
            self.mesh = self.mesh.answered(node, suspects, time.monotonic())
            metrics.MESH_PROBES.labels(node, "answered").inc()

    def _paused(self, node: str, seconds: float) -> None:
        if self.mesh is not None:
            self.mesh = self.mesh.paused(node, time.monotonic() + seconds)
            log.info("mesh: a peer's agent is restarting", extra={"peer": node, "seconds": seconds})

    async def mesh_loop(self) -> None:
        """Probe every other agent each INTERVAL; re-decide who is dead; on a change,
        reconcile at once (the next hops it advertises change)."""
        assert self.mesh is not None
        assert self.prober is not None
        while True:
            now = time.monotonic()
            peers = self._peer_addresses()
            self.mesh = self.mesh.peers(peers, now)
            self.prober.probe(peers)
            self.mesh = self.mesh.probed(peers, now)
            for node in peers:
                metrics.MESH_PROBES.labels(node, "sent").inc()
            was = self.mesh
            self.mesh = was.tick(now)
            if self.mesh.dead != was.dead:
                for node in sorted(self.mesh.dead - was.dead):
                    metrics.MESH_DETECTION.observe(now - was.heard.get(node, now))
                    metrics.NEXT_HOP_WITHDRAWALS.labels("mesh").inc()
                # Who said so, and since when each was heard: a false verdict in
                # a soak is otherwise impossible to explain after the fact.
                log.warning(
                    "mesh: nodes held for dead changed",
                    extra={
                        "dead": sorted(self.mesh.dead),
                        "was": sorted(was.dead),
                        "voters": {
                            n: self.mesh.voters(n, now) for n in sorted(self.mesh.dead - was.dead)
                        },
                        "unheard_for": {
                            n: round(now - t, 3) for n, t in sorted(self.mesh.heard.items())
                        },
                    },
                )
                metrics.MESH_DEAD.set(len(self.mesh.dead))
                self.wake.set()
            await asyncio.sleep(max(0.0, INTERVAL - (time.monotonic() - now)))

    def healthy(self) -> bool:
        return time.monotonic() - self.reconciled_at < 6 * self.resync_seconds

    # --- reconcile -------------------------------------------------------------

    async def _inputs(self) -> Inputs | None:
        """Fresh inputs; else the last good ones (in memory, then on disk): fail static."""
        try:
            inputs: Inputs = await asyncio.to_thread(self.source.read)
        except Exception as e:
            metrics.API_ERRORS.labels("read").inc()
            if self.last_inputs is None and self.state_file and self.state_file.exists():
                self.last_inputs = await asyncio.to_thread(load_inputs, self.state_file)
                self.saved = self.last_inputs
                log.warning(
                    "API unreachable; using the desired state saved on this node",
                    extra={"error": str(e), "file": str(self.state_file)},
                )
            else:
                log.warning(
                    "cannot read desired state; keeping the last known", extra={"error": str(e)}
                )
            return self.last_inputs
        self.last_inputs = inputs
        return inputs

    async def _apply_speaker(self, config: SpeakerConfig) -> int:
        started = time.monotonic()
        changes = await self.service.apply(config)
        self.speaker_done = time.monotonic()
        self.speaker_took = self.speaker_done - started
        return changes

    async def _save_inputs(self) -> None:
        """After the data plane has what the inputs say: writing the file is no part
        of a Service's way to the routers."""
        if self.state_file is not None and self.last_inputs not in (None, self.saved):
            inputs = self.last_inputs
            await asyncio.to_thread(save_inputs, self.state_file, inputs, self.dumped)
            self.saved = inputs

    async def reconcile(self) -> None:
        seen, self.changed_at = self.changed_at, None
        began = time.monotonic()
        inputs = await self._inputs()
        read = time.monotonic()
        if inputs is None:
            self.reconciled_at = time.monotonic()  # alive; nothing known to act on yet
            return
        desired = node_desired(
            self.node,
            self.node_ip,
            sessions=inputs.sessions,
            routes=without_dead_next_hops(inputs.routes, self.dead_next_hops()),
            floating_ips=(ip for ip, holder in inputs.floating_ips.items() if holder == self.node),
            passwords=inputs.passwords,
            pools=inputs.pools,
        )
        if desired.refused_routes and (
            self.desired is None or self.desired.refused_routes != desired.refused_routes
        ):
            log.warning(
                "refusing to advertise routes",
                extra={"routes": dict(sorted(desired.refused_routes.items())[:20])},
            )
        metrics.ROUTES_REFUSED.set(len(desired.refused_routes))
        self.desired = desired
        if self.plumbed is None:
            self.plumbed = await self.floating.ours()
        verdict = self._verdict()
        ips = desired.floating_ips if verdict is Verdict.ALLOW else frozenset()
        if verdict is Verdict.KEEP:  # a start: keep what this node holds until the Lease says
            ips = self.plumbed
        # New floating IPs first, so new sessions can bind at once; old ones last, so
        # sessions leaving this node still send their Cease from the old address and
        # the ToR does not hold a stale session until its hold timer expires. With no
        # floating IP to move (a Service created, a next hop changed), the speaker goes
        # first: the interfaces are only re-checked, and the UPDATE need not wait on it.
        steady = ips == self.plumbed
        changes = await self._apply_speaker(desired.service) if steady else 0
        result = await self.floating.sync(ips | self.plumbed)
        metrics.FLOATING_IP_CHANGES.labels("add").inc(len(result.added))
        for ip, why in result.unplaceable.items():
            log.warning("cannot place floating IP", extra={"ip": str(ip), "reason": why})
        if not steady:
            changes = await self._apply_speaker(desired.service)
        if changes:
            # How long the change took from the API's watch to gobgpd: the agent's
            # share of a Service's way to the routers. It ends when gobgpd has it: the
            # interfaces' re-check after that (pyroute2) is on no route's way.
            since = None if seen is None else self.speaker_done - seen
            if since is not None:
                metrics.APPLY_DELAY.observe(since)
            log.info(
                "speaker updated",
                extra={
                    "changes": changes,
                    "since_change_s": None if since is None else round(since, 4),
                    # Of that: waiting for the reconcile to begin (a reconcile before
                    # it), reading the inputs, and gobgpd's calls.
                    "queued_s": None if seen is None else round(began - seen, 4),
                    "read_s": round(read - began, 4),
                    "speaker_s": round(self.speaker_took, 4),
                },
            )
        removed = result if steady else await self.floating.sync(ips)
        metrics.FLOATING_IP_CHANGES.labels("remove").inc(len(removed.removed))
        self.plumbed = ips
        held = ips | {self.node_ip}
        await self._save_inputs()
        await self._sync_bfd({k: t for k, t in desired.bfd.items() if k[0] in held})
        self.holding_epoch = inputs.epoch
        metrics.PATHS.set(len(desired.service.paths))
        metrics.BGP_LISTEN_PORT.set(self.service.listening)
        self.reconciled_at = time.monotonic()
        metrics.mark_reconciled()
        # The statuses follow, off this path: written here (a PATCH per session whose
        # advertised routes changed, one after another) a change arriving meanwhile
        # waited for them.
        self.report_due.set()

    async def _sync_bfd(self, wanted: dict[Key, Timers]) -> None:
        """BFD only from addresses this node holds: a session's packets must stop
        when its floating IP leaves (the socket's bound address is gone anyway)."""
        if self.bfd is None or (wanted == self.bfd_pushed and not wanted):
            return
        try:
            states, failed = await self.bfd.sync(wanted)
        except (OSError, ValueError, aiohttp.ClientError, TimeoutError) as e:
            if self.bfd_pushed is not None:
                log.warning("cannot reach the BFD container", extra={"error": str(e)})
            self.bfd_pushed = None
            return
        if wanted != self.bfd_pushed:
            log.info("bfd sessions", extra={"sessions": len(wanted), "failed": failed})
        self.bfd_pushed = wanted
        self.bfd_states = states
        for state in BfdState:
            metrics.BFD_SESSIONS.labels(state.name.lower()).set(
                sum(s == state for s in states.values())
            )

    def _verdict(self) -> Verdict:
        if self.fencing is None:
            return Verdict.ALLOW
        return self.fencing.verdict(time.monotonic())

    def api_reachable_for(self) -> float:
        """What this agent tells other agents that ask it as a witness."""
        return self.fencing.reachable_for(time.monotonic()) if self.fencing else 0.0

    def api_renewed_ago(self) -> float | None:
        return self.fencing.renewed_ago(time.monotonic()) if self.fencing else None

    # --- status ----------------------------------------------------------------

    async def report(self, only_peer: IPv4Address | None = None) -> None:
        if self.desired is None:
            return
        cp_routes: list[str] = []
        try:
            self.peers = await self.service.peer_status()
        except grpc.aio.AioRpcError as e:
            log.warning("cannot read peer state", extra={"error": e.details()})
        if self.control_plane is not None and any(
            s.type == "ControlPlane" for s in self.desired.sessions.values()
        ):
            try:
                self.control_plane_peers = await self.control_plane.peer_status()
                held = await self.control_plane.adopt()
                cp_routes = sorted({str(p.prefix) for p in held.paths})
            except grpc.aio.AioRpcError as e:
                # Its sessions end with it: report them Idle, not as last seen.
                self.control_plane_peers = {}
                log.warning("cannot read the control-plane speaker", extra={"error": e.details()})
        now = dt.datetime.now(dt.UTC)
        routes = sorted({str(p.prefix) for p in self.desired.service.paths})
        for name, spec in self.desired.sessions.items():
            if only_peer is not None and spec.peer_ip != only_peer:
                continue
            error = ""
            if name in self.desired.missing_passwords:
                secret, key = self.desired.missing_passwords[name]
                error = f"password Secret {secret} (key {key}) cannot be read"
            status = session_status(
                spec,
                self.peer_of(spec),
                routes if spec.type == "Service" else cp_routes,
                now,
                error=error,
                bfd=BFD_NAMES.get(self.bfd_states.get(f"{spec.local_ip}>{spec.peer_ip}")),
            )
            if not self.reporter.due(name, status):
                continue
            try:
                await asyncio.to_thread(self.writer.write, name, status)
                self.reporter.mark(name, status)
            except Exception as e:
                log.warning("cannot write session status", extra={"session": name, "error": str(e)})
        self.reporter.forget_except(self.desired.sessions)
        states: dict[str, int] = {}
        for spec in self.desired.sessions.values():
            peer = self.peer_of(spec)
            state = peer.state if peer else "Idle"
            states[state] = states.get(state, 0) + 1
        for state in ("Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established"):
            metrics.SESSIONS.labels(state).set(states.get(state, 0))

    def peer_of(self, spec: BGPSessionSpec) -> PeerStatus | None:
        """The state of the speaker that owns this session."""
        peers = self.control_plane_peers if spec.type == "ControlPlane" else self.peers
        return peers.get(spec.peer_ip)

    # --- loops -----------------------------------------------------------------

    async def reconcile_loop(self) -> None:
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.wake.wait(), self.resync_seconds)
            self.wake.clear()
            started = time.monotonic()
            try:
                await self.reconcile()
            except grpc.aio.AioRpcError as e:
                metrics.SPEAKER_ERRORS.inc()
                log.warning("speaker unreachable", extra={"error": e.details()})
            if self.wake.is_set():
                # A burst: more came while this one ran. Pausing as long as it took
                # holds the agent to about half a core however long the burst lasts;
                # back to back, every agent's reconciles of every route took a whole
                # core and starved the API server (CI run 21: 1,000 Services created
                # at ~1 a second). A lone change waits for nothing.
                await asyncio.sleep(min(time.monotonic() - started, BURST_PAUSE_CAP))

    async def watch_loop(self, speaker: GoBGPSpeaker, replays: bool = True) -> None:
        """Session state changes as they happen. A broken stream means the daemon
        may have restarted empty: the agent's own speaker (`replays`) is then
        reconciled again, after every failed attempt; the static Pod's is only read.
        Reconnects back off, and a series of failures is logged once. On a node
        without that daemon (a worker has no control-plane speaker) the loop used to
        wake a full reconcile and log a warning twice a second, starving the agent
        under CPU stress until its Lease renewal came late and it fenced (the soak
        found it)."""
        failures = 0
        while True:
            started = time.monotonic()
            try:
                async for peer in speaker.watch():
                    failures = 0
                    log.info(
                        "session state", extra={"peer": str(peer.address), "state": peer.state}
                    )
                    await self.report(only_peer=peer.address)
            except grpc.aio.AioRpcError as e:
                if time.monotonic() - started >= WATCH_HELD:
                    failures = 0  # it was connected: a new series
                if failures == 0:
                    log.warning(
                        "gobgpd watch broken",
                        extra={"target": speaker.target, "error": e.details()},
                    )
            if replays:
                self.wake.set()
            await asyncio.sleep(watch_retry_delay(failures))
            failures += 1

    async def source_loop(self) -> None:
        async for seen in self.source.changes():
            if self.changed_at is None:
                self.changed_at = seen
            self.wake.set()

    async def lease_loop(self) -> None:
        assert self.lease is not None
        assert self.fencing is not None
        while True:
            started = time.monotonic()
            before = self.fencing
            try:
                addresses = await self.floating.node_addresses()
                if self.plumbed is None:
                    self.plumbed = await self.floating.ours()
                holding = (self.holding_epoch, self.plumbed)
                attempt = functools.partial(self._renew, addresses, holding)
                deadline = self.fencing.renew_by(started)
                if deadline is None:
                    await attempt(self.lease.timeout)
                else:
                    await hedge.first_success(attempt, deadline)
                # Every renewTime written was taken after `started`: count from then.
                self.fencing = self.fencing.renewed(started)
                if before.fenced:
                    log.info("lease renewed again; floating IPs return after one lease period")
                    loop = asyncio.get_running_loop()
                    loop.call_later(self.fencing.duration, self.wake.set)
            except Exception as e:
                self.fencing = self.fencing.renewal_failed(started)
                metrics.API_ERRORS.labels("lease").inc()
                log.warning("cannot renew lease", extra={"error": str(e)})
            self.renewal_tried.set()
            if self.fencing.verdict(time.monotonic()) != before.verdict(time.monotonic()):
                self.wake.set()
            await asyncio.sleep(self.fencing.renew_in(started, time.monotonic()))

    async def _renew(
        self,
        addresses: list[IPv4Interface],
        holding: tuple[int, Iterable[IPv4Address]],
        timeout: float,
    ) -> None:
        assert self.lease is not None
        await self.lease.renew_async(dt.datetime.now(dt.UTC), addresses, holding, timeout)

    async def fence_loop(self) -> None:
        """Asks the witnesses the moment the last renewal is overdue, not at the next
        renewal attempt (up to a request timeout later, past the margin: found by a
        test that saw the IP dropped 3.0 s after the API server died, lease 3 s); and
        again every second while they keep the IPs. Starts after the first attempt."""
        assert self.fencing is not None
        await self.renewal_tried.wait()
        while True:
            self.renewal_tried.clear()
            if self.fencing.must_ask(time.monotonic()):
                before = self.fencing
                await self._ask_witnesses()
                if self.fencing.verdict(time.monotonic()) != before.verdict(time.monotonic()):
                    self.wake.set()
                await asyncio.sleep(1.0)
                continue
            at = self.fencing.ask_at()
            wait = None if at is None else max(0.0, at - time.monotonic())
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.renewal_tried.wait(), wait)

    async def _ask_witnesses(self) -> None:
        assert self.fencing is not None
        known = self.witnesses() if self.witness_key else {}
        answers = await witness.ask(known, self.witness_key) if self.witness_key and known else {}
        was = self.fencing
        self.fencing = was.answered(answers, len(known), time.monotonic())
        answered = sum(a is not None for a in answers.values())
        if self.fencing.kept_by_witnesses:
            if not was.kept_by_witnesses:
                log.warning(
                    "API server unreachable from a quorum of witnesses: keeping floating IPs",
                    extra={"witnesses": len(known), "answered": answered},
                )
            return
        # Drop them now, not at the next reconcile: the controller may move them soon.
        await self.floating.sync(frozenset())
        self.plumbed = frozenset()
        metrics.FENCES.inc()
        log.warning(
            "lease not renewed in time: floating IPs dropped (self-fencing)",
            extra={"witnesses": len(known), "answered": answered},
        )

    async def hand_over(self, grace: float) -> None:
        """Stopping (a rollout, a Pod deleted): renew the Lease once for `grace`
        seconds, so the controller leaves this node's floating IPs in place until the
        next agent renews. A fenced agent asks nothing: its IPs are gone already."""
        if (
            self.lease is None
            or grace <= 0
            or self.fencing is None
            or self.fencing.fenced is not False
        ):
            return
        try:
            addresses = await self.floating.node_addresses()
            await asyncio.to_thread(
                self.lease.renew, dt.datetime.now(dt.UTC), addresses, max(grace, 1.0)
            )
            log.info("stopping: lease held for the next agent", extra={"seconds": grace})
        except Exception as e:
            log.warning("stopping: could not hold the lease", extra={"error": str(e)})

    async def report_loop(self) -> None:
        """Session statuses after each reconcile (a burst of them: one report) and at
        the refresh."""
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(
                    self.report_due.wait(), max(1.0, self.reporter.refresh_seconds / 4)
                )
            self.report_due.clear()
            await self.report()

    async def run(self) -> None:
        loops: list[Callable[[], Coroutine[Any, Any, None]]] = [
            self.reconcile_loop,
            self.source_loop,
            self.report_loop,
            lambda: self.watch_loop(self.service),
            stalls.watch_loop,
        ]
        if self.control_plane is not None:
            cp = self.control_plane
            loops.append(lambda: self.watch_loop(cp, replays=False))
        if self.lease is not None:
            loops += [self.lease_loop, self.fence_loop]
        if self.mesh is not None:
            loops.append(self.mesh_loop)
        self.wake.set()
        async with asyncio.TaskGroup() as group:
            for loop in loops:
                group.create_task(loop())


def _kube_clients(kubeconfig: str | None) -> tuple[Any, Any, Any]:
    from kubernetes import client, config

    if kubeconfig:
        config.load_kube_config(kubeconfig)
    else:
        config.load_incluster_config()
    return client.CustomObjectsApi(), coordination_api(), client.CoreV1Api()


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="bgplb-agent", description=__doc__)
    p.add_argument(
        "--node", default=os.environ.get("NODE_NAME"), required="NODE_NAME" not in os.environ
    )
    p.add_argument("--node-ip", type=IPv4Address, default=os.environ.get("NODE_IP"))
    p.add_argument("--namespace", default=os.environ.get("BGPLB_NAMESPACE", "kube-system"))
    p.add_argument("--speaker", default="127.0.0.1:50051", help="service gobgpd gRPC target")
    p.add_argument(
        "--bgp-listen-port",
        type=int,
        default=int(os.environ.get("BGPLB_BGP_LISTEN_PORT", "179")),
        help="the service speaker accepts the sessions peers open on this port (0: none)",
    )
    p.add_argument(
        "--control-plane-speaker",
        default=None,
        help="the bgpadvertiser static Pod's gobgpd, read for control-plane session status",
    )
    p.add_argument(
        "--bfd-socket",
        type=Path,
        help="the speaker Pod's BFD container (bgplb bfd); unset: no BFD from this node",
    )
    p.add_argument("--desired-file", type=Path, help="read desired state from this file")
    p.add_argument("--status-file", type=Path, help="write session status here, not to the API")
    p.add_argument("--kubeconfig", default=os.environ.get("KUBECONFIG"))
    p.add_argument("--lease-duration", type=float, default=3.0)
    p.add_argument(
        "--mesh",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="probe the other agents over UDP on the witness port and leave out the next "
        "hops of nodes a quorum of them has lost, before their Leases expire (needs the "
        "witness port and key)",
    )
    p.add_argument(
        "--restart-grace",
        type=float,
        default=15.0,
        help="seconds a stopping agent asks the controller to keep this node live for its "
        "successor; 0 to ask nothing",
    )
    p.add_argument("--status-refresh", type=float, default=60.0)
    p.add_argument(
        "--state-file",
        type=Path,
        default=None,
        help="keep the last desired state here, for starts without the API",
    )
    p.add_argument(
        "--metrics-address",
        default="127.0.0.1:9091",
        help="host:port for /metrics and /healthz; empty to disable",
    )
    p.add_argument(
        "--witness-port",
        type=int,
        default=9094,
        help="port on the node IP where other agents ask whether this one reaches the API "
        "server (decides self-fencing); 0 to disable",
    )
    p.add_argument(
        "--witness-key-file",
        type=Path,
        default=None,
        help="the key witness answers are signed with, shared by every agent (the chart's "
        "Secret); without it this agent neither asks nor answers, and fences whenever its "
        "Lease renewals fail",
    )
    args = p.parse_args(argv)
    if args.node_ip is None:
        p.error("--node-ip (or NODE_IP) is required")
    args.witness_key = None
    if args.witness_key_file is not None:
        try:
            args.witness_key = witness.read_key(args.witness_key_file)
        except (OSError, ValueError) as e:
            p.error(f"--witness-key-file: {e}")
    return args


def _witnessing(args: argparse.Namespace) -> bool:
    return bool(args.witness_port and args.witness_key)


def build(args: argparse.Namespace) -> Agent:
    floating = NetlinkThread()
    api = coordination = core = None
    if args.kubeconfig or not (args.desired_file and args.status_file):
        api, coordination, core = _kube_clients(args.kubeconfig)
    source: Source = (
        FileSource(args.desired_file)
        if args.desired_file
        else KubeSource(api, core, args.namespace, args.node)
    )
    writer: StatusWriter = (
        FileStatusWriter(args.status_file)
        if args.status_file
        else KubeStatusWriter(api, args.namespace)
    )
    lease = fencing = None
    if coordination is not None:
        lease = LeaseKeeper(
            coordination,
            args.namespace,
            args.node,
            args.lease_duration,
            witness=f"{args.node_ip}:{args.witness_port}" if _witnessing(args) else None,
        )
        fencing = Fencing(duration=args.lease_duration)
    return Agent(
        node=args.node,
        node_ip=args.node_ip,
        source=source,
        service=GoBGPSpeaker(args.speaker, listen_port=args.bgp_listen_port),
        control_plane=GoBGPSpeaker(args.control_plane_speaker)
        if args.control_plane_speaker
        else None,
        floating=floating,
        writer=writer,
        lease=lease,
        fencing=fencing,
        witness_key=args.witness_key,
        reporter=Reporter(refresh_seconds=args.status_refresh),
        state_file=args.state_file,
        bfd=BfdClient(args.bfd_socket) if args.bfd_socket else None,
    )


def main(argv: list[str] | None = None) -> int:
    setup_logging()
    args = parse_args(argv)

    async def run() -> None:
        # gRPC aio channels belong to the loop they are made in: build inside it.
        agent = build(args)
        task = asyncio.current_task()
        assert task is not None
        loop = asyncio.get_running_loop()
        # SIGTERM ends the agent but leaves gobgpd and the floating IPs as they are:
        # a restart must not flap sessions (fail static).
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, task.cancel)
        runner = None
        if args.metrics_address:
            host, _, port = args.metrics_address.rpartition(":")
            runner = await metrics.serve(host, int(port), agent.healthy)
        witness_runner = None
        if agent.lease is not None and agent.witness_key is not None and args.witness_port:
            if args.mesh:
                agent.mesh = Mesh(args.node)
                agent.prober = probe.Prober(
                    args.node,
                    agent.witness_key,
                    lambda: agent.mesh.suspects(time.monotonic()) if agent.mesh else (),
                    agent._answered,
                    agent._paused,
                )
                agent.prober.start(str(args.node_ip), args.witness_port)
            witness_runner = await witness.serve(
                str(args.node_ip),
                args.witness_port,
                args.node,
                key=agent.witness_key,
                reachable_for=agent.api_reachable_for,
                renewed_ago=agent.api_renewed_ago,
            )
        stalls.freeze()
        thread_watch = stalls.ThreadWatch()
        thread_watch.start()
        try:
            with contextlib.suppress(asyncio.CancelledError):
                await agent.run()
        finally:
            thread_watch.stop()
            await agent.hand_over(args.restart_grace)
            if agent.prober is not None and args.restart_grace > 0:
                agent.prober.pause(agent._peer_addresses(), args.restart_grace)
            agent.floating.close()
            if agent.prober is not None:
                agent.prober.close()
            for r in (runner, witness_runner):
                if r is not None:
                    await r.cleanup()

    log.info("agent starting", extra={"node": args.node, "node_ip": str(args.node_ip)})
    asyncio.run(run())
    return 0
