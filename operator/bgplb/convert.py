"""`bgplb convert`: an Anthos bare-metal or a MetalLB configuration as bgplb's objects,
with a warning for everything that is not carried over. Pure: documents in, objects
and warnings out.

- Anthos: the Cluster's `spec.loadBalancer` (type bgp: `localASN`, `bgpPeers` → the
  control plane's peers, `vips.controlPlaneVIP`, `ports.controlPlaneLBPort`,
  `addressPools`) merged into the BGPLoadBalancer, and its NetworkGatewayGroup,
  BGPLoadBalancer and BGPPeer objects with only apiVersion and namespace changed.
- MetalLB: IPAddressPools → the BGPLoadBalancer's address pools; BGPPeers (with their
  BFDProfile) → BGPPeers, labelled so the BGPLoadBalancer's peerSelector takes them;
  the floating IPs bgplb's sessions start from come from `--floating-ip` (MetalLB
  has none). L2 and advertisement attributes bgplb does not have yet are warned about.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bgplb.api import GROUP, VERSION
from bgplb.api.communities import CommunityError, parse_community, parse_large_community
from bgplb.api.contract import SINGLETON_NAME

JSON = dict[str, Any]
API_VERSION = f"{GROUP}/{VERSION}"
MIGRATED_LABEL = "networking.bgplb.io/migrated-from"
"""On BGPPeers converted from MetalLB: what the BGPLoadBalancer's peerSelector takes."""


@dataclass
class Conversion:
    objects: list[JSON] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)

    def warn(self, source: Mapping[str, Any], where: str, message: str) -> None:
        name = (source.get("metadata") or {}).get("name", "?")
        self.warnings.append(f"{source.get('kind')}/{name}: {where}: {message}")


def convert(
    docs: Iterable[Mapping[str, Any]], namespace: str, floating_ips: Iterable[str] = ()
) -> Conversion:
    out = Conversion()
    docs = [d for d in docs if d]
    anthos = [d for d in docs if _group(d) in ("baremetal.cluster.gke.io", "networking.gke.io")]
    metallb = [d for d in docs if _group(d) == "metallb.io"]
    for doc in docs:
        if doc not in anthos and doc not in metallb:
            out.warn(
                doc, "apiVersion", f"{doc.get('apiVersion')!r} is not Anthos or MetalLB: left out"
            )
    if anthos:
        _anthos(anthos, namespace, out)
    if metallb:
        _metallb(metallb, namespace, list(floating_ips), out)
    return out


def _group(doc: Mapping[str, Any]) -> str:
    return str(doc.get("apiVersion") or "").split("/")[0]


def _object(kind: str, name: str, namespace: str, spec: JSON, labels: Any = None) -> JSON:
    meta: JSON = {"name": name, "namespace": namespace}
    if labels:
        meta["labels"] = dict(labels)
    return {"apiVersion": API_VERSION, "kind": kind, "metadata": meta, "spec": spec}


# --- Anthos -----------------------------------------------------------------------------


def _anthos(docs: list[Mapping[str, Any]], namespace: str, out: Conversion) -> None:
    lb_spec: JSON = {}
    for doc in docs:
        if doc.get("kind") == "Cluster":
            lb_spec |= _cluster(doc, out)
    ngg: JSON | None = None
    found_lb = False
    peers: list[JSON] = []
    for doc in docs:
        kind, spec = doc.get("kind"), dict(doc.get("spec") or {})
        meta = doc.get("metadata") or {}
        if kind == "NetworkGatewayGroup":
            ngg = _object(kind, SINGLETON_NAME, namespace, spec)
        elif kind == "BGPLoadBalancer":
            found_lb = True
            lb_spec |= spec
        elif kind == "BGPPeer":
            peers.append(
                _object(kind, meta.get("name", "peer"), namespace, spec, meta.get("labels"))
            )
        elif kind != "Cluster":
            out.warn(doc, "kind", "not a kind bgplb has: left out")
    if lb_spec or found_lb:
        out.objects.append(_object("BGPLoadBalancer", SINGLETON_NAME, namespace, lb_spec))
    if ngg is not None:
        out.objects.insert(0, ngg)
    out.objects += peers


def _cluster(doc: Mapping[str, Any], out: Conversion) -> JSON:
    lb = (doc.get("spec") or {}).get("loadBalancer") or {}
    where = "spec.loadBalancer"
    if lb.get("type", "layer2") != "bgp":
        out.warn(doc, f"{where}.type", f"{lb.get('type', 'layer2')!r}: only BGP is carried over")
        return {}
    if lb.get("mode", "bundled") != "bundled":
        out.warn(doc, f"{where}.mode", f"{lb.get('mode')!r}: converted as bundled")
    spec: JSON = {}
    if "localASN" in lb:
        spec["localASN"] = lb["localASN"]
    control: JSON = {}
    vips = lb.get("vips") or {}
    if "controlPlaneVIP" in vips:
        control["vip"] = vips["controlPlaneVIP"]
    port = (lb.get("ports") or {}).get("controlPlaneLBPort")
    if port is not None:
        control["port"] = port
    if lb.get("bgpPeers"):
        control["peers"] = [
            {k: p[k] for k in ("ip", "asn", "controlPlaneNodes") if k in p} for p in lb["bgpPeers"]
        ]
    if control:
        spec["controlPlane"] = control
    if "ingressVIP" in vips:
        out.warn(
            doc,
            f"{where}.vips.ingressVIP",
            f"bgplb runs no ingress: give your ingress Service spec.loadBalancerIP: "
            f"{vips['ingressVIP']} (it is in a pool)",
        )
    if lb.get("addressPools"):
        spec["addressPools"] = [
            {k: p[k] for k in ("name", "addresses", "avoidBuggyIPs", "manualAssign") if k in p}
            for p in lb["addressPools"]
        ]
    if (lb.get("nodePoolSpec") or {}).get("nodes"):
        out.warn(
            doc,
            f"{where}.nodePoolSpec",
            "bgplb takes load-balancer nodes by label: label those nodes and set the "
            "BGPLoadBalancer's spec.loadBalancerNodeSelector (default: control-plane nodes)",
        )
    return spec


# --- MetalLB ----------------------------------------------------------------------------

_DURATION = re.compile(r"(?:(\d+)h)?(?:(\d+)m(?!s))?(?:(\d+)s)?(?:(\d+)ms)?")


def _seconds(text: Any) -> int | None:
    """A Go duration ("90s", "1m30s") in whole seconds (None: not one)."""
    match = _DURATION.fullmatch(str(text)) if text else None
    if not match or not any(match.groups()):
        return None
    h, m, s, ms = (int(g or 0) for g in match.groups())
    return h * 3600 + m * 60 + s + ms // 1000


def _metallb(
    docs: list[Mapping[str, Any]], namespace: str, floating_ips: list[str], out: Conversion
) -> None:
    profiles = {
        (d.get("metadata") or {}).get("name"): d for d in docs if d.get("kind") == "BFDProfile"
    }
    aliases = _aliases(docs)
    pools: list[JSON] = []
    peers: list[JSON] = []
    advertised: list[Advertised] = []
    asns: set[int] = set()
    for doc in docs:
        kind, spec = doc.get("kind"), doc.get("spec") or {}
        if kind == "IPAddressPool":
            pools.append(_pool(doc, out))
        elif kind == "BGPPeer":
            peer = _peer(doc, profiles, out)
            if "localASN" in peer and peer["localASN"] == peer.get("peerASN"):
                out.warn(
                    doc, "spec.peerASN", "iBGP (peerASN is myASN): bgplb speaks eBGP only; left out"
                )
                continue
            peers.append(_object("BGPPeer", (doc.get("metadata") or {}).get("name", "peer"),
                                 namespace, peer, {MIGRATED_LABEL: "metallb"}))  # fmt: skip
            if "localASN" in peer:
                asns.add(peer["localASN"])
        elif kind == "BGPAdvertisement":
            advertised.append(_advertisement(doc, aliases, out))
        elif kind == "L2Advertisement":
            out.warn(
                doc, "kind", "layer 2 mode is not carried over: bgplb advertises over BGP only"
            )
        elif kind == "Community":
            pass  # its aliases are resolved where an advertisement uses them
        elif kind == "BFDProfile":
            for key in ("echoMode", "passiveMode", "minimumTtl", "echoInterval"):
                if key in spec:
                    out.warn(
                        doc, f"spec.{key}", "not carried over: bgplb's BFD has no such setting"
                    )
        else:
            out.warn(doc, "kind", "not a MetalLB kind convert knows: left out")
    _unadvertised(docs, out)
    _apply_advertisements(pools, advertised)
    lb: JSON = {"peerSelector": {MIGRATED_LABEL: "metallb"}}
    if len(asns) == 1:
        lb["localASN"] = asns.pop()
    elif len(asns) > 1:
        out.warnings.append(
            f"BGPPeer: spec.myASN: {sorted(asns)}: bgplb has one local ASN per cluster; "
            "set the BGPLoadBalancer's spec.localASN and every BGPPeer's spec.localASN to it"
        )
    if pools:
        lb["addressPools"] = pools
    if floating_ips:
        out.objects.append(
            _object("NetworkGatewayGroup", SINGLETON_NAME, namespace, {"floatingIPs": floating_ips})
        )
    else:
        out.warnings.append(
            "NetworkGatewayGroup/default: spec.floatingIPs: MetalLB has none, and bgplb's "
            "sessions start from floating IPs: run convert with --floating-ip (two or more "
            "free addresses on your nodes' subnets), or write the NetworkGatewayGroup yourself"
        )
    out.objects.append(_object("BGPLoadBalancer", SINGLETON_NAME, namespace, lb))
    out.objects += peers


def _pool(doc: Mapping[str, Any], out: Conversion) -> JSON:
    spec = doc.get("spec") or {}
    addresses = []
    for i, entry in enumerate(spec.get("addresses") or []):
        if ":" in str(entry):
            out.warn(doc, f"spec.addresses[{i}]", f"{entry}: IPv6 is not carried over")
        else:
            addresses.append(str(entry).replace(" ", ""))
    pool: JSON = {"name": (doc.get("metadata") or {}).get("name", "pool"), "addresses": addresses}
    if spec.get("autoAssign") is False:
        pool["manualAssign"] = True
    if spec.get("avoidBuggyIPs"):
        pool["avoidBuggyIPs"] = True
    scope = spec.get("serviceAllocation") or {}
    ours: JSON = {k: scope[k] for k in ("priority", "namespaces") if scope.get(k) is not None}
    selectors = scope.get("serviceSelectors") or []
    if len(selectors) == 1 and set(selectors[0]) == {"matchLabels"}:
        ours["serviceSelector"] = dict(selectors[0]["matchLabels"])
    elif selectors:
        out.warn(doc, "spec.serviceAllocation.serviceSelectors",
                 "only one selector of matchLabels is carried over: left out")  # fmt: skip
    spaces = scope.get("namespaceSelectors") or []
    if len(spaces) == 1 and set(spaces[0]) == {"matchLabels"}:
        ours["namespaceSelector"] = dict(spaces[0]["matchLabels"])
    elif spaces:
        out.warn(doc, "spec.serviceAllocation.namespaceSelectors",
                 "only one selector of matchLabels is carried over: left out")  # fmt: skip
    if ours:
        pool["serviceAllocation"] = ours
    return pool


def _peer(
    doc: Mapping[str, Any], profiles: Mapping[Any, Mapping[str, Any]], out: Conversion
) -> JSON:
    spec = doc.get("spec") or {}
    peer: JSON = {}
    for theirs, ours in (("myASN", "localASN"), ("peerASN", "peerASN"), ("peerAddress", "peerIP")):
        if theirs in spec:
            peer[ours] = spec[theirs]
    for theirs, ours in (("holdTime", "holdTimeSeconds"), ("keepaliveTime", "keepaliveTimeSeconds"),
                         ("connectTime", "connectRetrySeconds")):  # fmt: skip
        if theirs in spec:
            seconds = _seconds(spec[theirs])
            if seconds is None:
                out.warn(doc, f"spec.{theirs}", f"{spec[theirs]!r} is not a duration: left out")
            else:
                peer[ours] = seconds
    peer["ebgpMultihopTTL"] = 255 if spec.get("ebgpMultiHop") else 1
    if spec.get("enableGracefulRestart"):
        peer["gracefulRestart"] = {"enabled": True}
    secret = spec.get("passwordSecret")
    if secret:
        peer["passwordSecretRef"] = {"name": secret.get("name"), "key": "password"}
        out.warn(doc, "spec.passwordSecret",
                 "bgplb reads the Secret from its own namespace: copy it there")  # fmt: skip
    if spec.get("password"):
        out.warn(doc, "spec.password",
                 "a plain password is not carried over: put it in a Secret (key 'password') "
                 "in bgplb's namespace and set spec.passwordSecretRef")  # fmt: skip
    profile = profiles.get(spec.get("bfdProfile"))
    if spec.get("bfdProfile") and profile is None:
        out.warn(doc, "spec.bfdProfile", f"no BFDProfile {spec['bfdProfile']!r} given: no BFD")
    elif profile is not None:
        p = profile.get("spec") or {}
        peer["bfd"] = {
            "transmitIntervalMilliseconds": p.get("transmitInterval", 300),
            "receiveIntervalMilliseconds": p.get("receiveInterval", 300),
            "detectMultiplier": p.get("detectMultiplier", 3),
        }
    if spec.get("peerPort", 179) != 179:
        out.warn(doc, "spec.peerPort", f"{spec['peerPort']}: bgplb peers on port 179 only")
    if spec.get("nodeSelectors"):
        out.warn(doc, "spec.nodeSelectors",
                 "bgplb's sessions start from floating IPs (NetworkGatewayGroup), not from "
                 "selected nodes: not carried over")  # fmt: skip
    for key in ("sourceAddress", "routerID", "vrf", "dynamicASN", "disableMP"):
        if key in spec:
            out.warn(doc, f"spec.{key}", "not carried over")
    return peer


Advertised = tuple[list[str] | None, list[str], list[str], int]
"""The pools an advertisement names (None: every pool), its standard and its large
communities, its aggregation length."""


def _aliases(docs: list[Mapping[str, Any]]) -> dict[str, str]:
    """MetalLB's Community objects: alias → 'a:b' or 'large:a:b:c'."""
    out = {}
    for doc in docs:
        if doc.get("kind") == "Community":
            for entry in (doc.get("spec") or {}).get("communities") or []:
                if entry.get("name") and entry.get("value"):
                    out[str(entry["name"])] = str(entry["value"])
    return out


def _advertisement(
    doc: Mapping[str, Any], aliases: Mapping[str, str], out: Conversion
) -> Advertised:
    spec = doc.get("spec") or {}
    standard: list[str] = []
    large: list[str] = []
    for i, given in enumerate(spec.get("communities") or []):
        text = aliases.get(str(given), str(given))
        try:
            if text.startswith("large:"):
                parse_large_community(text.removeprefix("large:"))
                large.append(text.removeprefix("large:"))
            else:
                parse_community(text)
                standard.append(text)
        except CommunityError as e:
            out.warn(doc, f"spec.communities[{i}]", f"{e}: left out")
    if spec.get("ipAddressPoolSelectors") and not spec.get("ipAddressPools"):
        names: list[str] | None = []  # which pools a selector picks is not known here
    else:
        names = list(spec.get("ipAddressPools") or []) or None
    length = spec.get("aggregationLength", 32)
    if not isinstance(length, int) or not 1 <= length <= 32:
        out.warn(doc, "spec.aggregationLength", f"{length!r} is not a prefix length: left out")
        length = 32
    for key, why in (
        (
            "localPref",
            "local preference is not carried over: LOCAL_PREF only travels "
            "inside an AS and bgplb's sessions are eBGP (use the pool's med or asPathPrepend)",
        ),
        (
            "peers",
            "not carried over: label those BGPPeers and set the pools' "
            "advertisement.peerSelector to the label",
        ),
        ("nodeSelectors", "next hops are the BGPLoadBalancer's loadBalancerNodeSelector"),
        ("ipAddressPoolSelectors", "every pool is advertised: not carried over"),
    ):
        if spec.get(key):
            out.warn(doc, f"spec.{key}", why)
    return names, standard, large, length


def _apply_advertisements(pools: list[JSON], advertised: list[Advertised]) -> None:
    """Each pool carries the communities of every advertisement that names it (MetalLB
    would announce it once per advertisement; bgplb announces it once, with all)."""
    for pool in pools:
        standard: list[str] = []
        large: list[str] = []
        lengths = {32}
        for names, s, lg, length in advertised:
            if names is None or pool["name"] in names:
                standard += [c for c in s if c not in standard]
                large += [c for c in lg if c not in large]
                lengths.add(length)
        ad: JSON = {}
        if standard:
            ad["communities"] = standard
        if large:
            ad["largeCommunities"] = large
        if len(lengths) > 1:
            # The shortest asked for; `bgplb validate` says if the pool is not made of
            # whole blocks of it.
            ad["aggregationLength"] = min(lengths)
        if ad:
            pool["advertisement"] = ad


def _unadvertised(docs: list[Mapping[str, Any]], out: Conversion) -> None:
    """Pools no BGPAdvertisement names: MetalLB does not announce them over BGP;
    bgplb announces every pool."""
    ads = [d.get("spec") or {} for d in docs if d.get("kind") == "BGPAdvertisement"]
    if any(not a.get("ipAddressPools") and not a.get("ipAddressPoolSelectors") for a in ads):
        return  # an advertisement of every pool
    named = {p for a in ads for p in a.get("ipAddressPools") or []}
    for doc in docs:
        if (
            doc.get("kind") == "IPAddressPool"
            and (doc.get("metadata") or {}).get("name") not in named
        ):
            out.warn(doc, "metadata.name",
                     "no BGPAdvertisement names this pool, so MetalLB does not announce it "
                     "over BGP; bgplb announces every pool")  # fmt: skip
