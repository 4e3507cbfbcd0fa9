"""The pydantic models: seed field names, defaults, round trips."""

from __future__ import annotations

import datetime as dt
from ipaddress import IPv4Address

from bgplb.api import BGPPeer, BGPSession, NetworkGatewayGroup
from bgplb.api.common import wire_name
from tests.unit.helpers import gateway, peer


def test_wire_names_follow_the_seed() -> None:
    assert wire_name("floating_ips") == "floatingIPs"
    assert wire_name("local_asn") == "localASN"
    assert wire_name("peer_ip") == "peerIP"
    assert wire_name("control_plane_nodes") == "controlPlaneNodes"
    assert wire_name("ebgp_multihop_ttl") == "ebgpMultihopTTL"
    assert wire_name("last_report_time") == "lastReportTime"


def test_peer_defaults() -> None:
    spec = BGPPeer.model_validate(peer()).spec
    assert spec.sessions == 1
    assert spec.connect_retry_seconds <= 2  # a moved floating IP must reconnect fast
    assert spec.ebgp_multihop_ttl == 255  # the seed: multihop is supported by default
    assert spec.password_secret_ref is None


def test_round_trip_through_json() -> None:
    obj = NetworkGatewayGroup.model_validate(gateway("192.0.2.10"))
    dumped = obj.model_dump(mode="json", by_alias=True)
    assert dumped["spec"] == {"floatingIPs": ["192.0.2.10"]}
    assert dumped["apiVersion"] == "networking.bgplb.io/v1"
    assert NetworkGatewayGroup.model_validate(dumped) == obj


def test_session_status_times_are_rfc3339_utc() -> None:
    session = BGPSession.model_validate(
        {
            "kind": "BGPSession",
            "metadata": {"name": "bgppeer1-node-03"},
            "spec": {
                "floatingIP": "192.0.2.178",
                "localASN": 65500,
                "localIP": "192.0.2.178",
                "nodeName": "node-03",
                "peerASN": 65000,
                "peerIP": "192.0.2.254",
            },
            "status": {
                "state": "Established",
                "advertisedRoutes": ["203.0.113.1/32"],
                "lastReportTime": "2021-06-14T22:09:36Z",
            },
        }
    )
    assert session.spec.floating_ip == IPv4Address("192.0.2.178")
    assert session.status.last_report_time == dt.datetime(2021, 6, 14, 22, 9, 36, tzinfo=dt.UTC)
    status = session.status.model_dump(mode="json", by_alias=True, exclude_defaults=True)
    assert status["lastReportTime"] == "2021-06-14T22:09:36Z"
    assert status["state"] == "Established"
