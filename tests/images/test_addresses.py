"""The address table, range by range: every IANA special-purpose block that is not globally
reachable is refused at both ends, whatever this Python's `ipaddress` module says about it."""

from __future__ import annotations

import ipaddress

import pytest

from backend.images.addresses import (
    ALLOWED_IPV4,
    ALLOWED_IPV6,
    REFUSED_IPV4,
    REFUSED_IPV6,
    refused_kind,
)

REFUSED = REFUSED_IPV4 + REFUSED_IPV6
ALLOWED = ALLOWED_IPV4 + ALLOWED_IPV6


def ends(network) -> list:
    return [network.network_address, network.broadcast_address]


@pytest.mark.parametrize("block", REFUSED, ids=[str(block.network) for block in REFUSED])
def test_every_refused_block_is_refused_at_both_ends(block):
    for address in ends(block.network):
        kind = refused_kind(address)
        assert kind is not None, f"{address} ({block.reference}) was allowed"
        allowed_inside = [a for a in ALLOWED if address in a.network]
        assert not allowed_inside


@pytest.mark.parametrize("block", ALLOWED, ids=[str(block.network) for block in ALLOWED])
def test_globally_reachable_entries_inside_refused_blocks_are_allowed(block):
    for address in ends(block.network):
        assert refused_kind(address) is None


@pytest.mark.parametrize(
    ("address", "kind"),
    [
        ("192.0.0.8", "an IPv4 dummy"),
        ("192.0.0.100", "an IETF protocol assignments"),
        ("192.0.0.171", "a NAT64/DNS64 discovery"),
        ("192.88.99.1", "a deprecated 6to4 relay anycast"),
        ("198.19.255.255", "a benchmarking"),
        ("0.1.2.3", "a 'this network'"),
        ("255.255.255.255", "a limited broadcast"),
        ("239.255.255.250", "a multicast"),
        ("5f00::1", "a segment routing (SRv6) SID"),
        ("3fff::1", "a documentation"),
        ("100:0:0:1::1", "a dummy"),
        ("100::1", "a discard-only"),
        ("2001:2::1", "a benchmarking"),
        ("2001:10::1", "a deprecated ORCHID"),
        ("2001:5::1", "an IETF protocol assignments"),
        ("2002:808:808::1", "a 6to4"),
        ("4000::1", "a reserved"),
        ("fec0::1", "a site-local"),
    ],
)
def test_blocks_older_pythons_call_global_are_refused_by_name(address, kind):
    assert refused_kind(ipaddress.ip_address(address)) == kind


@pytest.mark.parametrize(
    "address",
    [
        "8.8.8.8",
        "1.1.1.1",
        "192.0.0.9",
        "192.0.0.10",
        "192.31.196.1",
        "192.175.48.1",
        "100.63.255.255",
        "100.128.0.0",
        "172.32.0.0",
        "2606:4700::1111",
        "2a00:1450::1",
        "2001:1::1",
        "2001:3::1",
        "2001:4:112::1",
        "2001:20::1",
        "2001:30::1",
        "2620:4f:8000::1",
    ],
)
def test_public_addresses_are_allowed(address):
    assert refused_kind(ipaddress.ip_address(address)) is None


def test_the_table_decides_where_this_python_disagrees():
    # Whatever the interpreter's tables say, the registries decide: on the Python these were
    # written against, ipaddress calls 192.0.0.8 global and 2001:30::1 (drone IDs) private.
    for address, refused in [("192.0.0.8", True), ("5f00::1", True), ("2001:30::1", False)]:
        assert (refused_kind(ipaddress.ip_address(address)) is not None) is refused
