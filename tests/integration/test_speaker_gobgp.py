"""The GoBGP driver against real gobgpd peered with real FRR and BIRD ToRs."""

from __future__ import annotations

import asyncio
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import replace
from ipaddress import IPv4Address, IPv4Network
from typing import Any, TypeVar

import grpc
import pytest

from bgplb.agent.floating import FloatingIPs
from bgplb.agent.speaker.gobgp import GoBGPSpeaker
from bgplb.agent.speaker.model import PathConfig, PeerConfig, SpeakerConfig, path_identifier
from bgplb.agent.speaker.stubs import gobgp_pb2 as api
from bgplb.agent.speaker.stubs import gobgp_pb2_grpc as api_grpc
from bgplb.core.attributes import Attributes
from bgplb_lab.daemons import PathSeen, stop_processes, wait_for
from tests.integration.conftest import CLUSTER_ASN, TOR_ASN, Fabric

T = TypeVar("T")
VIP = IPv4Network("203.0.113.10/32")
TORS = (IPv4Address("192.0.2.1"), IPv4Address("192.0.2.2"))
NODE_IPS = [IPv4Address(f"192.0.2.1{i}") for i in (1, 2, 3)]
READS = {"GetBgp", "ListPeer", "ListPath", "ListDefinedSet"}
"""What a new driver (a restarted agent) asks gobgpd before it changes anything."""


class _Count:
    def __init__(self, calls: Counter[str]) -> None:
        self.calls = calls

    def _count(self, details: Any) -> None:
        self.calls[details.method.decode().rsplit("/", 1)[-1]] += 1


class _UnaryUnary(_Count, grpc.aio.UnaryUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_unary(self, continuation: Any, details: Any, request: Any) -> Any:
        self._count(details)
        return await continuation(details, request)


class _UnaryStream(_Count, grpc.aio.UnaryStreamClientInterceptor):  # type: ignore[misc]
    async def intercept_unary_stream(self, continuation: Any, details: Any, request: Any) -> Any:
        self._count(details)
        return await continuation(details, request)


class _StreamUnary(_Count, grpc.aio.StreamUnaryClientInterceptor):  # type: ignore[misc]
    async def intercept_stream_unary(self, continuation: Any, details: Any, requests: Any) -> Any:
        self._count(details)
        return await continuation(details, requests)


class CountingInterceptor:
    """Counts every RPC the driver sends, by method (grpc.aio takes one interceptor
    object per kind of call)."""

    def __init__(self) -> None:
        self.calls: Counter[str] = Counter()

    @property
    def interceptors(self) -> list[Any]:
        return [_UnaryUnary(self.calls), _UnaryStream(self.calls), _StreamUnary(self.calls)]


def run(fn: Callable[[], Awaitable[T]]) -> T:
    return asyncio.run(fn())  # type: ignore[arg-type]


def config(
    source: str,
    hops: list[IPv4Address],
    *,
    add_path: bool = True,
    router_id: str = "192.0.2.11",
    **peer: Any,
) -> SpeakerConfig:
    peers = {
        tor: PeerConfig(
            tor,
            TOR_ASN,
            CLUSTER_ASN,
            IPv4Address(source),
            connect_retry=1,
            add_path_send_max=16 if add_path else 0,
            **peer,
        )
        for tor in TORS
    }
    paths = frozenset(PathConfig(VIP, hop, path_identifier(hop) if add_path else 0) for hop in hops)
    return SpeakerConfig(CLUSTER_ASN, IPv4Address(router_id), peers, paths)


async def apply(
    fabric: Fabric, node: str, desired: SpeakerConfig, listen_port: int = 0
) -> tuple[int, Counter[str]]:
    counter = CountingInterceptor()
    speaker = GoBGPSpeaker(
        fabric.gobgpd[node].target, listen_port=listen_port, interceptors=counter.interceptors
    )
    try:
        changes = await speaker.apply(desired)
        return changes, counter.calls
    finally:
        await speaker.close()


def _sync(fabric: Fabric, node: str, change: Callable[[set[IPv4Address]], None]) -> None:
    ips = FloatingIPs(fabric.nodes[node].netns)
    try:
        held = set(ips.ours())
        change(held)
        ips.sync(held)
    finally:
        ips.close()


def plumb(fabric: Fabric, node: str, ip: str) -> None:
    _sync(fabric, node, lambda held: held.add(IPv4Address(ip)))


def unplumb(fabric: Fabric, node: str, ip: str) -> None:
    _sync(fabric, node, lambda held: held.discard(IPv4Address(ip)))


def sessions_up(fabric: Fabric, source: str) -> bool:
    return source in fabric.frr.established() and bool(
        [line for line in fabric.bird.established().values() if source in line]
        or bird_has_neighbor(fabric, source)
    )


def bird_has_neighbor(fabric: Fabric, source: str) -> bool:
    out = fabric.bird.birdc("show protocols all")
    blocks = out.split("\n\n")
    return any("Established" in b and f"Neighbor address: {source}" in b for b in blocks)


@pytest.fixture
def clean(fabric: Fabric) -> Fabric:
    """Each test starts with every speaker empty and no floating IP plumbed."""
    for node in fabric.gobgpd:
        run(
            lambda n=node: apply(
                fabric, n, SpeakerConfig(CLUSTER_ASN, IPv4Address(f"192.0.2.1{n[1]}"))
            )
        )
        for ip in ("192.0.2.100", "192.0.2.101"):
            unplumb(fabric, node, ip)
    wait_for("ToRs to drop old routes", lambda: not fabric.frr.next_hops(str(VIP)), timeout=15)
    return fabric


def test_sessions_from_floating_ip_reach_established_on_both_tors(clean: Fabric) -> None:
    plumb(clean, "n1", "192.0.2.100")
    started = time.monotonic()
    run(lambda: apply(clean, "n1", config("192.0.2.100", NODE_IPS)))
    wait_for(
        "Established from 192.0.2.100 on FRR and BIRD", lambda: sessions_up(clean, "192.0.2.100")
    )
    print(f"established after {time.monotonic() - started:.1f}s")
    # Every next hop reaches both ToRs (ADD-PATH), and both kernels carry the ECMP route.
    expected = {str(h) for h in NODE_IPS}
    wait_for("FRR RIB", lambda: clean.frr.next_hops(str(VIP)) == expected)
    wait_for("BIRD RIB", lambda: clean.bird.next_hops(str(VIP)) == expected)
    wait_for("FRR kernel ECMP", lambda: clean.frr.kernel_next_hops(str(VIP)) == expected)
    wait_for("BIRD kernel ECMP", lambda: clean.bird.kernel_next_hops(str(VIP)) == expected)


def test_apply_is_idempotent_and_sends_only_the_diff(clean: Fabric) -> None:
    plumb(clean, "n1", "192.0.2.100")
    desired = config("192.0.2.100", NODE_IPS[:2])
    changes, _ = run(lambda: apply(clean, "n1", desired))
    assert changes == 2 + 2  # two peers, two paths (BGP itself was started by `clean`)

    async def twice() -> tuple[int, Counter[str]]:
        counter = CountingInterceptor()
        speaker = GoBGPSpeaker(clean.gobgpd["n1"].target, interceptors=counter.interceptors)
        try:
            await speaker.apply(desired)  # a new driver first reads what gobgpd holds
            counter.calls.clear()
            again = await speaker.apply(desired)
            assert (again, sum(counter.calls.values())) == (0, 0)
            more = await speaker.apply(config("192.0.2.100", NODE_IPS))
            return more, counter.calls
        finally:
            await speaker.close()

    changes, calls = run(twice)
    assert changes == 1
    assert calls == Counter({"AddPathStream": 1})


def test_withdraw_removes_the_route(clean: Fabric) -> None:
    plumb(clean, "n1", "192.0.2.100")
    run(lambda: apply(clean, "n1", config("192.0.2.100", NODE_IPS)))
    wait_for("route on FRR", lambda: clean.frr.next_hops(str(VIP)))
    wait_for("route on BIRD", lambda: clean.bird.next_hops(str(VIP)))
    run(lambda: apply(clean, "n1", config("192.0.2.100", NODE_IPS[:1])))
    wait_for("one next hop left", lambda: clean.frr.next_hops(str(VIP)) == {"192.0.2.11"})
    run(lambda: apply(clean, "n1", config("192.0.2.100", [])))
    wait_for("FRR withdraw", lambda: not clean.frr.next_hops(str(VIP)))
    wait_for("BIRD withdraw", lambda: not clean.bird.next_hops(str(VIP)))
    assert clean.frr.kernel_next_hops(str(VIP)) == set()


def test_without_add_path_one_path_per_vip(clean: Fabric) -> None:
    plumb(clean, "n1", "192.0.2.100")
    run(lambda: apply(clean, "n1", config("192.0.2.100", NODE_IPS[1:2], add_path=False)))
    wait_for("FRR single path", lambda: clean.frr.next_hops(str(VIP)) == {"192.0.2.12"})
    wait_for("BIRD single path", lambda: clean.bird.next_hops(str(VIP)) == {"192.0.2.12"})


def _frr_peer(fabric: Fabric, source: str) -> dict[str, Any]:
    peer: dict[str, Any] = fabric.frr.json(f"show bgp neighbors {source}")[source]
    return peer


def test_agent_restart_causes_no_flap_and_no_withdrawal(clean: Fabric) -> None:
    plumb(clean, "n1", "192.0.2.100")
    desired = config("192.0.2.100", NODE_IPS)
    run(lambda: apply(clean, "n1", desired))
    wait_for("sessions", lambda: sessions_up(clean, "192.0.2.100"))
    wait_for("routes", lambda: len(clean.frr.next_hops(str(VIP))) == 3)
    before = _frr_peer(clean, "192.0.2.100")
    # Only the Established ones: BIRD's static neighbours for floating IPs nobody holds
    # retry every second, so their state and 'since' change on their own.
    bird_before = {k: v for k, v in bird_sessions(clean).items() if v[0] == "Established"}
    assert bird_before, "no Established BIRD session to compare"
    # A new driver (a restarted agent) applies the same desired state: it must read
    # what gobgpd holds and send nothing at all.
    changes, calls = run(lambda: apply(clean, "n1", desired))
    assert changes == 0
    assert set(calls) <= READS
    time.sleep(2)
    after = _frr_peer(clean, "192.0.2.100")
    assert after["connectionsDropped"] == before["connectionsDropped"]
    assert after["connectionsEstablished"] == before["connectionsEstablished"]
    assert clean.frr.next_hops(str(VIP)) == {str(h) for h in NODE_IPS}
    # BIRD: the same sessions, established since the same moment.
    bird_after = bird_sessions(clean)
    for name, (state, since) in bird_before.items():
        assert bird_after[name][0] == state
        # BIRD shows its monotonic 'since' on the wall clock: it drifts by a few ms
        # (CI saw 14:17:18.384 become .385 with nothing restarted).
        assert abs(bird_after[name][1] - since) < 1.0, (name, bird_after[name], since)


def bird_sessions(fabric: Fabric) -> dict[str, tuple[str, float]]:
    """BIRD's BGP sessions: name → (state, since as seconds of the day)."""
    out = {}
    for line in fabric.bird.birdc("show protocols").splitlines():
        words = line.split()
        if len(words) >= 6 and words[1] == "BGP":
            h, m, sec = words[4].split(":")
            out[words[0]] = (" ".join(words[5:]), int(h) * 3600 + int(m) * 60 + float(sec))
    return out


def test_moving_a_floating_ip_reestablishes_from_the_new_node(clean: Fabric) -> None:
    plumb(clean, "n1", "192.0.2.100")
    run(lambda: apply(clean, "n1", config("192.0.2.100", NODE_IPS)))
    wait_for("sessions from n1", lambda: sessions_up(clean, "192.0.2.100"))
    # n1 fails: its speaker goes away and the address leaves it; n2 takes both over.
    started = time.monotonic()
    clean.gobgpd["n1"].kill()
    unplumb(clean, "n1", "192.0.2.100")
    plumb(clean, "n2", "192.0.2.100")
    run(lambda: apply(clean, "n2", config("192.0.2.100", NODE_IPS, router_id="192.0.2.12")))
    wait_for("FRR session from n2", lambda: clean.frr.established().get("192.0.2.100"))
    took = time.monotonic() - started
    print(f"floating IP moved: Established again after {took:.1f}s")
    wait_for("route back", lambda: len(clean.frr.next_hops(str(VIP))) == 3)
    clean.gobgpd["n1"].start()


def test_gobgpd_restart_is_replayed(clean: Fabric) -> None:
    plumb(clean, "n3", "192.0.2.101")
    desired = config("192.0.2.101", NODE_IPS, router_id="192.0.2.13")

    async def scenario() -> int:
        speaker = GoBGPSpeaker(clean.gobgpd["n3"].target)
        try:
            await speaker.apply(desired)
            clean.gobgpd["n3"].kill()
            clean.gobgpd["n3"].start()
            # The same desired state again: the driver must notice the daemon is new
            # (its connection dropped) and replay everything, not trust its memory.
            return await speaker.apply(desired)
        finally:
            await speaker.close()

    replayed = run(scenario)
    assert replayed == 1 + 2 + 3  # StartBgp, two peers, three paths
    wait_for("routes replayed", lambda: len(clean.frr.next_hops(str(VIP))) == 3)


def test_md5_password_and_update_peer_keep_the_whole_config(clean: Fabric) -> None:
    frr = clean.frr

    def frr_password(set_it: bool) -> None:
        line = "neighbor NODES password s3cret"
        frr.vtysh_config("router bgp 65000", line if set_it else f"no {line}")

    frr_password(True)
    try:
        plumb(clean, "n1", "192.0.2.100")
        tor = TORS[0]
        peer = PeerConfig(
            tor,
            TOR_ASN,
            CLUSTER_ASN,
            IPv4Address("192.0.2.100"),
            connect_retry=1,
            password="s3cret",
            add_path_send_max=16,
        )
        paths = frozenset({PathConfig(VIP, NODE_IPS[0], path_identifier(NODE_IPS[0]))})
        desired = SpeakerConfig(CLUSTER_ASN, IPv4Address("192.0.2.11"), {tor: peer}, paths)
        run(lambda: apply(clean, "n1", desired))
        # FRR now demands TCP-MD5: only a session carrying the password comes up.
        wait_for("Established with MD5", lambda: "192.0.2.100" in frr.established())

        # A timer change goes out as UpdatePeer with the complete peer: the password
        # (and everything else) must survive it.
        changed = SpeakerConfig(
            desired.asn, desired.router_id, {tor: replace(peer, hold_time=30, keepalive=10)}, paths
        )
        _, calls = run(lambda: apply(clean, "n1", changed))
        assert calls["UpdatePeer"] == 1
        assert "DeletePeer" not in calls

        async def read_back() -> PeerConfig:
            speaker = GoBGPSpeaker(clean.gobgpd["n1"].target)
            try:
                return (await speaker.adopt()).peers[tor]
            finally:
                await speaker.close()

        assert run(read_back) == changed.peers[tor]
        wait_for("Established after the update", lambda: "192.0.2.100" in frr.established())
    finally:
        frr_password(False)


def _flaps(fabric: Fabric, source: str) -> tuple[int, int]:
    peer = _frr_peer(fabric, source)
    return peer["connectionsDropped"], peer["connectionsEstablished"]


def test_attributes_reach_both_tors_and_change_in_place(clean: Fabric) -> None:
    """Communities (a well-known one among them), large communities, AS-path prepend
    and MED, exactly as both ToRs' RIBs hold them; a change is an implicit replace:
    no withdrawal, no session reset, and an agent restart re-sends nothing."""
    plumb(clean, "n1", "192.0.2.100")
    wanted = Attributes.parse(["65000:100", "no-export"], ["65001:7:9"], 2, 50)
    base = config("192.0.2.100", NODE_IPS[:2])
    desired = replace(base, paths=frozenset(replace(p, attributes=wanted) for p in base.paths))
    run(lambda: apply(clean, "n1", desired))
    wait_for("sessions", lambda: sessions_up(clean, "192.0.2.100"))

    def seen(attributes: Attributes) -> list[PathSeen]:
        return [
            PathSeen(
                str(hop),
                (CLUSTER_ASN,) * (1 + attributes.as_path_prepend),
                attributes.med,
                tuple(attributes.community_texts()),
                tuple(attributes.large_community_texts()),
            )
            for hop in NODE_IPS[:2]
        ]

    wait_for("FRR RIB attributes", lambda: clean.frr.paths(str(VIP)) == seen(wanted))
    wait_for("BIRD RIB attributes", lambda: clean.bird.paths(str(VIP)) == seen(wanted))
    flaps = _flaps(clean, "192.0.2.100")

    # A restarted agent reads the attributes back from gobgpd: nothing is re-sent.
    changes, calls = run(lambda: apply(clean, "n1", desired))
    assert (changes, set(calls) - READS) == (0, set())

    # Change them: the same paths are replaced in place.
    changed = Attributes.parse(["65000:200"], [], 0, None)
    desired = replace(base, paths=frozenset(replace(p, attributes=changed) for p in base.paths))
    changes, calls = run(lambda: apply(clean, "n1", desired))
    assert changes == 2
    wait_for("FRR RIB changed", lambda: clean.frr.paths(str(VIP)) == seen(changed))
    wait_for("BIRD RIB changed", lambda: clean.bird.paths(str(VIP)) == seen(changed))
    assert _flaps(clean, "192.0.2.100") == flaps
    assert clean.frr.kernel_next_hops(str(VIP)) == {str(h) for h in NODE_IPS[:2]}


def test_a_prefix_denied_to_one_tor_reaches_only_the_other_and_follows_changes(
    clean: Fabric,
) -> None:
    """A pool's peerSelector as gobgpd's export policy: the denied ToR never gets the
    prefix; allowing it later sends it (soft reset out), denying it withdraws it; no
    session drops; an agent restart re-sends nothing."""
    frr_ip, bird_ip = TORS
    plumb(clean, "n1", "192.0.2.100")
    base = config("192.0.2.100", NODE_IPS[:2])
    only_frr = replace(base, denied={VIP: frozenset({bird_ip})})
    run(lambda: apply(clean, "n1", only_frr))
    wait_for("sessions", lambda: sessions_up(clean, "192.0.2.100"))
    wait_for("on FRR", lambda: len(clean.frr.next_hops(str(VIP))) == 2)
    time.sleep(2)  # BIRD would have it by now if it were sent
    assert clean.bird.next_hops(str(VIP)) == set()
    flaps = _flaps(clean, "192.0.2.100")
    bird_before = bird_sessions(clean)

    changes, calls = run(lambda: apply(clean, "n1", only_frr))
    assert (changes, set(calls) - READS) == (0, set())

    run(lambda: apply(clean, "n1", base))  # allowed everywhere
    wait_for("on BIRD once allowed", lambda: len(clean.bird.next_hops(str(VIP))) == 2)
    run(lambda: apply(clean, "n1", replace(base, denied={VIP: frozenset({frr_ip})})))
    wait_for("gone from FRR once denied", lambda: not clean.frr.next_hops(str(VIP)))
    assert len(clean.bird.next_hops(str(VIP))) == 2
    assert _flaps(clean, "192.0.2.100") == flaps
    assert bird_sessions(clean).keys() == bird_before.keys()


def stop_bgp(fabric: Fabric, node: str) -> None:
    """BGP stopped in the node's gobgpd (the daemon keeps running): the next apply
    starts it again, with or without a listener."""

    async def stop() -> None:
        async with grpc.aio.insecure_channel(fabric.gobgpd[node].target) as channel:
            stub = api_grpc.GobgpApiStub(channel)  # type: ignore[no-untyped-call]
            await stub.StopBgp(api.StopBgpRequest())

    run(stop)


def listening(fabric: Fabric, node: str) -> int:
    """The listen port a new driver (a restarted agent) reads from the node's gobgpd."""

    async def read() -> int:
        speaker = GoBGPSpeaker(fabric.gobgpd[node].target)
        try:
            await speaker.adopt()
            return speaker.listening
        finally:
            await speaker.close()

    return run(read)


def opened_by_the_tors(fabric: Fabric, node: str) -> set[str]:
    """The ToRs whose Established BGP connection to `node` ends on its port 179:
    the ToR opened it."""
    out = fabric.nodes[node].exec("ss", "-Htn", "state", "established", "sport", "=", ":179")
    return {line.split()[-1].rsplit(":", 1)[0] for line in out.splitlines() if line.strip()}


def test_tors_that_know_the_floating_ip_open_its_session_to_the_listener(clean: Fabric) -> None:
    # Both ToRs know 192.0.2.100 as a static neighbour (conftest) and try it every
    # second; gobgpd 3.10's own first connect comes 5-9 s after the peer is added.
    stop_bgp(clean, "n1")
    try:
        plumb(clean, "n1", "192.0.2.100")
        started = time.monotonic()
        run(lambda: apply(clean, "n1", config("192.0.2.100", NODE_IPS), listen_port=179))
        wait_for("sessions from n1", lambda: sessions_up(clean, "192.0.2.100"))
        print(f"Established after {time.monotonic() - started:.1f}s, opened by the ToRs")
        assert opened_by_the_tors(clean, "n1") == {str(t) for t in TORS}
        assert listening(clean, "n1") == 179
        wait_for(
            "route on FRR", lambda: clean.frr.next_hops(str(VIP)) == {str(h) for h in NODE_IPS}
        )
    finally:
        stop_bgp(clean, "n1")  # the next test's gobgpd starts without a listener


def test_a_taken_bgp_port_falls_back_to_sessions_opened_from_the_node(
    clean: Fabric, caplog: pytest.LogCaptureFixture
) -> None:
    # Bound without SO_REUSEADDR and not listening: gobgpd cannot bind port 179, and
    # the ToRs' connects to it are refused. On n2: the listener test leaves n1's port
    # 179 in TIME_WAIT, where such a bind fails.
    blocker = clean.nodes["n2"].popen(
        [sys.executable, "-c", BIND_179],
        clean.workdir / "port-179-blocker.log",
    )
    stop_bgp(clean, "n2")
    try:
        log = clean.workdir / "port-179-blocker.log"
        wait_for("port 179 taken", lambda: "bound" in log.read_text())
        plumb(clean, "n2", "192.0.2.100")
        desired = config("192.0.2.100", NODE_IPS, router_id="192.0.2.12")
        run(lambda: apply(clean, "n2", desired, listen_port=179))
        assert "BGP listener on port 179 refused" in caplog.text
        wait_for("sessions from n2", lambda: sessions_up(clean, "192.0.2.100"), timeout=40)
        assert opened_by_the_tors(clean, "n2") == set()
        assert listening(clean, "n2") == 0
    finally:
        stop_processes(blocker)
        stop_bgp(clean, "n2")


BIND_179 = """
import socket, time
s = socket.socket()
s.bind(("0.0.0.0", 179))
print("bound", flush=True)
time.sleep(120)
"""
