"""BGPSession: one live session, written by the operator, reported on by the node agent."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import ConfigDict, Field

from bgplb.api.bgppeer import KEEPALIVE_RULE, SessionTransport
from bgplb.api.common import (
    ASN,
    ApiModel,
    Conditions,
    IPv4,
    Kind,
    PrinterColumn,
    Resource,
    Timestamp,
)

# Spelt as in the seed's `kubectl get bgpsessions` output.
SessionState = Literal["Idle", "Connect", "Active", "OpenSent", "OpenConfirm", "Established"]
SESSION_STATES: tuple[SessionState, ...] = (
    "Idle",
    "Connect",
    "Active",
    "OpenSent",
    "OpenConfirm",
    "Established",
)

SessionType = Literal["Service", "ControlPlane"]


class BGPSessionSpec(SessionTransport):
    """What the node agent must establish: the seed's fields plus the peer's transport."""

    model_config = ConfigDict(json_schema_extra={"x-kubernetes-validations": [KEEPALIVE_RULE]})

    floating_ip: IPv4 | None = Field(
        None, description="The floating IP the session starts from; unset for control-plane."
    )
    local_asn: ASN
    local_ip: IPv4
    """The address the session starts from: the floating IP, or the node's IP."""
    node_name: str = Field(min_length=1, max_length=253)
    """The node running the session."""
    peer_asn: ASN
    peer_ip: IPv4
    """The router's address."""
    peer: str = Field(
        "", max_length=253, description="The BGPPeer it serves; empty for control-plane sessions."
    )
    type: SessionType = "Service"
    """Service (from a floating IP) or ControlPlane (from a control-plane node's IP)."""
    add_path: bool = Field(
        True, description="Send every next hop of a prefix (ADD-PATH), from the BGPLoadBalancer."
    )


class BGPSessionStatus(ApiModel):
    state: SessionState | None = None
    """The BGP state the node's speaker reports (Established, Active, ...)."""
    advertised_routes: list[str] = Field(default_factory=list)
    """The prefixes advertised on the session."""
    received_prefixes: int = Field(0, ge=0)
    """Prefixes received from the peer."""
    advertised_prefixes: int = Field(0, ge=0)
    """Prefixes advertised to the peer."""
    established_since: Timestamp | None = None
    """When the session last became Established."""
    last_error: str = ""
    """The last error the speaker reported for the session."""
    last_report_time: Timestamp | None = None
    """When the node's agent last reported (LAST REPORT)."""
    bfd: Literal["AdminDown", "Down", "Init", "Up"] | None = None
    """The session's BFD state, from the node's BFD container; absent: no BFD asked
    for (or not yet started)."""
    observed_generation: int = Field(0, ge=0)
    """The metadata.generation this status reflects."""
    conditions: Conditions


class BGPSession(Resource):
    """One BGP session: written by the controller, its state reported by the agent
    of the node that runs it."""

    KIND: ClassVar[Kind] = Kind(
        kind="BGPSession",
        plural="bgpsessions",
        short_names=("bgps",),
        # Exactly the seed's columns, in its order.
        columns=(
            PrinterColumn(name="Local ASN", type="integer", json_path=".spec.localASN"),
            PrinterColumn(name="Peer ASN", type="integer", json_path=".spec.peerASN"),
            PrinterColumn(name="Local IP", type="string", json_path=".spec.localIP"),
            PrinterColumn(name="Peer IP", type="string", json_path=".spec.peerIP"),
            PrinterColumn(name="State", type="string", json_path=".status.state"),
            PrinterColumn(name="Last Report", type="date", json_path=".status.lastReportTime"),
            # Beyond the seed's: shown by `kubectl get -o wide` only.
            PrinterColumn(name="BFD", type="string", json_path=".status.bfd", priority=1),
        ),
    )

    kind: Literal["BGPSession"] = "BGPSession"
    spec: BGPSessionSpec
    status: BGPSessionStatus = Field(default_factory=BGPSessionStatus)
