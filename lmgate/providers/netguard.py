"""SSRF protection for URLs lmgate fetches or passes on: which hosts and addresses are refused.

A URL is refused when its host is a cloud-metadata name, or when ANY address it resolves to is
loopback, private, link-local, multicast, unspecified, reserved, shared (CGNAT) or otherwise not
public, looking through IPv4-mapped, 6to4, Teredo and NAT64 IPv6 forms. Hosts on the configured
allowlist skip the address checks (never the metadata checks). `GuardedResolver` plugs the same
checks into aiohttp, so a fetch connects only to the addresses that were checked: one DNS
lookup, no window for DNS rebinding.
"""

from __future__ import annotations

import asyncio
import fnmatch
import ipaddress
import re
import socket
from typing import Iterable

from aiohttp.abc import AbstractResolver, ResolveResult

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Instance-metadata services: refused even when allowlisted.
METADATA_HOSTS = frozenset(
    {"metadata.google.internal", "metadata.goog", "metadata", "instance-data", "instance-data.ec2.internal", "metadata.azure.com"}
)
METADATA_ADDRESSES = frozenset(
    ipaddress.ip_address(a)
    for a in ("169.254.169.254", "169.254.170.2", "169.254.169.253", "fd00:ec2::254", "fd00:ec2::23", "100.100.100.200", "192.0.0.192")
)
_CGNAT = ipaddress.ip_network("100.64.0.0/10")
_NAT64 = ipaddress.ip_network("64:ff9b::/96")
_NAT64_LOCAL = ipaddress.ip_network("64:ff9b:1::/48")
_SHORT_IPV4 = re.compile(r"^(0[xX][0-9a-fA-F]+|[0-9]+)(\.(0[xX][0-9a-fA-F]+|[0-9]+)){0,3}$")


class AddressRefused(OSError):
    """A host or address lmgate will not connect to (an OSError so aiohttp passes it through)."""


def ip_literal(host: str) -> IPAddress | None:
    """The address a URL host names literally, including the shorthand forms inet_aton accepts
    (`2130706433`, `0x7f.1`, `017700000001`), or None for a host name."""
    h = host.strip().rstrip(".")
    if h.startswith("[") and h.endswith("]"):
        h = h[1:-1]
    h = h.split("%", 1)[0]  # IPv6 zone id
    try:
        return ipaddress.ip_address(h)
    except ValueError:
        pass
    if _SHORT_IPV4.match(h):
        try:
            return ipaddress.IPv4Address(socket.inet_aton(h))
        except (OSError, ValueError):
            return None
    return None


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    out = []
    if ip.ipv4_mapped is not None:
        out.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        out.append(ip.sixtofour)
    if ip.teredo is not None:
        out.extend(ip.teredo)
    if ip in _NAT64 or ip in _NAT64_LOCAL:
        out.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    packed = ip.packed
    if packed[:12] == b"\x00" * 12 and ip != ipaddress.IPv6Address("::") and ip != ipaddress.IPv6Address("::1"):
        out.append(ipaddress.IPv4Address(packed[12:]))  # deprecated IPv4-compatible form ::a.b.c.d
    return out


def address_problem(ip: IPAddress) -> str | None:
    """Why lmgate refuses to connect to `ip`, or None for a public address."""
    if ip in METADATA_ADDRESSES:
        return "a cloud metadata address"
    if isinstance(ip, ipaddress.IPv6Address):
        for inner in _embedded_ipv4(ip):
            problem = address_problem(inner)
            if problem:
                return problem
    if ip.is_loopback:
        return "a loopback address"
    if ip.is_link_local:
        return "a link-local address"
    if ip.is_multicast:
        return "a multicast address"
    if ip.is_unspecified:
        return "an unspecified address"
    if isinstance(ip, ipaddress.IPv4Address) and ip in _CGNAT:
        return "a shared (CGNAT) address"
    if ip.is_private:
        return "a private address"
    if ip.is_reserved or not ip.is_global:
        return "a reserved address"
    return None


class HostGuard:
    """The allowlist and the checks, for one media policy."""

    __slots__ = ("_names", "_patterns", "_networks")

    def __init__(self, allow_hosts: Iterable[str] = ()) -> None:
        names, patterns, networks = set(), [], []
        for entry in allow_hosts:
            e = entry.strip().lower().rstrip(".")
            if not e:
                continue
            try:
                networks.append(ipaddress.ip_network(e.strip("[]"), strict=False))
                continue
            except ValueError:
                pass
            if "*" in e:
                patterns.append(e)
            else:
                names.add(e)
        self._names = frozenset(names)
        self._patterns = tuple(patterns)
        self._networks = tuple(networks)

    def allowlisted(self, host: str, ip: IPAddress | None = None) -> bool:
        h = host.strip().lower().rstrip(".").strip("[]")
        if h in self._names or any(fnmatch.fnmatchcase(h, p) for p in self._patterns):
            return True
        if ip is not None:
            return any(ip in n for n in self._networks if n.version == ip.version)
        return False

    def check_name(self, host: str) -> IPAddress | None:
        """Refuse metadata names and non-public literal addresses; return the literal, if any."""
        h = host.strip().lower().rstrip(".")
        if not h:
            raise AddressRefused("the URL has no host")
        if h in METADATA_HOSTS:
            raise AddressRefused(f"the host {host!r} is a cloud metadata service")
        ip = ip_literal(h)
        if ip is not None:
            if ip in METADATA_ADDRESSES:
                raise AddressRefused(f"the address {ip} is a cloud metadata service")
            if not self.allowlisted(h, ip):
                problem = address_problem(ip)
                if problem:
                    raise AddressRefused(f"the address {ip} is {problem}")
        return ip

    def check_addresses(self, host: str, addresses: Iterable[IPAddress]) -> None:
        """Every address a host resolved to must be acceptable (one bad address refuses the host)."""
        allow_name = self.allowlisted(host)
        for ip in addresses:
            if ip in METADATA_ADDRESSES:
                raise AddressRefused(f"the host {host!r} resolves to a cloud metadata address")
            if allow_name or self.allowlisted(host, ip):
                continue
            problem = address_problem(ip)
            if problem:
                raise AddressRefused(f"the host {host!r} resolves to {ip}, {problem}")

    async def resolve(self, host: str, port: int, family: int = socket.AF_UNSPEC) -> list[tuple[int, int, IPAddress]]:
        """Resolve once and check every address: [(family, proto, address)]."""
        literal = self.check_name(host)
        if literal is not None:
            fam = socket.AF_INET6 if literal.version == 6 else socket.AF_INET
            return [(fam, socket.IPPROTO_TCP, literal)]
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family)
        except socket.gaierror as exc:
            raise OSError(f"the host {host!r} could not be resolved") from exc
        found: list[tuple[int, int, IPAddress]] = []
        for fam, _, proto, _, sockaddr in infos:
            ip = ipaddress.ip_address(str(sockaddr[0]).split("%", 1)[0])
            found.append((fam, proto, ip))
        if not found:
            raise OSError(f"the host {host!r} has no address")
        self.check_addresses(host, (ip for _, _, ip in found))
        return found


class GuardedResolver(AbstractResolver):
    """aiohttp resolver that returns only checked addresses, so connections go nowhere else."""

    def __init__(self, guard: HostGuard) -> None:
        self.guard = guard

    async def resolve(self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET) -> list[ResolveResult]:
        found = await self.guard.resolve(host, port, family)
        flags = socket.AI_NUMERICHOST | socket.AI_NUMERICSERV
        return [
            ResolveResult(hostname=host, host=str(ip), port=port, family=fam, proto=proto, flags=flags) for fam, proto, ip in found
        ]

    async def close(self) -> None:
        return None
