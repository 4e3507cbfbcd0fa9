"""Address pools as integer ranges, and the lowest-free-address search over them."""

from __future__ import annotations

from collections.abc import Container, Iterator, Mapping
from dataclasses import dataclass

from bgplb.api.bgploadbalancer import AddressPool, Advertisement, parse_pool_entry
from bgplb.core.attributes import NONE, Attributes


@dataclass(frozen=True, slots=True)
class Pool:
    """A parsed AddressPool: sorted, merged integer ranges."""

    name: str
    ranges: tuple[tuple[int, int], ...]
    avoid_buggy_ips: bool
    manual_assign: bool
    priority: int | None = None
    namespaces: frozenset[str] = frozenset()
    """Empty: any namespace."""
    service_selector: tuple[tuple[str, str], ...] = ()
    """Empty: any Service."""
    namespace_selector: tuple[tuple[str, str], ...] = ()
    """Empty: any namespace."""
    attributes: Attributes = NONE
    """What its VIPs are announced with."""
    aggregation_length: int = 32
    """Its VIPs are announced as the /N block holding them (Cluster policy only)."""
    peer_selector: tuple[tuple[str, str], ...] | None = None
    """Labels of the data-plane peers that announce its VIPs (None: every one)."""

    def announced_by(self, peers: Mapping[str, Mapping[str, str]]) -> tuple[str, ...] | None:
        """The names of the `peers` (name → labels) that announce its VIPs (None: all)."""
        if self.peer_selector is None:
            return None
        wanted = dict(self.peer_selector).items()
        return tuple(sorted(name for name, labels in peers.items() if wanted <= labels.items()))

    @classmethod
    def from_api(cls, pool: AddressPool) -> Pool:
        ranges = [parse_pool_entry(entry) for entry in pool.addresses]
        scope = pool.service_allocation
        return cls(
            pool.name,
            _merge(ranges),
            pool.avoid_buggy_ips,
            pool.manual_assign,
            priority=scope.priority if scope else None,
            namespaces=frozenset(scope.namespaces) if scope else frozenset(),
            service_selector=tuple(sorted(scope.service_selector.items())) if scope else (),
            namespace_selector=tuple(sorted(scope.namespace_selector.items())) if scope else (),
            attributes=_attributes(pool.advertisement),
            aggregation_length=(
                pool.advertisement.aggregation_length if pool.advertisement else 32
            ),
            peer_selector=_selector(pool.advertisement),
        )

    def refuses(
        self,
        namespace: str,
        labels: Mapping[str, str],
        namespace_labels: Mapping[str, str] | None = None,
    ) -> str | None:
        """Why a Service in `namespace` with `labels` may not have an address from this
        pool (None: it may). `namespace_labels` None: not known (the namespace not read
        yet, or not readable), which refuses nothing: a cache gap must not take a
        VIP away."""
        if self.namespaces and namespace not in self.namespaces:
            allowed = ", ".join(sorted(self.namespaces))
            return f"address pool {self.name!r} serves namespaces {allowed} only"
        if self.namespace_selector and namespace_labels is not None:
            selector = self.namespace_selector
            absent = [f"{k}={v}" for k, v in selector if namespace_labels.get(k) != v]
            if absent:
                return (
                    f"address pool {self.name!r} serves namespaces labelled "
                    f"{', '.join(absent)} only"
                )
        missing = [f"{k}={v}" for k, v in self.service_selector if labels.get(k) != v]
        if missing:
            return f"address pool {self.name!r} serves Services labelled {', '.join(missing)} only"
        return None

    @property
    def order(self) -> tuple[bool, int]:
        """Sort key: pools with a priority first, lowest first."""
        return (self.priority is None, self.priority or 0)

    def __contains__(self, address: int) -> bool:
        if self.avoid_buggy_ips and address & 0xFF in (0, 0xFF):
            return False
        return any(first <= address <= last for first, last in self.ranges)

    def addresses(self, start: int = 0) -> Iterator[int]:
        """Every usable address of the pool at or after `start`, ascending."""
        for first, last in self.ranges:
            for address in range(max(first, start), last + 1):
                if self.avoid_buggy_ips and address & 0xFF in (0, 0xFF):
                    continue
                yield address

    def lowest_free(self, used: Container[int], start: int = 0) -> int | None:
        for address in self.addresses(start):
            if address not in used:
                return address
        return None


def _merge(ranges: list[tuple[int, int]]) -> tuple[tuple[int, int], ...]:
    merged: list[tuple[int, int]] = []
    for first, last in sorted(ranges):
        if merged and first <= merged[-1][1] + 1:
            merged[-1] = (merged[-1][0], max(merged[-1][1], last))
        else:
            merged.append((first, last))
    return tuple(merged)


def _attributes(advertisement: Advertisement | None) -> Attributes:
    if advertisement is None:
        return NONE
    return Attributes.parse(
        advertisement.communities,
        advertisement.large_communities,
        advertisement.as_path_prepend,
        advertisement.med,
    )


def _selector(advertisement: Advertisement | None) -> tuple[tuple[str, str], ...] | None:
    if advertisement is None or advertisement.peer_selector is None:
        return None
    return tuple(sorted(advertisement.peer_selector.items()))
