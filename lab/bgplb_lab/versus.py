"""bgplb and MetalLB through the same drills, in one lab, in one run.

Both serve the same demo Pods: bgplb the `demo` Service, MetalLB `demo-metallb` (its
loadBalancerClass; metallb.py installs it beside bgplb, peering with the same ToRs
from addresses of its own). A fault both share (a node dying) is measured for both
at once, with a client stream to each VIP; the others run one after the other.
Each drill returns the same figures for both, so a run gives their ratio.
"""

from __future__ import annotations

import contextlib
import json
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from typing import Any

from bgplb_lab import cpu, metallb
from bgplb_lab.daemons import routes_added, wait_for, watch_routes
from bgplb_lab.drills import (
    LB_NODES,
    QUIET,
    RESTORE_CAP,
    Result,
    TrafficLog,
    flap_details,
    flaps,
    no_backend_on,
    session_marks,
    settle,
    traffic,
    wait_stable,
)
from bgplb_lab.kubelets import BACKEND_PORT, KubeletLab
from bgplb_lab.topology import DEMO_VIP

DEMO = "demo-metallb"
BGPLB_POOL = "203.0.113.64-203.0.113.127"
"""Addresses bgplb's Services of the creation drill come from (the demo pool is 4)."""


def setup(lab: KubeletLab) -> str:
    """MetalLB installed and serving the demo Pods; returns its demo VIP."""
    metallb.install(lab)
    lab.apply([metallb.service(DEMO, {"app": "demo"}, 80, BACKEND_PORT)])
    wait_for("MetalLB's demo VIP", lambda: metallb.vip(lab, DEMO) is not None, timeout=60)
    vip = metallb.vip(lab, DEMO)
    assert vip is not None
    wait_metallb(lab, vip)
    # kube-proxy programs the VIP once it sees the Service's status: until then a
    # request routed to a node finds nothing there.
    wait_for(
        "the client answered through MetalLB's VIP",
        lambda: "FAILED" not in lab.client_requests(4, vip=vip),
        timeout=60,
    )
    return vip


def wait_metallb(lab: KubeletLab, vip: str, timeout: float = 120) -> None:
    """MetalLB's VIP on both ToRs through every load-balancer node's session."""
    wanted = set(metallb.SOURCES.values())
    wait_for(
        "MetalLB's VIP on both ToRs via n1-n3",
        lambda: all(hops == wanted for hops in lab.tor_next_hops(vip).values()),
        timeout=timeout,
    )


# --- Service create → VIP on both ToRs ------------------------------------------------

CREATOR = """
import json, sys
from kubernetes import client, config
config.load_kube_config(sys.argv[1])
core = client.CoreV1Api()
for line in sys.stdin:
    body = json.loads(line)
    core.create_namespaced_service("default", body)
    print(json.dumps({"t": __import__("time").time()}), flush=True)
"""


def service_create(lab: KubeletLab, count: int) -> dict[str, list[float]]:
    """`count` Services each, created one at a time, each timed from its create
    returning to its VIP in both ToRs' kernels (bgplb's, then MetalLB's)."""
    _bgplb_pool(lab)
    out: dict[str, list[float]] = {}
    for who, cls in (("bgplb", None), ("metallb", metallb.CLASS)):
        names = [f"vs-{who}-{i}" for i in range(count)]
        out[who] = _create_each(lab, names, cls)
        for name in names:
            lab.kubectl("delete", "service", name, "-n", "default", "--wait=false")
    return out


def _host_routes(lab: KubeletLab) -> dict[str, set[str]]:
    """ToR → the /32 routes in its kernel (a few ms: no API call in the timing)."""
    out = {}
    for name, tor in (("frr", lab.frr.host), ("bird", lab.bird.host)):
        routes = json.loads(tor.exec("ip", "-j", "route", "show") or "[]")
        out[name] = {r["dst"] for r in routes if "/" not in r["dst"] and r["dst"] != "default"}
    return out


ToREvents = dict[str, Callable[[], str]]
"""ToR ("frr", "bird") → its kernel's routing events so far (`watch_routes`)."""


@contextlib.contextmanager
def tor_events(lab: KubeletLab) -> Iterator[ToREvents]:
    """Both ToRs' kernel routing events while the block runs: when a route arrived,
    as each kernel stamped it."""
    with (
        watch_routes(lab.frr.host, lab.workdir / f"frr-routes-{time.monotonic_ns()}.log") as frr,
        watch_routes(lab.bird.host, lab.workdir / f"bird-routes-{time.monotonic_ns()}.log") as bird,
    ):
        yield {"frr": frr, "bird": bird}


def new_on_both(
    events: ToREvents, since: float, before: dict[str, set[str]]
) -> tuple[str, dict[str, float]] | None:
    """The first /32 added to both ToRs' kernels at or after `since` (not among
    `before`), and when each had it; None while there is none."""
    added = {tor: routes_added(read(), since, before[tor]) for tor, read in events.items()}
    both = set.intersection(*(set(a) for a in added.values()))
    if not both:
        return None
    vip = min(both, key=lambda v: max(a[v] for a in added.values()))
    return vip, {tor: a[vip] for tor, a in added.items()}


def _bgplb_pool(lab: KubeletLab) -> None:
    lb = lab.get("bgploadbalancer", "default")
    pools = lb["spec"]["addressPools"]
    if not any(p["name"] == "versus" for p in pools):
        pools = [*pools, {"name": "versus", "addresses": [BGPLB_POOL]}]
        lab.kubectl(
            "patch", "bgploadbalancer", "default", "--type=merge",
            "-p", json.dumps({"spec": {"addressPools": pools}}),
        )  # fmt: skip


@dataclass(frozen=True)
class Created:
    """One Service created and its VIP on both ToRs, on the machine's clock."""

    sent: float
    created: float
    """When the create call returned."""
    vip: str
    tors: dict[str, float]
    """ToR → when its kernel had the VIP."""


@contextlib.contextmanager
def creating(lab: KubeletLab) -> Iterator[Callable[[dict[str, Any]], Created]]:
    """A function that creates a Service (through one kept client, so no process
    start is timed) and waits for a /32 not there before in both ToRs' kernels."""
    creator = subprocess.Popen(
        lab.api_script(CREATOR), stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    assert creator.stdin is not None
    assert creator.stdout is not None
    stdin, stdout = creator.stdin, creator.stdout
    try:
        with tor_events(lab) as events:

            def create(svc: dict[str, Any]) -> Created:
                before = _host_routes(lab)
                sent = time.time()
                stdin.write(json.dumps(svc) + "\n")
                stdin.flush()
                created = json.loads(stdout.readline())["t"]
                vip, tors = wait_for(
                    f"{svc['metadata']['name']}: a new route on both ToRs",
                    partial(new_on_both, events, sent, before),
                    timeout=60,
                    every=0.01,
                )
                return Created(sent, created, vip, tors)

            yield create
    finally:
        stdin.close()
        creator.wait(10)


def _create_each(lab: KubeletLab, names: list[str], cls: str | None) -> list[float]:
    """Each Service timed from its create returning until a /32 that was not there
    before is in both ToRs' kernels (as they stamped it); afterwards, that it is the
    Service's VIP."""
    latencies = []
    with creating(lab) as create:
        for name in names:
            svc = metallb.service(name, {"app": "demo"}, 80, BACKEND_PORT)
            if cls is None:
                del svc["spec"]["loadBalancerClass"]
            done = create(svc)
            latencies.append(max(done.tors.values()) - done.created)
            wait_for(f"{name}'s status", partial(metallb.vip, lab, name), timeout=30)
            assert done.vip == metallb.vip(lab, name), (name, done.vip)
    return latencies


# --- 1,000 Services at once -----------------------------------------------------------

BULK_CREATOR = """
import json, sys, time
from kubernetes import client, config
config.load_kube_config(sys.argv[1])
core = client.CoreV1Api()
bodies = [json.loads(line) for line in sys.stdin]
started = time.time()
took = []
for i, body in enumerate(bodies):
    t = time.monotonic()
    core.create_namespaced_service("default", body)
    took.append(time.monotonic() - t)
    if i % 100 == 99:
        print(json.dumps({"created": i + 1, "s": round(time.time() - started, 1),
                          "slowest_s": round(max(took[-100:]), 3)}), file=sys.stderr, flush=True)
took.sort()
print(json.dumps({"started": started, "created": time.time(),
                  "p50": took[len(took) // 2], "max": took[-1],
                  "over_1s": sum(t > 1 for t in took)}), flush=True)
"""
"""Creates the bulk Services one after another, timing each: a create waits for
bgplb's Service webhook (CI run 21: 1,000 creates took over 600 s, ~10 a second
elsewhere; its progress on stderr says how far it got and how slow)."""

BULK_DELETER = """
import json, sys, time
from concurrent.futures import ThreadPoolExecutor
from kubernetes import client, config
config.load_kube_config(sys.argv[1])
core = client.CoreV1Api()
names = [line.strip() for line in sys.stdin if line.strip()]
started = time.time()
with ThreadPoolExecutor(4) as pool:
    list(pool.map(lambda name: core.delete_namespaced_service(name, "default"), names))
print(json.dumps({"started": started, "deleted": time.time()}), flush=True)
"""
"""Deletes the bulk Services four at a time: `kubectl delete -l` deletes them one by
one, and 1,000 of them once took longer than its 60 s timeout on a loaded CI machine."""

SHARING = {"bgplb": "networking.bgplb.io/sharing-key", "metallb": "metallb.io/allow-shared-ip"}
"""Each system's annotation for Services that may share a VIP: the lab's RFC 5737
ranges hold ~120 VIPs, so 1,000 Services share them, 25 to an address (the same
for both)."""


def bulk(lab: KubeletLab, count: int = 1000, per_address: int = 25) -> dict[str, dict[str, float]]:
    """`count` Services created back to back for each system (bgplb's, then
    MetalLB's), `per_address` of them per sharing key on distinct ports: seconds from
    the first create until every one has its VIP in its status and every VIP is in
    both ToRs' kernels; then all deleted and their routes gone."""
    _bgplb_pool(lab)
    figures = {
        who: _bulk_one(lab, who, cls, count, per_address)
        for who, cls in (("bgplb", None), ("metallb", metallb.CLASS))
    }
    wait_stable(lab)  # kube-proxy's churn over, every session back, for what runs next
    return figures


CPU_OF = {
    "bgplb agents": ("bgplb-agent",),
    "bgplb controllers": ("bgplb-controlle",),
    "MetalLB speakers": ("speaker",),
    "MetalLB controller": ("controller",),
    "kube-apiserver": ("kube-apiserver",),
}
"""Processes (by their kernel name, 15 characters at most) whose CPU a bulk drill
reports: what each system's components spent on the burst, and the API server."""


def cpu_seconds() -> dict[str, float]:
    """CPU seconds (user + system) so far of the processes in CPU_OF, by group."""
    out = dict.fromkeys(CPU_OF, 0.0)
    for name, seconds in cpu.processes().values():
        for group, names in CPU_OF.items():
            if name in names:
                out[group] += seconds
    return out


def _text(out: bytes | str | None) -> str:
    return out.decode(errors="replace") if isinstance(out, bytes) else out or ""


def _bulk_one(
    lab: KubeletLab, who: str, cls: str | None, count: int, per_address: int
) -> dict[str, float]:
    bodies = []
    for i in range(count):
        svc = metallb.service(f"bulk-{who}-{i}", {"app": "demo"}, 10000 + i % per_address,
                              BACKEND_PORT)  # fmt: skip
        svc["metadata"]["labels"] = {"bgplb-lab/bulk": who}
        svc["metadata"]["annotations"] = {SHARING[who]: f"bulk-{i // per_address}"}
        if cls is None:
            del svc["spec"]["loadBalancerClass"]
        bodies.append(json.dumps(svc))
    cpu_before = cpu_seconds()
    try:
        created = subprocess.run(
            lab.api_script(BULK_CREATOR),
            input="\n".join(bodies) + "\n", capture_output=True, text=True, check=True,
            timeout=CREATE_CAP,
        )  # fmt: skip
    except subprocess.TimeoutExpired as e:
        raise AssertionError(f"{who}: creating {count} Services: not within {CREATE_CAP:.0f} s; "
                             f"progress: {_text(e.stderr)[-1500:]}") from None  # fmt: skip
    times = json.loads(created.stdout)
    selector = f"bgplb-lab/bulk={who}"

    progress = {"with_vip": 0, "at": time.monotonic()}

    def vips() -> set[str] | None:
        items = lab.get_json("services", "-n", "default", "-l", selector)["items"]
        got = [vip_of(svc) for svc in items]
        with_vip = sum(v is not None for v in got)
        if with_vip > progress["with_vip"]:
            progress.update(with_vip=with_vip, at=time.monotonic())
        elif time.monotonic() - progress["at"] > STALLED:
            raise AssertionError(f"{who}: no new VIP for {STALLED:.0f} s, {with_vip} of {count}")
        if len(items) < count or None in got:
            return None
        return {str(v) for v in got}

    addresses = _poll(f"{count} {who} Services with a VIP", vips)
    wait_for(
        f"{who}'s {len(addresses)} VIPs on both ToRs",
        lambda: addresses <= (r := _host_routes(lab))["frr"] and addresses <= r["bird"],
        timeout=300,
        every=0.5,
    )
    done = time.time()
    cpu_after = cpu_seconds()
    figures: dict[str, float] = {
        "services": count,
        "vips": len(addresses),
        "created_s": round(times["created"] - times["started"], 2),
        "create_p50_s": round(times["p50"], 3),
        "create_max_s": round(times["max"], 3),
        "creates_over_1s": times["over_1s"],
        **{f"cpu_s {group}": round(cpu_after[group] - cpu_before[group], 1) for group in CPU_OF},
        "all_on_tors_s": round(done - times["started"], 2),
    }
    names = [f"bulk-{who}-{i}" for i in range(count)]
    subprocess.run(
        lab.api_script(BULK_DELETER),
        input="\n".join(names) + "\n", capture_output=True, text=True, check=True,
        timeout=600,
    )  # fmt: skip
    wait_for(
        f"{who}'s bulk VIPs withdrawn",
        lambda: not addresses & ((r := _host_routes(lab))["frr"] | r["bird"]),
        timeout=300,
        every=1,
    )
    return figures


STALLED = 120.0
"""The bulk drill fails when no Service got its VIP for this long: a correctness
bound, not a speed one. MetalLB's controller assigns a few a second, and on a loaded
CI machine its 1,000 took longer than the 600 s the drill once allowed in all."""
CREATE_CAP = 900.0
"""Creating the Services, one after another, gives up after this long: 277 s for
bgplb's on this machine (bench-versus, 2026-12-02), 171 s for MetalLB's."""
BULK_CAP = 1800.0
"""...and gives up after this long whatever the progress."""


def _poll(what: str, probe: Callable[[], set[str] | None]) -> set[str]:
    """`probe` until it returns addresses; its own AssertionError (a stall) ends it."""
    deadline = time.monotonic() + BULK_CAP
    while time.monotonic() < deadline:
        try:
            got = probe()
        except (RuntimeError, subprocess.TimeoutExpired):  # a kubectl that failed: again
            got = None
        if got:
            return got
        time.sleep(1)
    raise TimeoutError(f"{what}: not within {BULK_CAP:.0f} s")


def vip_of(svc: dict[str, Any]) -> str | None:
    ingress = (svc.get("status", {}).get("loadBalancer") or {}).get("ingress") or []
    return str(ingress[0]["ip"]) if ingress else None


# --- a load-balancer node dies --------------------------------------------------------


def _restored(log: TrafficLog, t0: float) -> dict[str, Any]:
    return {
        "traffic_restored_s": round(log.restored_after(t0), 2),
        "failed_requests": log.failed,
        "requests": len(log.requests),
        **({"failures": log.failures(t0, limit=20)} if log.failed else {}),
    }


def lb_node_failure(lab: KubeletLab, vip: str) -> dict[str, Result]:
    """A load-balancer node that holds no floating IP, and runs no demo Pod, dies
    under traffic to both VIPs: when each system's next hop through it leaves both
    ToRs, and when each VIP's traffic is clean again. (With a demo Pod on it, every
    node's kube-proxy keeps sending a share of new connections to that Pod until the
    node controller takes it out of the endpoints, ~20 s here, whatever the load
    balancer does: the same for both, and not what this compares.)"""
    holders = set(lab.holders().values())
    victim = sorted(LB_NODES - holders)[0]
    with no_backend_on(lab, victim):
        return _lb_node_failure(lab, vip, victim)


def _lb_node_failure(lab: KubeletLab, vip: str, victim: str) -> dict[str, Result]:
    gone = {
        "bgplb": (DEMO_VIP, lab.node(victim).ip),
        "metallb": (vip, metallb.SOURCES[victim]),
    }
    withdrawn: dict[str, float] = {}
    try:
        with traffic(lab, vip=DEMO_VIP) as ours, traffic(lab, vip=vip) as theirs:
            time.sleep(1)
            t0 = time.time()
            lab.fail_node(victim)
            while len(withdrawn) < len(gone) and time.time() - t0 < RESTORE_CAP:
                for who, (address, hop) in gone.items():
                    hops = lab.tor_next_hops(address).values()
                    if who not in withdrawn and all(hop not in h for h in hops):
                        withdrawn[who] = time.time() - t0
                time.sleep(0.05)
            _until_both_quiet((ours, theirs), t0)
            logs = {"bgplb": ours(), "metallb": theirs()}
    finally:
        lab.restore_node(victim)
        wait_stable(lab)
        wait_metallb(lab, vip)
    return {
        who: Result(
            f"lb-node failure ({who})",
            {
                "node": victim,
                "route_withdrawn_s": round(withdrawn[who], 2) if who in withdrawn else None,
                **_restored(logs[who], t0),
            },
        )
        for who in gone
    }


def _until_both_quiet(logs: tuple[Callable[[], TrafficLog], ...], t0: float) -> None:
    while (now := time.time()) - t0 < RESTORE_CAP:
        last = max((r["t"] for log in logs for r in log().requests if not r["ok"]), default=t0)
        if now - last >= QUIET:
            return
        time.sleep(0.5)


# --- a speaker restarts ---------------------------------------------------------------


def _metallb_flaps(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    sources = set(metallb.SOURCES.values())
    return [k for k in flaps(before, after) if k.split("/", 1)[1] in sources]


def speaker_restart(lab: KubeletLab, vip: str) -> dict[str, Result]:
    """Each system's per-node Pod on a load-balancer node replaced (a rollout), under
    traffic to its VIP: bgplb's agent on a floating-IP holder, MetalLB's speaker on
    the same node. Failed requests and the sessions that went down at either ToR."""
    node = sorted(set(lab.holders().values()))[0]
    out = {}
    for who, address in (("bgplb", DEMO_VIP), ("metallb", vip)):
        before = settle(lab)
        with traffic(lab, vip=address) as log:
            time.sleep(1)
            t0 = time.time()
            if who == "bgplb":
                lab.restart_agent(node)
            else:
                _replace_speaker(lab, node)
                wait_metallb(lab, vip)
            time.sleep(lab.lease_expiry + 3)
            result = log()
        after = session_marks(lab)
        went = _metallb_flaps(before, after)
        if who == "bgplb":
            went = [k for k in flaps(before, after) if k not in went]
        out[who] = Result(
            f"speaker restart ({who})",
            {
                "node": node,
                "flaps": went,
                **_restored(result, t0),
                **({"flap_details": flap_details(before, after)} if went else {}),
            },
        )
    return out


def _replace_speaker(lab: KubeletLab, node: str) -> None:
    def speaker() -> dict[str, Any] | None:
        pods = lab.get_json(
            "pods", "-n", metallb.NAMESPACE, "-l", "component=speaker",
            "--field-selector", f"spec.nodeName={node}",
        )["items"]  # fmt: skip
        return pods[0] if pods else None

    old = speaker()
    assert old is not None
    lab.kubectl("delete", "pod", "-n", metallb.NAMESPACE, old["metadata"]["name"])

    def replaced() -> bool:
        new = speaker()
        return bool(
            new
            and new["metadata"]["uid"] != old["metadata"]["uid"]
            and any(
                c["type"] == "Ready" and c["status"] == "True"
                for c in new["status"].get("conditions", [])
            )
        )

    wait_for("a new MetalLB speaker ready", replaced, timeout=120)
