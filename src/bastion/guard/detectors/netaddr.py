"""Where a URL really points: host extraction and the loose IP forms SSRF payloads use (`2130706433`, `0177.1`,
`0x7f.0.0.1`, `[::ffff:127.0.0.1]`, `127.0.0.1.nip.io`).

Pure string work, no DNS: a name that only resolves to a private address at request time (DNS rebinding through an
arbitrary domain) cannot be seen here; wildcard-DNS services that embed the address in the name can.
"""

from __future__ import annotations

import ipaddress
import re
from typing import Final

METADATA_HOSTS: Final = frozenset(
    {
        "169.254.169.254",
        "169.254.170.2",
        "metadata.google.internal",
        "metadata.goog",
        "metadata",
        "100.100.100.200",
        "fd00:ec2::254",
        "instance-data",
        "instance-data.ec2.internal",
        "metadata.azure.internal",
        "169.254.169.123",
        "rancher-metadata",
        "metadata.packet.net",
        "metadata.platformequinix.com",
    }
)
"""Cloud instance-metadata endpoints (AWS, GCP, Azure, Alibaba, OpenStack, DigitalOcean, Hetzner): credentials live
there."""

LOOPBACK_NAMES: Final = frozenset(
    {
        "localhost",
        "localhost.localdomain",
        "ip6-localhost",
        "ip6-loopback",
        "localtest.me",
        "lvh.me",
        "vcap.me",
        "lacolhost.com",
    }
)
"""Names that resolve to loopback by convention or by public wildcard DNS."""

_REBIND: Final = re.compile(
    r"(?:^|[.-])((?:\d{1,3}[.-]){3}\d{1,3}|[0-9a-f]{8})\.(?:nip\.io|xip\.io|sslip\.io|traefik\.me|nip\.direct|1u\.ms|rbndr\.us|localtest\.me)$"
)
"""Wildcard-DNS services that answer with the address written in the name (DNS-rebinding and filter bypasses)."""

_HOST_CHARS: Final = re.compile(r"[\w.%-]*")
"""A host ends at the first character a host cannot hold (`http://127.0.0.1!/` targets 127.0.0.1)."""
_AUTHORITY: Final = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:(?://|\\\\)([^/?#\\\s]*)")


def url_host(url: str) -> str:
    """The host of a URL, lower-cased, without userinfo, port or brackets (`""` when there is none)."""
    m = _AUTHORITY.match(url.strip())
    if m is None:
        return ""
    authority = m.group(1)
    host = authority.rsplit("@", 1)[-1]
    if host.startswith("["):
        return host[1 : host.find("]")].lower() if "]" in host else host[1:].lower()
    host = _HOST_CHARS.match(host.split(":", 1)[0])
    return host.group(0).rstrip(".").lower() if host else ""


def loose_ipv4(host: str) -> ipaddress.IPv4Address | None:
    """`inet_aton` semantics: 1 to 4 parts, each decimal, octal (leading 0) or hex (0x)."""
    parts = host.split(".")
    if not 1 <= len(parts) <= 4 or not all(parts):
        return None
    values: list[int] = []
    for part in parts:
        p = part.lower()
        try:
            if p.startswith("0x"):
                values.append(int(p[2:] or "0", 16))
            elif len(p) > 1 and p.startswith("0"):
                values.append(int(p, 8))
            else:
                values.append(int(p, 10))
        except ValueError:
            return None
    *head, last = values
    if len(values) == 1:
        last &= (
            0xFFFFFFFF  # parsers that truncate: 7147006462 and 0x41414141A9FEA9FE both reach 169.254.169.254
        )
    if any(v > 255 for v in head) or last >= 256 ** (5 - len(values)):
        return None
    number = 0
    for v in head:
        number = number * 256 + v
    number = (number << (8 * (5 - len(values)))) + last
    return ipaddress.IPv4Address(number)


def host_address(host: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """The IP address a host literally names (any notation), or `None` for a DNS name."""
    if not host:
        return None
    address: ipaddress.IPv4Address | ipaddress.IPv6Address | None
    try:
        address = ipaddress.ip_address(host.split("%", 1)[0])
    except ValueError:
        address = loose_ipv4(host) if re.fullmatch(r"[0-9a-fA-Fx.]+", host) else None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address is None:
        m = _REBIND.search(host)
        if m is not None:
            embedded = m.group(1)
            if len(embedded) == 8 and "." not in embedded and "-" not in embedded:
                return ipaddress.IPv4Address(int(embedded, 16))
            return loose_ipv4(embedded.replace("-", "."))
    return address


def classify_host(host: str) -> str | None:
    """`metadata`, `loopback`, `private` (incl. link-local and reserved) or `None` for a public or unknown host."""
    if host in METADATA_HOSTS:
        return "metadata"
    if host in LOOPBACK_NAMES or host.endswith(".localhost"):
        return "loopback"
    address = host_address(host)
    if address is None:
        return "private" if host.endswith((".internal", ".local", ".lan", ".corp", ".home.arpa")) else None
    if str(address) in METADATA_HOSTS:
        return "metadata"
    if address.is_loopback or address.is_unspecified:
        return "loopback"
    if address.is_private or address.is_link_local or address.is_reserved or address.is_multicast:
        return "private"
    if isinstance(address, ipaddress.IPv4Address) and address in ipaddress.IPv4Network("100.64.0.0/10"):
        return "private"  # carrier-grade NAT space, also used by cloud internals
    return None
