"""The agent's pure parts: desired speaker state, status reporting, fencing."""

from __future__ import annotations

import asyncio
import datetime as dt
from ipaddress import IPv4Address, IPv4Network
from pathlib import Path

import pytest

from bgplb.agent import bfd_server
from bgplb.agent.bfd import Timers
from bgplb.agent.desired import ADD_PATH_SEND_MAX, node_desired
from bgplb.agent.speaker.fake import FakeSpeaker
from bgplb.agent.speaker.model import PathConfig, PeerStatus, SpeakerConfig, path_identifier
from bgplb.agent.status import Reporter, session_status
from bgplb.api import BGPAdvertisedRouteSpec, BGPSessionSpec, SecretKeyRef, ServiceRef

A = IPv4Address
NODE_IP = A("192.0.2.11")


def session(**kw: object) -> BGPSessionSpec:
    base: dict[str, object] = {
        "floating_ip": A("192.0.2.100"),
        "local_ip": A("192.0.2.100"),
        "local_asn": 65001,
        "node_name": "n1",
        "peer_asn": 65000,
        "peer_ip": A("192.0.2.1"),
        "peer": "tor",
    }
    base.update(kw)
    return BGPSessionSpec.model_validate(base)


ROUTE = BGPAdvertisedRouteSpec(
    prefix=IPv4Network("203.0.113.10/32"),
    next_hops=[A("192.0.2.12"), A("192.0.2.11")],
    service=ServiceRef(namespace="default", name="web"),
)
CP_ROUTE = BGPAdvertisedRouteSpec(prefix=IPv4Network("203.0.113.1/32"), next_hops=[NODE_IP])


def test_service_sessions_with_add_path_get_a_path_per_next_hop() -> None:
    d = node_desired(
        "n1",
        NODE_IP,
        sessions={"tor-n1": session()},
        routes=[ROUTE],
        floating_ips=[],
        passwords={},
    )
    peer = d.service.peers[A("192.0.2.1")]
    assert peer.local_address == A("192.0.2.100")
    assert peer.add_path_send_max == ADD_PATH_SEND_MAX
    assert peer.description == "tor-n1"
    assert d.service.paths == {
        PathConfig(ROUTE.prefix, hop, path_identifier(hop)) for hop in ROUTE.next_hops
    }
    assert (d.service.asn, d.service.router_id) == (65001, NODE_IP)


def test_without_add_path_one_path_per_prefix() -> None:
    d = node_desired(
        "n1",
        NODE_IP,
        sessions={"tor-n1": session(add_path=False)},
        routes=[ROUTE],
        floating_ips=[],
        passwords={},
    )
    assert d.service.paths == {PathConfig(ROUTE.prefix, A("192.0.2.11"), 0)}
    assert d.service.peers[A("192.0.2.1")].add_path_send_max == 0


def test_other_nodes_sessions_are_ignored_and_no_sessions_means_no_paths() -> None:
    d = node_desired(
        "n1",
        NODE_IP,
        sessions={"tor-n2": session(node_name="n2")},
        routes=[ROUTE],
        floating_ips=[],
        passwords={},
    )
    assert d.service == SpeakerConfig(0, NODE_IP)
    assert d.sessions == {}


def test_control_plane_sessions_are_reported_not_driven() -> None:
    """The bgpadvertiser static Pod owns control-plane sessions: the agent's speaker
    never gets them, its status reports still cover them."""
    cp = session(type="ControlPlane", floating_ip=None, local_ip=NODE_IP, add_path=False)
    d = node_desired(
        "n1",
        NODE_IP,
        sessions={"192.0.2.1-n1": cp},
        routes=[ROUTE, CP_ROUTE],
        floating_ips=[],
        passwords={},
    )
    assert d.service.peers == {}
    assert CP_ROUTE.prefix not in {p.prefix for p in d.service.paths}
    assert set(d.sessions) == {"192.0.2.1-n1"}


def test_password_from_secret_or_session_left_out() -> None:
    s = session(password_secret_ref=SecretKeyRef(name="bgp", key="pw"))
    d = node_desired(
        "n1",
        NODE_IP,
        sessions={"tor-n1": s},
        routes=[],
        floating_ips=[],
        passwords={("bgp", "pw"): "s3cret"},
    )
    assert d.service.peers[A("192.0.2.1")].password == "s3cret"
    d = node_desired(
        "n1",
        NODE_IP,
        sessions={"tor-n1": s},
        routes=[],
        floating_ips=[],
        passwords={},
    )
    assert d.service.peers == {}
    assert d.missing_passwords == {"tor-n1": ("bgp", "pw")}


NOW = dt.datetime(2026, 11, 21, 10, 0, tzinfo=dt.UTC)


def test_reporter_writes_changes_and_slow_refreshes_only() -> None:
    spec = session()
    up = PeerStatus(A("192.0.2.1"), "Established", NOW, 0, 1)
    reporter = Reporter(refresh_seconds=60)
    first = session_status(spec, up, ["203.0.113.10/32"], NOW)
    assert (first.state, first.advertised_routes) == ("Established", ["203.0.113.10/32"])
    assert reporter.due("s", first)
    reporter.mark("s", first)
    later = session_status(spec, up, ["203.0.113.10/32"], NOW + dt.timedelta(seconds=30))
    assert not reporter.due("s", later)  # same content, refresh not yet due
    stale = session_status(spec, up, ["203.0.113.10/32"], NOW + dt.timedelta(seconds=61))
    assert reporter.due("s", stale)
    down = session_status(
        spec, PeerStatus(A("192.0.2.1"), "Active"), ["x"], NOW + dt.timedelta(seconds=31)
    )
    assert reporter.due("s", down)
    assert down.advertised_routes == []  # nothing is advertised on a session that is down


def test_fake_speaker_counts_changes_and_is_idempotent() -> None:
    async def scenario() -> tuple[int, int, str]:
        fake = FakeSpeaker()
        d = node_desired(
            "n1",
            NODE_IP,
            sessions={"tor-n1": session()},
            routes=[ROUTE],
            floating_ips=[],
            passwords={},
        )
        first = await fake.apply(d.service)
        again = await fake.apply(d.service)
        fake.set_state(A("192.0.2.1"), "Established")
        event = await anext(fake.watch())
        return first, again, event.state

    assert asyncio.run(scenario()) == (1 + 1 + 2, 0, "Established")


def test_one_unreadable_object_leaves_the_others_applied() -> None:
    import base64

    from bgplb.agent.source import inputs_from

    good = {
        "kind": "BGPSession",
        "metadata": {"name": "ok-n1"},
        "spec": {
            "localASN": 65001,
            "localIP": "192.0.2.100",
            "nodeName": "n1",
            "peerASN": 65000,
            "peerIP": "192.0.2.1",
        },
    }
    bad = {"kind": "BGPSession", "metadata": {"name": "bad-n1"}, "spec": {"peerIP": "nope"}}
    route = {
        "kind": "BGPAdvertisedRoute",
        "metadata": {"name": "r"},
        "spec": {"prefix": "203.0.113.10/32", "nextHops": ["192.0.2.11"]},
    }
    secret = {
        "kind": "Secret",
        "metadata": {"name": "md5"},
        "data": {
            "password": base64.b64encode(b"\xff\xfe").decode(),
            "other": base64.b64encode(b"text").decode(),
            "garbage": "%%% not base64",
        },
    }
    inputs = inputs_from([bad, good, route, secret, {"kind": "BGPAdvertisedRoute"}])
    assert list(inputs.sessions) == ["ok-n1"]
    assert [str(r.prefix) for r in inputs.routes] == ["203.0.113.10/32"]
    assert inputs.passwords == {("md5", "other"): "text"}


def test_witnesses_come_from_the_gateway_status_and_survive_a_restart(tmp_path: Path) -> None:
    from bgplb.agent.source import inputs_from, load_inputs, save_inputs

    ngg = {
        "kind": "NetworkGatewayGroup",
        "metadata": {"name": "default"},
        "spec": {"floatingIPs": ["192.0.2.100"]},
        "status": {
            "floatingIPs": {"192.0.2.100": "n1"},
            "witnesses": {"n1": "192.0.2.11:7473", "n2": "192.0.2.12:7473"},
        },
    }
    inputs = inputs_from([ngg])
    assert dict(inputs.witnesses) == {"n1": "192.0.2.11:7473", "n2": "192.0.2.12:7473"}
    save_inputs(tmp_path / "state.json", inputs)
    assert load_inputs(tmp_path / "state.json") == inputs


def test_bfd_for_the_service_sessions_that_ask_for_it() -> None:
    fast = {"transmit_interval_milliseconds": 100, "detect_multiplier": 4}
    d = node_desired(
        "n1",
        NODE_IP,
        sessions={
            "tor-n1": session(bfd=fast),
            "bird-n1": session(peer_ip=A("192.0.2.2"), peer="bird"),  # no BFD asked
            "cp": session(type="ControlPlane", local_ip=NODE_IP, bfd=fast),
        },
        routes=[ROUTE],
        floating_ips=[A("192.0.2.100")],
        passwords={},
    )
    # Control-plane sessions too (the static Pod's gobgpd runs them, BFD comes from
    # the speaker Pod like the rest).
    assert d.bfd == {
        (A("192.0.2.100"), A("192.0.2.1")): Timers(100_000, 300_000, 4),
        (NODE_IP, A("192.0.2.1")): Timers(100_000, 300_000, 4),
    }


def test_bfd_wire_format_between_agent_and_container_names_bad_fields() -> None:
    wanted = {(A("192.0.2.100"), A("192.0.2.1")): Timers(300_000, 300_000, 3)}
    assert bfd_server.decode(bfd_server.encode(wanted)) == wanted
    with pytest.raises(ValueError, match=r"sessions\[0\]"):
        bfd_server.decode([{"local": "192.0.2.100", "peer": "nope"}])
    with pytest.raises(ValueError, match=r"sessions\[0\]: intervals"):
        bfd_server.decode([{**bfd_server.encode(wanted)[0], "transmitUs": 5}])
    with pytest.raises(ValueError, match="must be a list"):
        bfd_server.decode({"local": "192.0.2.100"})


def test_a_bfd_change_is_a_status_change() -> None:
    now = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)
    spec = session(bfd={})
    up = session_status(spec, None, [], now, bfd="Up")
    assert up.bfd == "Up"
    assert up.model_dump(mode="json", by_alias=True)["bfd"] == "Up"
    reporter = Reporter()
    reporter.mark("s", up)
    assert reporter.due("s", session_status(spec, None, [], now, bfd="Down"))
    assert not reporter.due("s", session_status(spec, None, [], now, bfd="Up"))
