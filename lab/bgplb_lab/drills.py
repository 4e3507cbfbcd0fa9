"""Failure drills on a running lab, each returning what it measured.

The e2e tests assert on these results; the lab benchmark repeats them for medians.
Times are wall-clock seconds (the client in its own namespace logs wall-clock too).
Every drill leaves the lab as it found it: failed nodes rebooted, routers restarted,
peers removed, partitions healed.
"""

from __future__ import annotations

import contextlib
import json
import signal
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bgplb_lab import cpu
from bgplb_lab.daemons import FRR, route_changes, stop_processes, wait_for, watch_routes
from bgplb_lab.kubelets import BACKEND_PORT
from bgplb_lab.manifests import NAMESPACE, peer, service
from bgplb_lab.topology import (
    APISERVER_IP,
    CONTROL_PLANE_VIP,
    DEMO_VIP,
    FABRIC,
    LOCAL_ASN,
    NODES,
    TOR_ASN,
    Lab,
)

LB_NODES = frozenset(n.name for n in NODES if n.control_plane)
WEBHOOK = "app.kubernetes.io/component=webhook"


# --- observing ----------------------------------------------------------------------


@dataclass
class TrafficLog:
    """Requests the client made while a drill ran."""

    requests: list[dict[str, Any]]

    def __post_init__(self) -> None:
        # The client logs each request as it ends; they overlap, so ends are not in
        # the order of starts.
        self.requests.sort(key=lambda r: float(r["t"]))

    @property
    def failed(self) -> int:
        return sum(not r["ok"] for r in self.requests)

    def failures(self, t0: float, limit: int = 10) -> list[str]:
        """The first failed requests, as seconds after t0 and what the client saw: a
        failed drill says when and how."""
        bad = [r for r in self.requests if not r["ok"]][:limit]
        return [
            f"{r['t'] - t0:+.2f}s {str(r.get('answer', ''))[:80]} after {r.get('dt', '?')}s"
            for r in bad
        ]

    def in_flight(self, moment: float) -> list[dict[str, Any]]:
        """The requests started before `moment` and not ended by it."""
        return [r for r in self.requests if r["t"] < moment < r["t"] + float(r["dt"])]

    def restored_after(self, t0: float) -> float:
        """Seconds from t0 to the first answered request after the last failed one
        (0 when nothing failed)."""
        failures: list[float] = [r["t"] for r in self.requests if not r["ok"] and r["t"] >= t0]
        if not failures:
            return 0.0
        last = max(failures)
        later: list[float] = [r["t"] for r in self.requests if r["ok"] and r["t"] > last]
        return (min(later) if later else last) - t0


@contextlib.contextmanager
def traffic(
    lab: Lab, timeout: float = 0.5, vip: str = DEMO_VIP
) -> Iterator[Callable[[], TrafficLog]]:
    """Continuous requests to `vip` (the demo Service's) from the client, every 50 ms;
    one not answered within `timeout` seconds counts as failed."""
    log = lab.workdir / f"traffic-{time.monotonic_ns()}.jsonl"
    proc = lab.start_traffic(log, timeout, vip)
    wait_for("the first request", lambda: log.exists() and log.stat().st_size > 0, timeout=10)

    def read() -> TrafficLog:
        lines = log.read_text().splitlines()
        return TrafficLog([json.loads(line) for line in lines if line.endswith("}")])

    try:
        yield read
    finally:
        stop_processes(proc)


def session_marks(lab: Lab) -> dict[str, Any]:
    """What a flap changes at the ToRs: FRR's per-neighbour connection counters and
    establishment time, BIRD's per-session 'since'."""
    marks: dict[str, Any] = {}
    for address, n in lab.frr.json("show bgp neighbors").items():
        if n.get("bgpState") == "Established":
            marks[f"frr/{address}"] = (
                n.get("connectionsEstablished"),
                n.get("connectionsDropped"),
                n.get("bgpTimerUpEstablishedEpoch"),
            )
    # BIRD names dynamic sessions node1, node2, ... in order of arrival: key them by
    # the neighbour's address, so a flap names the session that flapped.
    since: tuple[str, float] | None = None
    for line in lab.bird.birdc("show protocols all").splitlines():
        words = line.split()
        if words and not line.startswith(" "):  # a protocol's first line
            established = words[0].startswith("node") and "Established" in words
            since = (words[0], _seconds_of_day(words[4])) if established else None
        elif since is not None and line.strip().startswith("Neighbor address:"):
            marks[f"bird/{words[-1]}"] = since
    return marks


def flaps(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Sessions that went down or came up again in between."""
    return sorted(k for k in before.keys() | after.keys() if not _same(before.get(k), after.get(k)))


def flap_details(before: dict[str, Any], after: dict[str, Any]) -> dict[str, Any]:
    """What each flapped session's marks were, before → after (for the drill's report)."""
    return {k: f"{before.get(k)} → {after.get(k)}" for k in flaps(before, after)}


def _seconds_of_day(clock: str) -> float:
    """BIRD's 'since' ("hh:mm:ss.sss") in seconds after midnight."""
    h, m, s = clock.split(":")
    return int(h) * 3600 + int(m) * 60 + float(s)


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b) == 3:
        # FRR derives the establishment epoch from the uptime: it jitters by a second.
        return a[:2] == b[:2] and abs((a[2] or 0) - (b[2] or 0)) <= 2
    if isinstance(a, tuple) and isinstance(b, tuple) and len(a) == len(b) == 2:
        # BIRD keeps 'since' on its monotonic clock and shows it on the wall clock:
        # the two drift apart by milliseconds, so the same session's mark moves a little.
        drift = abs(a[1] - b[1]) % 86400
        return bool(a[0] == b[0] and min(drift, 86400 - drift) < 1.0)
    return bool(a == b)


def wait_stable(lab: Lab, timeout: float = 120) -> None:
    """Every session Established, the VIP on both ToRs via every LB node, and each
    floating IP on exactly the node the controller chose."""
    lab.wait_ready(timeout)

    def settled() -> bool:
        holders = lab.holders()
        plumbed = lab.plumbed()
        return len(holders) == 2 and all(plumbed.get(ip) == [n] for ip, n in holders.items())

    wait_for("floating IPs settled", settled, timeout)
    lab.wait_ready(timeout)


def settle(lab: Lab, quiet: float = 5, timeout: float = 90) -> dict[str, Any]:
    """Wait until no session at either ToR has come or gone for `quiet` seconds, so a
    drill's flaps are its own and not the tail of the one before. Returns the marks."""
    deadline = time.monotonic() + timeout
    marks = session_marks(lab)
    while time.monotonic() < deadline:
        time.sleep(quiet)
        now = session_marks(lab)
        if not flaps(marks, now):
            return now
        marks = now
    raise TimeoutError(f"sessions still changing after {timeout}s: {flaps(marks, now)}")


# --- drills -------------------------------------------------------------------------


@dataclass
class Result:
    name: str
    figures: dict[str, Any] = field(default_factory=dict)

    def __str__(self) -> str:
        return f"{self.name}: " + ", ".join(f"{k}={v}" for k, v in self.figures.items())


QUIET = 3.0
"""Traffic counts as restored once this long has passed without a failed request."""
RESTORE_CAP = 60.0
"""...or, at the latest, this long after the failure (then it is reported as such)."""


def ready_endpoint_nodes(lab: Lab) -> set[str]:
    """Nodes with a ready endpoint of the demo Service."""
    slices = lab.get_json(
        "endpointslices", "-n", "default", "-l", "kubernetes.io/service-name=demo"
    )
    return {
        e.get("nodeName", "")
        for s in slices["items"]
        for e in s.get("endpoints") or []
        if (e.get("conditions") or {}).get("ready")
    }


def _until_quiet(
    lab: Lab, log: Callable[[], TrafficLog], victim: str, t0: float, seconds: float
) -> float | None:
    """Keep the traffic going until it has been clean for QUIET (and at least two
    seconds past `seconds`), noting when the victim's Pod left the demo Service's
    ready endpoints: with externalTrafficPolicy Cluster every node's kube-proxy sends
    a share of new connections to it until then, whatever the ToRs do. Returns that
    moment, in seconds after t0 (None: not within RESTORE_CAP)."""
    endpoint_gone: float | None = None
    while (now := time.time()) - t0 < RESTORE_CAP:
        if endpoint_gone is None and victim not in ready_endpoint_nodes(lab):
            endpoint_gone = time.time() - t0
        failures = [r["t"] for r in log().requests if not r["ok"]]
        if now - max(failures, default=t0) >= QUIET and now - t0 >= seconds + 2:
            break
        time.sleep(0.5)
    return endpoint_gone


def _node_failure(
    lab: Lab, victim: str, what: str, until: Callable[[], bool], timeout: float
) -> tuple[float, float, float | None, TrafficLog]:
    """Kill `victim` under client traffic, wait for `until`, keep the traffic going
    until it is clean (`_until_quiet`), then reboot the victim and let the lab settle.
    Returns when it died, seconds until `until`, seconds until its Pod's endpoint was
    no longer ready, and the traffic."""
    try:
        with traffic(lab) as log:
            time.sleep(1)
            t0 = time.time()
            lab.fail_node(victim)
            wait_for(what, until, timeout=timeout, every=0.05)
            seconds = time.time() - t0
            endpoint_gone = _until_quiet(lab, log, victim, t0, seconds)
            result = log()
    finally:
        lab.restore_node(victim)
        wait_stable(lab)
    return t0, seconds, endpoint_gone, result


def logged(log: str, message: str) -> list[dict[str, Any]]:
    """The JSON entries of an agent's log lines (its container log: a prefix, then
    the entry) whose message is `message`."""
    out = []
    for line in log.splitlines():
        start = line.find("{")
        if start < 0 or message not in line:
            continue
        with contextlib.suppress(ValueError):
            entry = json.loads(line[start:])
            if isinstance(entry, dict) and entry.get("msg") == message:
                out.append(entry)
    return out


def mesh_held_for_dead(log: str, node: str) -> int:
    """How many times an agent's log says its mesh began holding `node` for dead."""
    return sum(
        node in entry.get("dead", []) and node not in entry.get("was", [])
        for entry in logged(log, "mesh: nodes held for dead changed")
    )


def stalls_logged(log: str) -> list[dict[str, Any]]:
    """The agent's "agent stalled" lines (agent/stalls.py): where, seconds,
    cpu_seconds, gc_seconds."""
    keys = ("where", "seconds", "cpu_seconds", "gc_seconds")
    return [{k: entry.get(k) for k in keys} for entry in logged(log, "agent stalled")]


def stall_summary(entries: list[dict[str, Any]]) -> dict[str, Any]:
    """How many stalls of ≥ 0.25 s, and the longest: with the CPU the process used in
    it (near the stall's length: busy, holding the GIL; near 0: not run by the
    kernel) and the time it spent collecting garbage."""
    if not entries:
        return {}
    worst = max(entries, key=lambda e: e.get("seconds") or 0)
    return {"count": len(entries), "longest": worst}


@contextlib.contextmanager
def no_backend_on(lab: Lab, node: str) -> Iterator[None]:
    """The demo Pods kept off `node` (a required node affinity), then spread back.

    With a demo Pod on a node that dies, every node's kube-proxy keeps sending a
    share of new connections to it until the node controller takes it out of the
    endpoints (~20 s here), whatever the load balancer does: a failover drill that
    is to time the fabric keeps the Pods elsewhere."""

    def affinity(terms: Any) -> None:
        patch = {"spec": {"template": {"spec": {"affinity": terms}}}}
        lab.kubectl(
            "patch", "deployment", "demo", "-n", "default", "--type=merge",
            "-p", json.dumps(patch),
        )  # fmt: skip

    def spread(avoided: bool | None) -> Callable[[], bool]:
        """Rolled out: four ready demo Pods and no other; with (False) or without
        (True) one on `node`, or either (None)."""

        def done() -> bool:
            pods = lab.get_json("pods", "-n", "default", "-l", "app=demo")["items"]
            ready = [
                p for p in pods
                if p["metadata"].get("deletionTimestamp") is None
                and any(c["type"] == "Ready" and c["status"] == "True"
                        for c in p["status"].get("conditions", []))
            ]  # fmt: skip
            on_node = any(p["spec"].get("nodeName") == node for p in ready)
            return len(ready) == len(pods) == 4 and avoided in (None, not on_node)

        return done

    term = {"key": "kubernetes.io/hostname", "operator": "NotIn", "values": [node]}
    affinity(
        {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [term]}]
                }
            }
        }
    )
    wait_for(f"the demo Pods off {node}", spread(avoided=True), timeout=120)
    try:
        yield
    finally:
        affinity(None)
        try:  # spreading is the scheduler's preference, not a rule
            wait_for(f"a demo Pod back on {node}", spread(avoided=False), timeout=60)
        except TimeoutError:
            wait_for("the demo Pods rolled out", spread(avoided=None), timeout=60)


def lb_node_failure(lab: Lab, backends_elsewhere: bool = False) -> Result:
    """A load-balancing node that holds no floating IP dies: its next hop must leave
    the ToRs' ECMP routes; measure until every request is answered again. The
    floating-IP holders' agents (whose speakers advertise the next hops) should hold
    it for dead by their mesh, ahead of its Lease. `backends_elsewhere`: the demo
    Pods kept off the victim (no_backend_on), so "traffic restored" times the fabric."""
    holders = sorted(set(lab.holders().values()))
    victim = sorted(LB_NODES - set(holders))[0]
    with no_backend_on(lab, victim) if backends_elsewhere else contextlib.nullcontext():
        return _lb_node_failure(lab, victim, holders)


def _lb_node_failure(lab: Lab, victim: str, holders: list[str]) -> Result:
    ip = lab.node(victim).ip
    verdicts_before = {n: mesh_held_for_dead(lab.agent_log(n), victim) for n in holders}
    t0, withdrawn, endpoint_gone, result = _node_failure(
        lab,
        victim,
        "the dead node's next hop withdrawn from both ToRs",
        lambda: all(ip not in hops for hops in lab.tor_next_hops(DEMO_VIP).values()),
        timeout=30,
    )
    return Result(
        "lb-node failure",
        {
            "node": victim,
            "held_for_dead_by_mesh": {
                n: mesh_held_for_dead(lab.agent_log(n), victim) > verdicts_before[n]
                for n in holders
            },
            "route_withdrawn_s": round(withdrawn, 2),
            "endpoint_gone_s": round(endpoint_gone, 2) if endpoint_gone is not None else None,
            "traffic_restored_s": round(result.restored_after(t0), 2),
            "failed_requests": result.failed,
            "requests": len(result.requests),
            **({"failures": result.failures(t0, limit=40)} if result.failed else {}),
        },
    )


def floating_ip_node_failure(lab: Lab, backends_elsewhere: bool = False) -> Result:
    """The node holding a floating IP dies: the IP and its sessions move; with
    sessions ≥ 2 the VIP route never leaves the ToRs. `backends_elsewhere`: as for
    lb_node_failure."""
    floating_ip, victim = sorted(lab.holders().items())[0]
    with no_backend_on(lab, victim) if backends_elsewhere else contextlib.nullcontext():
        return _floating_ip_node_failure(lab, floating_ip, victim)


def _floating_ip_node_failure(lab: Lab, floating_ip: str, victim: str) -> Result:
    victim_ip = lab.node(victim).ip
    bfd_drops = lab.frr.bfd_drops()
    samples: list[dict[str, set[str]]] = []
    next_hop_gone: list[float] = []
    moved_to: list[str] = []

    def moved() -> bool:
        """Every session from the floating IP (one per ToR) Established elsewhere."""
        samples.append(lab.tor_next_hops(DEMO_VIP))
        if not next_hop_gone and all(victim_ip not in h for h in samples[-1].values()):
            # Gone only once the other sessions withdrew it (the mesh) and the ToRs
            # dropped the dead node's own sessions, which carried it (BFD, else the
            # hold timer).
            next_hop_gone.append(time.time())
        mine = [
            s
            for s in lab.get("bgpsessions")["items"]
            if s["spec"].get("type") == "Service" and s["spec"].get("localIP") == floating_ip
        ]
        moved_to[:] = sorted(
            {s["metadata"]["labels"].get("networking.bgplb.io/node") for s in mine}
        )
        up = all(s.get("status", {}).get("state") == "Established" for s in mine)
        return bool(mine) and up and victim not in moved_to

    t0, established, endpoint_gone, result = _node_failure(
        lab,
        victim,
        "every session from the floating IP Established on another node",
        moved,
        timeout=60,
    )
    new_holder = moved_to[0]
    return Result(
        "floating-IP node failure",
        {
            "floating_ip": floating_ip,
            "from": victim,
            "to": new_holder,
            "established_elsewhere_s": round(established, 2),
            "next_hop_gone_s": round(next_hop_gone[0] - t0, 2) if next_hop_gone else None,
            "frr_sessions_dropped_by_bfd": lab.frr.bfd_drops() - bfd_drops,
            "endpoint_gone_s": round(endpoint_gone, 2) if endpoint_gone is not None else None,
            "route_samples": len(samples),
            "samples_without_route": sum(not all(s.values()) for s in samples),
            "traffic_restored_s": round(result.restored_after(t0), 2),
            "failed_requests": result.failed,
            **({"failures": result.failures(t0, limit=40)} if result.failed else {}),
        },
    )


def no_endpoints(lab: Lab) -> Result:
    """The demo Deployment scaled to 0: its VIP leaves both ToRs while the Service
    keeps it (issue 14 item 7); scaled back, the VIP returns. Nothing else moves."""
    before = settle(lab)
    t0 = time.time()
    lab.kubectl("scale", "deployment/demo", "-n", "default", "--replicas=0")
    try:
        wait_for(
            "the demo VIP gone from both ToRs",
            lambda: not any(lab.tor_next_hops(DEMO_VIP).values()),
            timeout=60,
            every=0.2,
        )
        withdrawn = time.time() - t0
        service = lab.get_json("service", "demo", "-n", "default")
        ingress = (service.get("status", {}).get("loadBalancer") or {}).get("ingress") or []
    finally:
        lab.kubectl("scale", "deployment/demo", "-n", "default", "--replicas=4")
    t1 = time.time()
    wait_for(
        "the demo VIP back on both ToRs",
        lambda: all(lab.tor_next_hops(DEMO_VIP).values()),
        timeout=120,
        every=0.2,
    )
    readvertised = time.time() - t1
    wait_stable(lab)
    after = session_marks(lab)
    return Result(
        "no endpoints",
        {
            "withdrawn_s": round(withdrawn, 2),
            "vip_kept": [i.get("ip") for i in ingress] == [DEMO_VIP],
            "readvertised_s": round(readvertised, 2),
            "flaps": flaps(before, after),
        },
    )


GRACEFUL_SHUTDOWN = "65535:0"


def _victim_paths(lab: Lab, ip: str) -> dict[str, list[tuple[str, ...]]]:
    """Per ToR: the communities of every path it holds for the demo VIP via `ip`."""
    return {
        name: [p.communities for p in tor.paths(DEMO_VIP) if p.next_hop == ip]
        for name, tor in (("frr", lab.frr), ("bird", lab.bird))
    }


def drain(lab: Lab, victim: str = "n3", seconds: int = 15) -> Result:
    """`kubectl drain` of a load-balancing node under client traffic (issue 14 item
    6): its path stays on both ToRs marked GRACEFUL_SHUTDOWN (worst MED), which takes
    it out of their ECMP groups at once; after `seconds` it is withdrawn. Its Pods are
    evicted meanwhile (the demo backend answers for a grace period after SIGTERM, as a
    well-behaved one does). Uncordoned, it comes back. Nothing flaps, the client's ToR
    changes its ECMP group once, and no request fails but one in flight at that change
    (stamped by the ToR's kernel: `watch_routes`), which stateless ECMP moves to a node
    that does not know its connection."""
    ip = str(lab.node(victim).ip)
    lb = lab.get_json("bgploadbalancer", "default", "-n", NAMESPACE)
    was = lb["spec"].get("drainSeconds")
    before = settle(lab)

    def set_drain(value: int | None) -> None:
        lab.kubectl("patch", "bgploadbalancer", "default", "-n", NAMESPACE, "--type=merge",
                    "-p", json.dumps({"spec": {"drainSeconds": value}}))  # fmt: skip

    def marked() -> bool:
        seen = _victim_paths(lab, ip)
        return all(seen.values()) and all(
            GRACEFUL_SHUTDOWN in c for paths in seen.values() for c in paths
        )

    set_drain(seconds)
    # The client routes through the FRR ToR: its kernel's ECMP group is what moves flows.
    route_log = lab.workdir / f"routes-{time.monotonic_ns()}.log"
    try:
        with (
            watch_routes(lab.frr.host, route_log) as frr_routes,
            traffic(lab) as log,
            ThreadPoolExecutor(1) as pool,
        ):
            hops_before = lab.frr.kernel_next_hops(DEMO_VIP)
            time.sleep(2)
            t0 = time.time()
            # kubectl drain cordons, then evicts at once: bgplb marks the path while
            # the Pods go.
            drained = pool.submit(
                lab.kubectl, "drain", victim, "--ignore-daemonsets", "--delete-emptydir-data",
                "--timeout=120s",
            )  # fmt: skip
            wait_for(f"{victim}'s path marked on both ToRs", marked, timeout=30, every=0.1)
            marked_s = time.time() - t0
            wait_for(
                f"{victim} out of both ToRs' ECMP groups (its path still held)",
                lambda: not any(ip in hops for hops in lab.tor_next_hops(DEMO_VIP).values()),
                timeout=10,
                every=0.1,
            )
            out_of_ecmp_s = time.time() - t0
            still_held = all(_victim_paths(lab, ip).values())
            drained.result()
            evicted_s = time.time() - t0
            wait_for(
                f"{victim}'s path withdrawn from both ToRs",
                lambda: not any(_victim_paths(lab, ip).values()),
                timeout=seconds + 30,
                every=0.2,
            )
            withdrawn_s = time.time() - t0
            time.sleep(2)
            result = log()
            changes = route_changes(frr_routes(), DEMO_VIP, hops_before)
    finally:
        lab.kubectl("uncordon", victim)
        set_drain(was)
    wait_for(
        f"{victim} back in both ToRs' ECMP groups",
        lambda: all(ip in hops for hops in lab.tor_next_hops(DEMO_VIP).values()),
        timeout=60,
        every=0.2,
    )
    back = lab.get_json("bgpadvertisedroute", "default-default-demo", "-n", NAMESPACE)
    wait_stable(lab)
    after = session_marks(lab)
    return Result(
        "drain",
        {
            "drain_seconds": seconds,
            "marked_s": round(marked_s, 2),
            "out_of_ecmp_s": round(out_of_ecmp_s, 2),
            "pods_evicted_s": round(evicted_s, 2),
            "path_held_while_out_of_ecmp": still_held,
            "withdrawn_s": round(withdrawn_s, 2),
            "ecmp_changes": [f"{c.at - t0:+.3f}s {','.join(sorted(c.next_hops))}" for c in changes],
            "requests": len(result.requests),
            "failed_requests": result.failed,
            # A stateless ECMP change moves a connection open through n3 to another
            # node, whose kube-proxy does not know it: such a request can fail, with
            # any load balancer. Every other request must be answered.
            "failed_in_flight_at_ecmp_change": len(
                {id(r) for c in changes for r in result.in_flight(c.at) if not r["ok"]}
            ),
            **({"failures": result.failures(t0)} if result.failed else {}),
            "draining_after_uncordon": back["spec"].get("drainingNextHops", []),
            "flaps": flaps(before, after),
        },
    )


def _restart_under_traffic(lab: Lab, name: str, restart: Callable[[], None]) -> Result:
    before = settle(lab)
    holders = lab.holders()
    with traffic(lab) as log:
        time.sleep(1)
        t0 = time.time()
        restart()
        result = log()
    after = session_marks(lab)
    return Result(
        name,
        {
            "seconds": round(time.time() - t0, 1),
            "failed_requests": result.failed,
            "requests": len(result.requests),
            "flaps": flaps(before, after),
            "floating_ips_moved": lab.holders() != holders,
            **({"flap_details": flap_details(before, after)} if flaps(before, after) else {}),
            **({"failures": result.failures(t0)} if result.failed else {}),
        },
    )


def agent_restart(lab: Lab) -> Result:
    """Restart the agent of a floating-IP holder (a rollout): nothing may notice."""
    node = sorted(lab.holders().values())[0]

    def restart() -> None:
        lab.restart_agent(node)
        time.sleep(lab.lease_expiry + 3)  # past any fence or handover it could cause

    return _restart_under_traffic(lab, "agent restart", restart)


def controller_restart(lab: Lab) -> Result:
    """Restart the leading controller: nothing may notice."""

    def restart() -> None:
        lab.restart_controller()
        time.sleep(lab.lease_expiry + 3)  # its hold-off, then a full reconcile

    return _restart_under_traffic(lab, "controller restart", restart)


def apiserver_outage(lab: Lab, seconds: float = 60) -> Result:
    """The API server is down: BGP, floating IPs and traffic must not notice."""

    hops = lab.tor_next_hops(DEMO_VIP)
    changed: list[tuple[float, dict[str, list[str]]]] = []

    def outage() -> None:
        t0 = time.time()

        def sample(until: float) -> None:
            # The ToRs' next hops every 0.2 s: a request failing at the API server's
            # return (CI saw one, +61.3 s) is then either a next hop that moved or not.
            while time.time() < until:
                now = lab.tor_next_hops(DEMO_VIP)
                if now != hops:
                    seen = {k: sorted(v) for k, v in now.items()}
                    changed.append((round(time.time() - t0, 2), seen))
                time.sleep(0.2)

        lab.api.stop_apiserver(crash=True)
        sample(t0 + seconds)
        lab.api.start_apiserver()
        sample(time.time() + lab.lease_expiry + 5)  # agents renew, the controller is back

    plumbed = lab.plumbed()
    result = _restart_under_traffic(lab, f"API server down {seconds:.0f}s", outage)
    result.figures["floating_ips_unplumbed"] = plumbed != lab.plumbed()
    result.figures["next_hop_changes"] = changed[:5]
    wait_stable(lab)
    return result


def webhook_outage(lab: Lab) -> Result:
    """The admission webhook down (its Deployment scaled to 0): the data plane must not
    notice; edits of bgplb objects wait, refused with the webhook named (failure
    policy Fail); Services are still admitted (Ignore) and still get their VIP."""
    seen: dict[str, Any] = {}
    probe = service("webhook-down-probe")

    def outage() -> None:
        lab.kubectl("scale", "deployment", "bgplb-webhook", "-n", NAMESPACE, "--replicas=0")
        try:
            refused_while_down()
        finally:  # the lab as it was, whatever happened
            lab.kubectl("scale", "deployment", "bgplb-webhook", "-n", NAMESPACE, "--replicas=2")
            lab.kubectl(
                "rollout", "status", "deployment", "bgplb-webhook", "-n", NAMESPACE,
                "--timeout=120s",
            )  # fmt: skip

    def refused_while_down() -> None:
        def gone() -> bool:
            pods = lab.get_json("pods", "-n", NAMESPACE, "-l", WEBHOOK)["items"]
            endpoints = lab.get_json("endpoints", "bgplb-webhook", "-n", NAMESPACE)
            addresses = [a for s in endpoints.get("subsets") or [] for a in s.get("addresses", [])]
            return not pods and not addresses

        # kube-controller-manager may still be re-listing after an earlier outage.
        wait_for("no webhook Pod and no endpoint", gone, timeout=120, every=0.5)
        edit = lab.api.kubectl(
            "annotate", "bgppeer", "tor-frr", "-n", NAMESPACE, "drill=webhook-down", check=False
        )
        seen["edit_refused"] = "failed calling webhook" in edit
        seen["edit_answer"] = edit.strip().splitlines()[-1][:160] if edit.strip() else ""
        # The Services webhook (policy Ignore) is skipped once it cannot be reached.
        lab.api.kubectl("apply", "--request-timeout=30s", "-f", "-", stdin=json.dumps(probe))

        def vip() -> str:
            status = lab.get_json("service", "webhook-down-probe", "-n", "default")["status"]
            ingress = status.get("loadBalancer", {}).get("ingress") or [{}]
            return str(ingress[0].get("ip", ""))

        seen["service_vip"] = wait_for("the probe Service's VIP", vip, timeout=30)

    try:
        result = _restart_under_traffic(lab, "webhook down", outage)
    finally:
        lab.kubectl(
            "delete", "service", "webhook-down-probe", "-n", "default", "--ignore-not-found"
        )
    result.figures |= seen
    return result


def tor_restart(lab: Lab, which: str) -> Result:
    """Restart one ToR: its sessions come back, the other ToR's never drop."""
    tor: Any = lab.bird if which == "bird" else lab.frr
    other = "frr/" if which == "bird" else "bird/"
    before = {k: v for k, v in settle(lab).items() if k.startswith(other)}
    with traffic(lab) as log:
        time.sleep(1)
        t0 = time.time()
        # Every daemon of the ToR: a bfdd left running kept answering for the old
        # sessions beside the new bfdd, and the two made every BFD session flap.
        host, needles = (
            ("tor-bird", ["bird -f"])
            if which == "bird"
            else ("tor-frr", [f"/usr/lib/frr/{d}" for d in ("bgpd", "bfdd", "zebra")])
        )
        for needle in needles:
            lab.signal(host, needle, signal.SIGTERM)
        wait_for(
            f"{which}'s daemons gone",
            lambda: not any(lab.pids(host, needle) for needle in needles),
            timeout=20,
        )
        tor.start()
        lab.wait_ready(timeout=120)
        back = time.time() - t0
        result = log()
    after = {k: v for k, v in session_marks(lab).items() if k.startswith(other)}
    return Result(
        f"ToR restart ({which})",
        {
            "sessions_and_routes_back_s": round(back, 2),
            "other_tor_flaps": flaps(before, after),
            "failed_requests": result.failed,
        },
    )


def peers_added_and_removed(lab: Lab) -> Result:
    """The seed's controlled update: add a peer, then remove it, one at a time; the
    sessions to the other peers never drop."""
    router = lab.add_host("tor3", "192.0.2.3")
    frr = FRR(router, lab.workdir, TOR_ASN, FABRIC, LOCAL_ASN).start()
    label = {"cluster.baremetal.gke.io/default-peer": "true"}
    new_peer = peer("tor3", label, localASN=LOCAL_ASN, peerASN=TOR_ASN, peerIP="192.0.2.3")
    new_peer["spec"]["sessions"] = 2
    before = settle(lab)
    try:
        with traffic(lab) as log:
            t0 = time.time()
            lab.apply([new_peer])
            wait_for(
                "two sessions to the new peer",
                lambda: (
                    len(frr.established()) == 2
                    and sum(s == "Established" for n, s in lab.sessions().items() if "tor3" in n)
                    == 2
                ),
                timeout=60,
            )
            added = time.time() - t0
            hops_on_new = frr.kernel_next_hops(DEMO_VIP)
            middle = session_marks(lab)
            t1 = time.time()
            lab.kubectl("delete", "bgppeer", "tor3", "-n", NAMESPACE)
            wait_for("the new peer's sessions gone", lambda: not frr.established(), timeout=60)
            removed = time.time() - t1
            result = log()
        after = session_marks(lab)
    finally:
        frr.stop()
        lab.remove_host("tor3")
    return Result(
        "peer added then removed",
        {
            "added_established_s": round(added, 2),
            "removed_s": round(removed, 2),
            "vip_next_hops_on_new_peer": sorted(hops_on_new),
            "flaps_while_adding": flaps(before, {k: middle[k] for k in before if k in middle}),
            "flaps_overall": flaps(before, after),
            "failed_requests": result.failed,
        },
    )


def singleton_deletion(lab: Lab) -> Result:
    """`kubectl delete` the default BGPLoadBalancer, then the default
    NetworkGatewayGroup, while the demo Service has its VIP. The garbage collector
    (kube-controller-manager) would delete every BGPSession and route they own; the
    webhook refuses instead, and nothing on the wire changes."""
    answers: dict[str, str] = {}

    def delete_both() -> None:
        for kind in ("bgploadbalancer", "networkgatewaygroup"):
            out = lab.api.kubectl("delete", kind, "default", "-n", NAMESPACE, check=False)
            answers[kind] = out.strip().splitlines()[-1] if out.strip() else ""
        time.sleep(lab.lease_expiry + 5)  # time for a cascade, had there been one

    result = _restart_under_traffic(lab, "singleton deletion", delete_both)
    owners = {
        ref["kind"]
        for s in lab.get("bgpsessions")["items"]
        for ref in s["metadata"].get("ownerReferences", [])
    }
    result.figures |= {
        "answers": answers,
        "still_there": [
            kind
            for kind in ("bgploadbalancer", "networkgatewaygroup")
            if lab.api.kubectl("get", kind, "default", "-n", NAMESPACE, check=False).strip()
        ],
        "sessions_owned_by": sorted(owners),
        "vip_next_hops": {k: sorted(v) for k, v in lab.tor_next_hops(DEMO_VIP).items()},
    }
    return result


def _sample_doubles(
    lab: Lab, seconds: float, moved: Callable[[dict[str, list[str]]], bool]
) -> tuple[int, list[dict[str, list[str]]], float | None]:
    """Where every floating IP is plumbed, as often as it can be read for `seconds`:
    the samples taken, those with an IP on two nodes, and when `moved` first held."""
    doubles: list[dict[str, list[str]]] = []
    samples, moved_at, t0 = 0, None, time.time()
    while time.time() - t0 < seconds:
        where = lab.plumbed()
        samples += 1
        if any(len(nodes) > 1 for nodes in where.values()):
            doubles.append(where)
        if moved_at is None and moved(where):
            moved_at = time.time() - t0
    return samples, doubles, moved_at


def partition(lab: Lab, seconds: float = 15) -> Result:
    """Cut one floating-IP holder off from the API server (not from the fabric): it
    must drop its IPs before another node takes them — never live on two nodes."""
    holders = lab.holders()
    floating_ip, victim = sorted(holders.items())[0]
    host = lab.host(victim, lab.node(victim).ip)
    fences_before = lab.agent_log(victim).count("self-fencing")
    host.exec("ip", "route", "add", "blackhole", f"{APISERVER_IP}/32")
    try:
        samples, doubles, moved_at = _sample_doubles(
            lab, seconds, lambda where: where.get(floating_ip, [victim]) != [victim]
        )
    finally:
        host.exec("ip", "route", "del", "blackhole", f"{APISERVER_IP}/32")
    more, more_doubles, _ = _sample_doubles(lab, 8, lambda _: False)  # healed: still never twice
    wait_stable(lab)
    return Result(
        "partition node↔API server",
        {
            "node": victim,
            "floating_ip": floating_ip,
            "moved_after_s": None if moved_at is None else round(moved_at, 2),
            "samples": samples + more,
            "samples_live_on_two_nodes": len(doubles) + len(more_doubles),
            "fenced": lab.agent_log(victim).count("self-fencing") > fences_before,
        },
    )


WITNESS_PORT = 9094
"""The chart's agent.witnessPort."""
API_PORT_THROUGH_VIP = 443


def partition_pair(lab: Lab, seconds: float = 25) -> Result:
    """Cut two nodes, together, off from the API server and from the other agents (not
    from each other, not from the ToRs). Each hears one witness of the three others:
    no quorum, so both fence; the controller, seeing two Leases of four stale (not
    more than half), moves their IPs. Never live on two nodes.

    The cut is by firewall, not by route: the victims (control-plane nodes, as every
    floating-IP holder here) front the API server for everyone on the control-plane
    VIP, and a blackhole would cut the controller off too. Their own processes lose
    the VIP (where the `kubernetes` Service leads); agents lose each other's witness
    port.

    The controllers (on the worker, n4) reach the API server through the
    control-plane VIP, which reaches n4 only through the FRR ToR (its default route;
    the ToRs are not joined by a spine), where n1 and n2 advertise it. Cut both and
    the controllers are cut off too: they freeze node liveness, rightly, and nothing
    moves (found in CI). So one victim holds a floating IP and the other is chosen to
    leave one of n1, n2 up."""
    holders = lab.holders()
    first = holders[sorted(holders)[0]]
    frr_side = {n.name for n in NODES[:2]}  # topology: FRR's controlPlaneNodes
    second = next(n for n in sorted(LB_NODES - {first}) if frr_side - {first, n})
    victims = sorted({first, second})
    others = [n.ip for n in NODES if n.name not in victims]
    rules = [
        ["OUTPUT", "-d", CONTROL_PLANE_VIP, "-p", "tcp", "--dport", str(API_PORT_THROUGH_VIP)],
        ["OUTPUT", "-d", APISERVER_IP, "-p", "tcp"],
        *(["OUTPUT", "-d", ip, "-p", "tcp", "--dport", str(WITNESS_PORT)] for ip in others),
        *(["INPUT", "-s", ip, "-p", "tcp", "--dport", str(WITNESS_PORT)] for ip in others),
    ]
    hosts = [lab.host(v, lab.node(v).ip) for v in victims]
    theirs = {ip for ip, node in holders.items() if node in victims}
    fences_before = {v: lab.agent_log(v).count("self-fencing") for v in victims}

    def moved(where: dict[str, list[str]]) -> bool:
        return all(where.get(ip) and not set(where[ip]) & set(victims) for ip in theirs)

    try:
        for host in hosts:
            for rule in rules:
                host.exec("iptables", "-w", "-I", *rule, "-j", "DROP")
        samples, doubles, moved_at = _sample_doubles(lab, seconds, moved)
    finally:
        for host in hosts:
            for rule in rules:
                host.exec("iptables", "-w", "-D", *rule, "-j", "DROP", check=False)
    more, more_doubles, _ = _sample_doubles(lab, 8, lambda _: False)
    wait_stable(lab)
    return Result(
        "partition two nodes ↔ API server and the other agents",
        {
            "nodes": victims,
            "floating_ips": sorted(theirs),
            "moved_after_s": None if moved_at is None else round(moved_at, 2),
            "now_on": {ip: lab.holders().get(ip) for ip in sorted(theirs)},
            "samples": samples + more,
            "samples_live_on_two_nodes": len(doubles) + len(more_doubles),
            "fenced": {
                v: lab.agent_log(v).count("self-fencing") > fences_before[v] for v in victims
            },
        },
    )


SOAK_CLIENT_TIMEOUT = 3.0
"""A request through the lossy link may lose its SYN: the kernel resends it after 1 s
(then 3 s). A soak request fails only if nothing answers within 3 s: a blackhole, not
a retransmission."""


BUSY_LOOP = ("sh", "-c", "while :; do :; done")


@contextlib.contextmanager
def busy_loops(lab: Lab, seconds: float, per_node: int) -> Iterator[None]:
    """`per_node` shell busy loops in each node's namespaces, ended by their own PIDs
    when the block ends, and by `timeout` in any case."""
    procs = [
        lab.host(n.name, n.ip).popen(
            ["timeout", str(int(seconds) + 30), *BUSY_LOOP], lab.workdir / "busy-loops.log"
        )
        for n in NODES
        for _ in range(per_node)
    ]
    try:
        yield
    finally:
        stop_processes(*procs)


SPARED_PORTS = f"80,{BACKEND_PORT}"
"""The client's requests (the VIP's port, the backend Pods' port): spared the loss."""


@contextlib.contextmanager
def lossy_link(lab: Lab, node: str, probability: float) -> Iterator[None]:
    """Drop `probability` of the packets in each direction of `node`'s fabric link
    (eth0), received, sent and forwarded — except the client's requests. By
    iptables' statistic match: this kernel has no netem.

    What the loss is for: whatever bgplb itself sends over the link (BGP, Lease
    renewals, watches, witness questions, mesh probes) must ride it out. The client's
    own TCP over a 5 % lossy link times out now and then whatever the load balancer
    does (measured: 64 of 2,959 requests in 10 minutes with a 3 s timeout, spread
    evenly, resets and lost SYNs): that measures the link, not bgplb, so its
    requests are spared."""
    host = lab.host(node, lab.node(node).ip)
    odds = ["-m", "statistic", "--mode", "random", "--probability", str(probability)]
    spare = ["-p", "tcp", "-m", "multiport", "--ports", SPARED_PORTS]
    rules = [  # inserted in this order, each at the top: sparing comes first
        ["raw", "PREROUTING", "-i", "eth0", *odds, "-j", "DROP"],
        ["mangle", "POSTROUTING", "-o", "eth0", *odds, "-j", "DROP"],
        ["raw", "PREROUTING", "-i", "eth0", *spare, "-j", "RETURN"],
        ["mangle", "POSTROUTING", "-o", "eth0", *spare, "-j", "RETURN"],
    ]
    try:
        for table, chain, *rule in rules:
            host.exec("iptables", "-w", "-t", table, "-I", chain, *rule)
        yield
    finally:
        for table, chain, *rule in rules:
            host.exec("iptables", "-w", "-t", table, "-D", chain, *rule, check=False)


def agent_cpu_seconds() -> dict[int, float]:
    """CPU seconds (user + system) of every running `bgplb-agent` process, by PID."""
    out = {}
    for pid, (_, seconds) in cpu.processes().items():
        with contextlib.suppress(OSError):  # gone meanwhile
            if b"bgplb-agent" in Path(f"/proc/{pid}/cmdline").read_bytes():
                out[pid] = seconds
    return out


def soak(lab: Lab, seconds: float = 600, loss: float = 0.05, busy_per_node: int = 1) -> Result:
    """Nothing fails while nothing is wrong: `seconds` of client traffic with busy
    loops on every node and `loss` on the link of a floating-IP holder (its Lease
    renewals, BGP sessions and mesh probes all cross it). Counts what would be false
    alarms: next hops missing from a ToR, mesh verdicts (by the node held for dead,
    summed over the agents that held it; and those that withdraw a next hop: a
    load-balancing node held for dead by a floating-IP holder, whose speaker
    advertises), self-fencing, floating IPs moved, session flaps, failed requests."""
    holders = lab.holders()
    lossy = holders[sorted(holders)[0]]
    before = settle(lab)
    hops = lab.tor_next_hops(DEMO_VIP)
    nodes = [n.name for n in NODES]
    advertisers = sorted(set(holders.values()))  # their speakers carry the next hops
    logs_before = {n: lab.agent_log(n) for n in nodes}
    samples, short = 0, []
    cpu_before = agent_cpu_seconds()
    with (
        busy_loops(lab, seconds, busy_per_node),
        lossy_link(lab, lossy, loss),
        traffic(lab, SOAK_CLIENT_TIMEOUT) as log,
    ):
        t0 = time.time()
        while time.time() - t0 < seconds:
            now = lab.tor_next_hops(DEMO_VIP)
            samples += 1
            if now != hops:
                short.append({tor: sorted(h) for tor, h in now.items()})
            time.sleep(1.0)
        result = log()
        cpu = agent_cpu_seconds()
        elapsed = time.time() - t0
    after = session_marks(lab)
    flapped = flaps(before, after)
    used = sorted(cpu[p] - cpu_before[p] for p in cpu if p in cpu_before)
    logs = {n: lab.agent_log(n) for n in nodes}

    def verdicts(agent: str, target: str) -> int:
        return mesh_held_for_dead(logs[agent], target) - mesh_held_for_dead(
            logs_before[agent], target
        )

    def new(message: str) -> dict[str, int]:
        counts = {n: logs[n].count(message) - logs_before[n].count(message) for n in nodes}
        return {n: c for n, c in counts.items() if c}

    def fresh(n: str) -> str:
        """What node `n`'s agent logged during the soak (all of it, if it restarted)."""
        before = logs_before[n]
        return logs[n][len(before) :] if logs[n].startswith(before) else logs[n]

    def said(*messages: str) -> dict[str, list[str]]:
        """The agents' new log lines with any of `messages` (a few each): a fence
        in CI is otherwise gone with the lab, and with it why the renewal failed."""
        out = {}
        for n in nodes:
            lines = [
                line[:400] for line in fresh(n).splitlines() if any(m in line for m in messages)
            ]
            if lines:
                out[n] = lines[:6]
        return out

    fences, renewals_failed = new("self-fencing"), new("cannot renew lease")
    stalled = {n: summary for n in nodes if (summary := stall_summary(stalls_logged(fresh(n))))}
    return Result(
        "soak",
        {
            "seconds": seconds,
            "lossy_node": lossy,
            "loss": loss,
            "busy_loops": busy_per_node * len(nodes),
            "agent_cpu_millicores": [round(1000 * u / elapsed) for u in used],
            "requests": len(result.requests),
            "failed_requests": result.failed,
            **({"failures": result.failures(t0)} if result.failed else {}),
            "route_samples": samples,
            "samples_missing_a_next_hop": len(short),
            **({"next_hops_seen": short[:5]} if short else {}),
            "mesh_verdicts": {
                target: count
                for target in nodes
                if (count := sum(verdicts(n, target) for n in nodes))
            },
            # The verdicts that withdraw a next hop: a load-balancing node held for
            # dead by an agent whose speaker advertises the next hops. Another
            # agent's verdict changes nothing on the wire.
            "withdrawing_verdicts": {
                f"{agent}->{target}": count
                for agent in advertisers
                for target in sorted(LB_NODES - {agent})
                if (count := verdicts(agent, target))
            },
            "fences": fences,
            "renewals_failed": renewals_failed,
            # Not asserted: how late the agents woke (agent/stalls.py), which says
            # whether a verdict or a fence above came from an agent that did not run.
            "stalls": stalled,
            **(
                {"renewal_log": said("cannot renew lease", "self-fencing", "witnesses")}
                if fences or renewals_failed
                else {}
            ),
            "floating_ips_moved": lab.holders() != holders,
            "flaps": flapped,
            **({"flap_details": flap_details(before, after)} if flapped else {}),
        },
    )
