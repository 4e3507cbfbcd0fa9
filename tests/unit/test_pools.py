from __future__ import annotations

from ipaddress import IPv4Address

import pytest

from bgplb.api import AddressPool
from bgplb.api.bgploadbalancer import PoolEntryError, parse_pool_entry
from bgplb.core.pools import Pool


def ip(text: str) -> int:
    return int(IPv4Address(text))


def test_parse_entries() -> None:
    assert parse_pool_entry("203.0.113.1-203.0.113.4") == (ip("203.0.113.1"), ip("203.0.113.4"))
    assert parse_pool_entry("203.0.113.0/30") == (ip("203.0.113.0"), ip("203.0.113.3"))
    assert parse_pool_entry("203.0.113.7/32") == (ip("203.0.113.7"), ip("203.0.113.7"))
    with pytest.raises(PoolEntryError, match="IPv6"):
        parse_pool_entry("2001:db8::/126")
    with pytest.raises(PoolEntryError, match="ends before it starts"):
        parse_pool_entry("203.0.113.4-203.0.113.1")


def test_overlapping_entries_merge_and_lowest_free_skips_used() -> None:
    pool = Pool.from_api(
        AddressPool(name="a", addresses=["203.0.113.2-203.0.113.5", "203.0.113.0/30"])
    )
    assert pool.ranges == ((ip("203.0.113.0"), ip("203.0.113.5")),)
    assert pool.lowest_free({ip("203.0.113.0"), ip("203.0.113.1")}) == ip("203.0.113.2")
    assert pool.lowest_free(set(range(ip("203.0.113.0"), ip("203.0.113.6")))) is None


def test_avoid_buggy_ips() -> None:
    pool = Pool.from_api(
        AddressPool(name="a", addresses=["198.51.100.255-198.51.101.1"], avoid_buggy_ips=True)
    )
    assert [str(IPv4Address(a)) for a in pool.addresses()] == ["198.51.101.1"]
    assert ip("198.51.101.0") not in pool
    assert ip("198.51.101.1") in pool
