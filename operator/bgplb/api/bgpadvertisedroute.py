"""BGPAdvertisedRoute: one prefix the cluster advertises, with its next hops."""

from __future__ import annotations

import ipaddress
from typing import Annotated, ClassVar, Literal

from pydantic import Field, PlainSerializer, WithJsonSchema

from bgplb.api.common import ApiModel, Conditions, IPv4, Kind, PrinterColumn, Resource
from bgplb.api.communities import Community, LargeCommunity

IPv4Prefix = Annotated[
    ipaddress.IPv4Network,
    PlainSerializer(str, return_type=str),
    WithJsonSchema(
        {
            "type": "string",
            "format": "cidr",
            "maxLength": 18,
            "x-kubernetes-validations": [
                {
                    "rule": "cidr(self).ip().family() == 4 && cidr(self) == cidr(self).masked()",
                    "message": "an IPv4 prefix with no host bits set (203.0.113.1/32)",
                }
            ],
        }
    ),
]


class ServiceRef(ApiModel):
    namespace: str = Field(min_length=1, max_length=63)
    """The Service's namespace."""
    name: str = Field(min_length=1, max_length=63)
    """The Service's name."""


class BGPAdvertisedRouteSpec(ApiModel):
    prefix: IPv4Prefix
    """The advertised prefix: a VIP as a /32."""
    next_hops: list[IPv4] = Field(
        default_factory=list, json_schema_extra={"x-kubernetes-list-type": "set"}
    )
    """The nodes traffic for the prefix goes to (one path each with ADD-PATH)."""
    metric: int | None = Field(None, ge=0, le=4_294_967_295, description="MED, when set.")
    draining_next_hops: list[IPv4] | None = Field(
        None,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="Next hops leaving gracefully (a cordoned node): announced with the "
        "GRACEFUL_SHUTDOWN community and the worst MED until withdrawn.",
    )
    communities: list[Community] | None = Field(
        None, max_length=64, description="Standard communities sent with it, 'ASN:value'."
    )
    large_communities: list[LargeCommunity] | None = Field(
        None, max_length=64, description="Large communities sent with it, 'ASN:value:value'."
    )
    peers: list[str] | None = Field(
        None,
        json_schema_extra={"x-kubernetes-list-type": "set"},
        description="The BGPPeers that announce it (its pool's peerSelector); unset: "
        "every data-plane peer.",
    )
    aggregation_length: int | None = Field(
        None,
        ge=1,
        le=32,
        description="Announced as the /N block holding the prefix (its pool's "
        "aggregationLength); unset: as itself.",
    )
    as_path_prepend: int | None = Field(
        None, ge=0, le=10, description="Extra copies of the cluster's ASN on its AS path."
    )
    service: ServiceRef | None = Field(
        None, description="The Service whose VIP this is; unset for the control-plane VIP."
    )


class BGPAdvertisedRouteStatus(ApiModel):
    observed_generation: int = Field(0, ge=0)
    """The metadata.generation this status reflects."""
    conditions: Conditions


class BGPAdvertisedRoute(Resource):
    """One prefix the cluster advertises (a Service VIP or the control-plane VIP),
    with its next hops; written by the controller."""

    KIND: ClassVar[Kind] = Kind(
        kind="BGPAdvertisedRoute",
        plural="bgpadvertisedroutes",
        short_names=("bgpar",),
        columns=(
            PrinterColumn(name="Prefix", type="string", json_path=".spec.prefix"),
            PrinterColumn(name="Metric", type="integer", json_path=".spec.metric"),
            PrinterColumn(name="Next Hops", type="string", json_path=".spec.nextHops"),
        ),
    )

    kind: Literal["BGPAdvertisedRoute"] = "BGPAdvertisedRoute"
    spec: BGPAdvertisedRouteSpec
    status: BGPAdvertisedRouteStatus = Field(default_factory=BGPAdvertisedRouteStatus)
