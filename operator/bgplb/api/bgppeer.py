"""BGPPeer: one external router the data-plane sessions peer with."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import ConfigDict, Field
from pydantic.config import JsonDict

from bgplb.api.common import ASN, ApiModel, Conditions, IPv4, Kind, PrinterColumn, Resource


class SecretKeyRef(ApiModel):
    """A key of a Secret in the operator's namespace."""

    name: str = Field(min_length=1, max_length=253)
    """The Secret's name, in the operator's namespace."""
    key: str = Field("password", min_length=1, max_length=253)
    """The key of the Secret holding the password."""


class GracefulRestart(ApiModel):
    """BGP graceful restart (RFC 4724): the peer keeps our routes while we restart."""

    enabled: bool = True
    """Whether to ask the peer for graceful restart."""
    restart_time_seconds: int = Field(120, ge=1, le=4095)
    """How long the peer keeps our routes while we restart."""


class BFD(ApiModel):
    """Bidirectional Forwarding Detection (RFC 5880, single hop RFC 5881) on the
    session, sent from the session's own local address (its floating IP): the router
    drops a dead node's session after detectMultiplier missed packets instead of at
    the hold timer. The router must run BFD for the session too (FRR: `neighbor ...
    bfd`, BIRD: `bfd on`)."""

    transmit_interval_milliseconds: int = Field(
        300, ge=10, le=60000, description="Fastest this node sends, once the session is Up."
    )
    receive_interval_milliseconds: int = Field(
        300, ge=10, le=60000, description="Fastest this node accepts packets from the router."
    )
    detect_multiplier: int = Field(
        3, ge=2, le=255, description="Packets missed before the session is declared down."
    )


class SessionTransport(ApiModel):
    """How a session is carried; shared by BGPPeer and the BGPSessions made from it."""

    ebgp_multihop_ttl: int = Field(
        255, ge=1, le=255, description="IP TTL of the session's packets (multihop by default)."
    )
    hold_time_seconds: int = Field(9, ge=3, le=65535)
    """Seconds without a message before the session is declared down (9, FRR's
    datacenter default: a dead peer noticed in 9 s, not BGP's classic 90 s)."""
    keepalive_time_seconds: int = Field(3, ge=1, le=21845)
    """Seconds between keepalives; at most a third of holdTimeSeconds."""
    connect_retry_seconds: int = Field(
        2, ge=1, le=65535, description="Kept low so a moved floating IP reconnects quickly."
    )
    password_secret_ref: SecretKeyRef | None = Field(
        None, description="TCP MD5 (RFC 2385) password for the session."
    )
    graceful_restart: GracefulRestart | None = None
    bfd: BFD | None = Field(
        None, description="BFD on the session; absent: none (the hold timer alone)."
    )


KEEPALIVE_RULE: JsonDict = {
    "rule": "self.keepaliveTimeSeconds * 3 <= self.holdTimeSeconds",
    "message": "keepaliveTimeSeconds must be at most a third of holdTimeSeconds",
    "fieldPath": ".keepaliveTimeSeconds",
}
EBGP_RULE: JsonDict = {
    "rule": "self.peerASN != self.localASN",
    "message": "peerASN must differ from localASN: only eBGP is supported",
    "fieldPath": ".peerASN",
}


class BGPPeerSpec(SessionTransport):
    """The seed's BGPPeer fields plus what users of MetalLB and Cilium expect."""

    model_config = ConfigDict(
        json_schema_extra={"x-kubernetes-validations": [EBGP_RULE, KEEPALIVE_RULE]}
    )

    local_asn: ASN
    peer_asn: ASN
    peer_ip: IPv4
    """The router's address."""
    sessions: int = Field(
        1, ge=1, le=64, description="Sessions to this peer, each from its own floating IP."
    )


class BGPPeerStatus(ApiModel):
    sessions: int = Field(0, ge=0, description="Sessions planned for this peer.")
    established_sessions: int = Field(0, ge=0)
    """How many of them are Established."""
    observed_generation: int = Field(0, ge=0)
    """The metadata.generation this status reflects."""
    conditions: Conditions


class BGPPeer(Resource):
    """One external router the Service sessions peer with, from the floating IPs."""

    KIND: ClassVar[Kind] = Kind(
        kind="BGPPeer",
        plural="bgppeers",
        short_names=("bgpp",),
        columns=(
            PrinterColumn(name="Peer IP", type="string", json_path=".spec.peerIP"),
            PrinterColumn(name="Peer ASN", type="integer", json_path=".spec.peerASN"),
            PrinterColumn(name="Local ASN", type="integer", json_path=".spec.localASN"),
            PrinterColumn(name="Wanted", type="integer", json_path=".spec.sessions"),
            PrinterColumn(
                name="Established", type="integer", json_path=".status.establishedSessions"
            ),
            PrinterColumn(name="Age", type="date", json_path=".metadata.creationTimestamp"),
        ),
    )

    kind: Literal["BGPPeer"] = "BGPPeer"
    spec: BGPPeerSpec
    status: BGPPeerStatus = Field(default_factory=BGPPeerStatus)
