"""Which IP addresses the fetcher may connect to: an explicit table, whatever Python's says.

`ipaddress`'s `is_global` and `is_private` have changed between CPython patch releases, so an
address refused on one interpreter was fetched on another. The tables below mirror the IANA
registries instead, entry by entry:

- the IANA IPv4 Special-Purpose Address Registry and the IANA IPv6 Special-Purpose Address
  Registry (RFC 6890 and the RFCs named per entry): every block whose "Globally Reachable" is
  False (or N/A: deprecated and tunnelling blocks) is refused, and the more specific entries
  marked True inside them are allowed again;
- the IANA IPv4 Multicast Address Space Registry (RFC 5771): multicast is never an image host;
- the IANA IPv6 Address Space Registry (RFC 4291): only 2000::/3 is global unicast; the rest is
  reserved by the IETF, unique local, link-local, site-local (deprecated) or multicast.

The most specific matching block decides. An address in no block is public.
"""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


@dataclass(frozen=True)
class Block:
    """One registry entry: its network, what to call it ("a loopback"), and its reference."""

    network: IPNetwork
    kind: str | None  # None: globally reachable, although inside a refused block
    reference: str


def _block(cidr: str, kind: str | None, reference: str) -> Block:
    return Block(ipaddress.ip_network(cidr), kind, reference)


REFUSED_IPV4 = (
    # IANA IPv4 Special-Purpose Address Registry, entries with Globally Reachable = False.
    _block("0.0.0.0/8", "a 'this network'", "RFC 791"),
    _block("0.0.0.0/32", "an unspecified", "RFC 1122"),
    _block("10.0.0.0/8", "a private", "RFC 1918"),
    _block("100.64.0.0/10", "a shared (carrier-grade NAT)", "RFC 6598"),
    _block("127.0.0.0/8", "a loopback", "RFC 1122"),
    _block("169.254.0.0/16", "a link-local", "RFC 3927"),
    _block("172.16.0.0/12", "a private", "RFC 1918"),
    _block("192.0.0.0/24", "an IETF protocol assignments", "RFC 6890"),
    _block("192.0.0.0/29", "an IPv4 service continuity", "RFC 7335"),
    _block("192.0.0.8/32", "an IPv4 dummy", "RFC 7600"),
    _block("192.0.0.170/32", "a NAT64/DNS64 discovery", "RFC 8880"),
    _block("192.0.0.171/32", "a NAT64/DNS64 discovery", "RFC 8880"),
    _block("192.0.2.0/24", "a documentation (TEST-NET-1)", "RFC 5737"),
    _block("192.88.99.0/24", "a deprecated 6to4 relay anycast", "RFC 7526"),
    _block("192.168.0.0/16", "a private", "RFC 1918"),
    _block("198.18.0.0/15", "a benchmarking", "RFC 2544"),
    _block("198.51.100.0/24", "a documentation (TEST-NET-2)", "RFC 5737"),
    _block("203.0.113.0/24", "a documentation (TEST-NET-3)", "RFC 5737"),
    _block("240.0.0.0/4", "a reserved", "RFC 1112"),
    _block("255.255.255.255/32", "a limited broadcast", "RFC 919"),
    # IANA IPv4 Multicast Address Space Registry.
    _block("224.0.0.0/4", "a multicast", "RFC 5771"),
)
ALLOWED_IPV4 = (
    # Globally reachable entries inside 192.0.0.0/24.
    _block("192.0.0.9/32", None, "RFC 7723: Port Control Protocol anycast"),
    _block("192.0.0.10/32", None, "RFC 8155: TURN anycast"),
)
REFUSED_IPV6 = (
    # IANA IPv6 Address Space Registry: everything outside 2000::/3 (global unicast).
    _block("::/3", "a reserved", "RFC 4291"),
    _block("4000::/2", "a reserved", "RFC 4291"),
    _block("8000::/1", "a reserved", "RFC 4291"),
    _block("fc00::/7", "a private", "RFC 4193: unique local"),
    _block("fe80::/10", "a link-local", "RFC 4291"),
    _block("fec0::/10", "a site-local", "RFC 3879"),
    _block("ff00::/8", "a multicast", "RFC 4291"),
    # IANA IPv6 Special-Purpose Address Registry, entries with Globally Reachable = False or N/A.
    _block("::1/128", "a loopback", "RFC 4291"),
    _block("::/128", "an unspecified", "RFC 4291"),
    _block("::ffff:0:0/96", "an IPv4-mapped", "RFC 4291"),
    _block("64:ff9b:1::/48", "a local-use NAT64", "RFC 8215"),
    _block("100::/64", "a discard-only", "RFC 6666"),
    _block("100:0:0:1::/64", "a dummy", "RFC 9780"),
    _block("2001::/23", "an IETF protocol assignments", "RFC 2928"),
    _block("2001::/32", "a Teredo", "RFC 4380"),
    _block("2001:2::/48", "a benchmarking", "RFC 5180"),
    _block("2001:10::/28", "a deprecated ORCHID", "RFC 4843"),
    _block("2001:db8::/32", "a documentation", "RFC 3849"),
    _block("2002::/16", "a 6to4", "RFC 3056"),
    _block("3fff::/20", "a documentation", "RFC 9637"),
    _block("5f00::/16", "a segment routing (SRv6) SID", "RFC 9602"),
)
ALLOWED_IPV6 = (
    # Globally reachable entries inside refused blocks.
    _block("64:ff9b::/96", None, "RFC 6052: IPv4/IPv6 translation (judged by its IPv4)"),
    _block("2001:1::1/128", None, "RFC 7723: Port Control Protocol anycast"),
    _block("2001:1::2/128", None, "RFC 8155: TURN anycast"),
    _block("2001:1::3/128", None, "RFC 9665: DNS-SD service registration anycast"),
    _block("2001:3::/32", None, "RFC 7450: AMT"),
    _block("2001:4:112::/48", None, "RFC 7535: AS112-v6"),
    _block("2001:20::/28", None, "RFC 7343: ORCHIDv2"),
    _block("2001:30::/28", None, "RFC 9374: drone remote ID entity tags"),
)
_TABLES = {4: REFUSED_IPV4 + ALLOWED_IPV4, 6: REFUSED_IPV6 + ALLOWED_IPV6}


def refused_kind(address: IPAddress) -> str | None:
    """Name the non-public block address is in ("a loopback"), or None when it is public."""
    matches = [block for block in _TABLES[address.version] if address in block.network]
    if not matches:
        return None
    return max(matches, key=lambda block: block.network.prefixlen).kind
