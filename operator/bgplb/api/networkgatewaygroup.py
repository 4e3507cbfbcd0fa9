"""NetworkGatewayGroup: the floating IPs that service BGP sessions start from."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field

from bgplb.api.common import ApiModel, Conditions, IPv4, Kind, PrinterColumn, Resource


class NetworkGatewayGroupSpec(ApiModel):
    """Addresses the operator places on nodes and peers from; never two nodes at once."""

    floating_ips: list[IPv4] = Field(
        min_length=1,
        max_length=256,
        description="Floating IPs from the nodes' subnets. Two or more are recommended.",
        json_schema_extra={"x-kubernetes-list-type": "set"},
    )


class UnplacedFloatingIP(ApiModel):
    """A floating IP that no node can hold right now, and why."""

    ip: IPv4
    """The floating IP."""
    reason: str
    """Why no node holds it."""


class NetworkGatewayGroupStatus(ApiModel):
    """Where each floating IP lives now."""

    floating_ips: dict[str, str] = Field(
        default_factory=dict, description="Floating IP → name of the node holding it."
    )
    placed: int = Field(0, ge=0, description="How many floating IPs are held by a node.")
    unplaced: list[UnplacedFloatingIP] = Field(default_factory=list)
    """Floating IPs no node can hold, with why."""
    releasing: dict[str, str] = Field(
        default_factory=dict,
        description="Floating IP → the live node giving it up: a move in progress. No "
        "node is assigned it until that node's agent reports, in its Lease, that it no "
        "longer holds it, so an address is never live on two nodes.",
    )
    epoch: int = Field(
        0,
        ge=0,
        description="Bumped whenever a floating IP starts moving away from a live node. "
        "Agents report in their Lease which epoch the floating IPs they hold reflect.",
    )
    witnesses: dict[str, str] = Field(
        default_factory=dict,
        description="Node → its agent's witness address (host:port), from the agents' "
        "Leases: whom an agent asks, during an API outage, before it keeps its floating IPs.",
    )
    observed_generation: int = Field(0, ge=0)
    """The metadata.generation this status reflects."""
    conditions: Conditions


class NetworkGatewayGroup(Resource):
    """The floating IPs the Service sessions start from, and (status) which node
    holds each. One per cluster, named default."""

    KIND: ClassVar[Kind] = Kind(
        kind="NetworkGatewayGroup",
        plural="networkgatewaygroups",
        short_names=("ngg",),
        singleton=True,
        columns=(
            PrinterColumn(name="Floating IPs", type="string", json_path=".spec.floatingIPs"),
            PrinterColumn(name="Placed", type="integer", json_path=".status.placed"),
            PrinterColumn(name="Age", type="date", json_path=".metadata.creationTimestamp"),
        ),
    )

    kind: Literal["NetworkGatewayGroup"] = "NetworkGatewayGroup"
    spec: NetworkGatewayGroupSpec
    status: NetworkGatewayGroupStatus = Field(default_factory=NetworkGatewayGroupStatus)
