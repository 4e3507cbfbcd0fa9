"""Address pools as integer ranges, and the lowest-free-address search over them."""

from __future__ import annotations

from collections.abc import Container, Iterator
from dataclasses import dataclass

from bgplb.api.bgploadbalancer import AddressPool, parse_pool_entry


@dataclass(frozen=True, slots=True)
class Pool:
    """A parsed AddressPool: sorted, merged integer ranges."""

    name: str
    ranges: tuple[tuple[int, int], ...]
    avoid_buggy_ips: bool
    manual_assign: bool

    @classmethod
    def from_api(cls, pool: AddressPool) -> Pool:
        ranges = [parse_pool_entry(entry) for entry in pool.addresses]
        return cls(pool.name, _merge(ranges), pool.avoid_buggy_ips, pool.manual_assign)

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
