"""The networking.bgplb.io/v1 API as pydantic models, one module per kind."""

from bgplb.api.bgpadvertisedroute import BGPAdvertisedRoute, BGPAdvertisedRouteSpec, ServiceRef
from bgplb.api.bgploadbalancer import (
    CONTROL_PLANE_ROLE,
    AddressPool,
    BGPLoadBalancer,
    BGPLoadBalancerSpec,
    ControlPlane,
    ControlPlanePeer,
)
from bgplb.api.bgppeer import BFD, BGPPeer, BGPPeerSpec, GracefulRestart, SecretKeyRef
from bgplb.api.bgpsession import BGPSession, BGPSessionSpec
from bgplb.api.common import API_VERSION, GROUP, VERSION, Resource
from bgplb.api.networkgatewaygroup import NetworkGatewayGroup, NetworkGatewayGroupSpec

KINDS: tuple[type[Resource], ...] = (
    NetworkGatewayGroup,
    BGPLoadBalancer,
    BGPPeer,
    BGPSession,
    BGPAdvertisedRoute,
)
BY_KIND: dict[str, type[Resource]] = {k.KIND.kind: k for k in KINDS}

__all__ = [
    "API_VERSION",
    "BFD",
    "BY_KIND",
    "CONTROL_PLANE_ROLE",
    "GROUP",
    "KINDS",
    "VERSION",
    "AddressPool",
    "BGPAdvertisedRoute",
    "BGPAdvertisedRouteSpec",
    "BGPLoadBalancer",
    "BGPLoadBalancerSpec",
    "BGPPeer",
    "BGPPeerSpec",
    "BGPSession",
    "BGPSessionSpec",
    "ControlPlane",
    "ControlPlanePeer",
    "GracefulRestart",
    "NetworkGatewayGroup",
    "NetworkGatewayGroupSpec",
    "Resource",
    "SecretKeyRef",
    "ServiceRef",
]
