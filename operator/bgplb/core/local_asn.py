"""The cluster's own ASN when the BGPLoadBalancer does not say it.

The seed's third example writes a BGPLoadBalancer with only `peerSelector`: its
ASN lives in the Anthos Cluster object, which bgplb has no copy of. The BGPPeers it
selects each carry `localASN` (the seed requires it), so when they agree that is
the cluster's ASN; when none is selected, or they disagree, there is no
unambiguous answer and the error names the field to set.
"""

from __future__ import annotations

from collections.abc import Iterable

from bgplb.api import BGPLoadBalancerSpec
from bgplb.core.snapshot import Peer


def selected(spec: BGPLoadBalancerSpec, peers: Iterable[Peer]) -> list[Peer]:
    """The BGPPeers `spec.peerSelector` picks (none without a selector)."""
    if spec.peer_selector is None:
        return []
    wanted = spec.peer_selector.items()
    return sorted((p for p in peers if wanted <= p.labels.items()), key=lambda p: p.name)


def local_asn_of(spec: BGPLoadBalancerSpec, peers: Iterable[Peer]) -> int | str:
    """The ASN, or why it cannot be known (a message for `spec.localASN`)."""
    if spec.local_asn is not None:
        return spec.local_asn
    chosen = selected(spec, peers)
    asns = sorted({p.spec.local_asn for p in chosen})
    if len(asns) == 1:
        return asns[0]
    if not chosen:
        where = (
            "no spec.peerSelector"
            if spec.peer_selector is None
            else ("spec.peerSelector selects no BGPPeer")
        )
        return f"required: {where} to take it from"
    found = ", ".join(f"{p.name}: {p.spec.local_asn}" for p in chosen)
    return f"required: the BGPPeers spec.peerSelector selects disagree ({found})"
