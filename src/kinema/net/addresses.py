"""The rules a user-given URL must pass before anything connects to it.

http or https only, no user name or password, a well-formed host, and every address the host
resolves to must be public (or in a network the policy trusts). The answer names the addresses a
connection may go to, so that a DNS answer that changes between the check and the connection
(DNS rebinding) cannot steer it anywhere else.
"""

from __future__ import annotations

import re
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from ipaddress import IPv4Address, IPv4Network, IPv6Address, IPv6Network, ip_address
from typing import Final, TypeAlias

import httpx

from kinema.net.policy import FetchFailed, FetchPolicy, FetchRefused

IPAddress: TypeAlias = IPv4Address | IPv6Address
#: Looks a host name up and answers its addresses as text; raises OSError when it has none.
Resolver: TypeAlias = Callable[[str], Sequence[str]]


@dataclass(frozen=True, slots=True)
class CheckedTarget:
    """A URL that passed the policy, with the addresses its connection may go to."""

    url: httpx.URL  #: As given, without its fragment.
    addresses: tuple[IPAddress, ...]  #: Every one checked; tried in this order.
    server_name: str | None  #: The name for TLS (SNI and certificate); None when the URL names an address.

    @property
    def host_header(self) -> str:
        return self.url.netloc.decode("ascii")


def resolve_host(host: str) -> list[str]:
    """The addresses of a host name from the system resolver (``socket.getaddrinfo``), in its order."""
    answers = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    return list(dict.fromkeys(str(sockaddr[0]) for *_, sockaddr in answers))


# Blocks of the IANA special-purpose registries that are not globally reachable, plus multicast.
# Listed explicitly rather than trusting ipaddress's is_global alone: its tables changed between
# patch releases, and it calls multicast and 6to4 space global.
_NON_PUBLIC_IPV4: Final = tuple(
    IPv4Network(block)
    for block in (
        "0.0.0.0/8",  # "this network"; 0.0.0.0 reaches the local host on Linux
        "10.0.0.0/8",
        "100.64.0.0/10",  # shared address space (carrier-grade NAT)
        "127.0.0.0/8",
        "169.254.0.0/16",  # link-local, where cloud metadata services live
        "172.16.0.0/12",
        "192.0.0.0/24",  # IETF protocol assignments
        "192.0.2.0/24",  # documentation
        "192.88.99.0/24",  # 6to4 relay anycast, deprecated
        "192.168.0.0/16",
        "198.18.0.0/15",  # benchmarking
        "198.51.100.0/24",  # documentation
        "203.0.113.0/24",  # documentation
        "224.0.0.0/4",  # multicast
        "240.0.0.0/4",  # reserved, and broadcast
    )
)
#: The only IPv6 space allocated for global unicast; the rest (loopback, link- and site-local, unique
#: local, multicast, IPv4-compatible, discard, local-use NAT64, SRv6) is refused wholesale.
_GLOBAL_UNICAST_IPV6: Final = IPv6Network("2000::/3")
_NON_PUBLIC_IPV6: Final = tuple(
    IPv6Network(block)
    for block in (
        "2001::/23",  # IETF protocol assignments, Teredo (2001::/32) among them
        "2001:db8::/32",  # documentation
        "3fff::/20",  # documentation
    )
)
#: Prefixes that carry an IPv4 address in their last 32 bits; such an address is as public as that one.
_NAT64_WELL_KNOWN: Final = IPv6Network("64:ff9b::/96")
_SIX_TO_FOUR: Final = IPv6Network("2002::/16")


def is_public_address(address: IPAddress) -> bool:
    """Whether an address is globally reachable, so that fetching from it cannot reach our own network.

    An IPv6 address that embeds an IPv4 one (IPv4-mapped, NAT64, 6to4) is judged by the IPv4
    address, since that is where the packets end up.
    """
    if isinstance(address, IPv6Address):
        embedded = _embedded_ipv4(address)
        return _is_public_ipv6(address) if embedded is None else _is_public_ipv4(embedded)
    return _is_public_ipv4(address)


def _embedded_ipv4(address: IPv6Address) -> IPv4Address | None:
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if address in _NAT64_WELL_KNOWN:
        return IPv4Address(int(address) & 0xFFFF_FFFF)
    if address in _SIX_TO_FOUR:
        return address.sixtofour
    return None


def _is_public_ipv4(address: IPv4Address) -> bool:
    if any(address in block for block in _NON_PUBLIC_IPV4):
        return False
    # Belt and braces: whatever the running Python also knows to be special stays refused.
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_private)


def _is_public_ipv6(address: IPv6Address) -> bool:
    if address not in _GLOBAL_UNICAST_IPV6 or any(address in block for block in _NON_PUBLIC_IPV6):
        return False
    return address.is_global and not (address.is_multicast or address.is_reserved or address.is_private)


_SCHEMES: Final = frozenset({"http", "https"})
#: A host name as httpx hands it over: IDNA-encoded, so ASCII letters, digits, hyphens (and the
#: underscores some real names have), in non-empty labels, with an optional root dot.
_HOST_NAME: Final = re.compile(r"[a-z0-9_-]+(?:\.[a-z0-9_-]+)*\.?", re.IGNORECASE)
_IPV4_NUMBER: Final = re.compile(r"0x[0-9a-f]*|[0-9]+", re.IGNORECASE)


@dataclass(frozen=True, slots=True)
class WellFormedUrl:
    """A URL whose form passed the rules; its host not yet looked up."""

    url: httpx.URL  #: As given, without its fragment.
    address: IPAddress | None  #: The address the host names directly; None for a host name.


def check_url_syntax(url: str | httpx.URL, *, field: str, redirected: bool = False) -> WellFormedUrl:
    """The rules a URL's form must pass, without a lookup: what createTask checks at once.

    http or https, no user name or password, a port in range, and a host that is either an
    address (in any spelling browsers read) or a name DNS can hold (labels of 63 characters at
    most, 253 in all). Raises FetchRefused, in words that name `field`.
    """
    parsed = _parse_url(url, field, redirected)
    host = parsed.raw_host.decode("ascii")
    literal = _literal_address(host, field)
    if literal is None and not _is_host_name(host):
        raise FetchRefused(f"{field} has an invalid host name")
    return WellFormedUrl(parsed, literal)


def check_url(
    url: str | httpx.URL,
    policy: FetchPolicy,
    *,
    field: str,
    resolver: Resolver = resolve_host,
    redirected: bool = False,
) -> CheckedTarget:
    """Check a URL against the policy and resolve its host; the connection must go to one of the answers.

    Raises FetchRefused for what the policy forbids and FetchFailed when the host does not resolve.
    ``redirected`` words the messages for a URL that a server redirected to.
    """
    formed = check_url_syntax(url, field=field, redirected=redirected)
    host = formed.url.raw_host.decode("ascii")
    if formed.address is not None:
        addresses: tuple[IPAddress, ...] = (formed.address,)
        server_name = None
    else:
        addresses = _resolve(host, resolver, field)
        # SNI carries the name without the root dot (RFC 6066), and certificates are issued that way.
        server_name = host.removesuffix(".")
    if not policy.allow_private:
        for address in addresses:
            if not is_public_address(address) and not any(
                address in network for network in policy.trusted_networks
            ):
                verb = "redirects to" if redirected else "points to"
                raise FetchRefused(f"{field} {verb} a private or reserved address ({address})")
    return CheckedTarget(url=formed.url, addresses=addresses, server_name=server_name)


def _is_host_name(host: str) -> bool:
    name = host.removesuffix(".")
    return (
        len(name) <= 253
        and _HOST_NAME.fullmatch(host) is not None
        and all(len(label) <= 63 for label in name.split("."))
    )


def _parse_url(url: str | httpx.URL, field: str, redirected: bool) -> httpx.URL:
    _refuse_text_without_utf8(url, field, redirected)
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as error:
        what = "a redirect that is not" if redirected else "not"
        raise FetchRefused(f"{field} is {what} a valid URL ({_reason(error)})") from error
    if parsed.scheme not in _SCHEMES:
        if redirected:
            raise FetchRefused(f"{field} redirects to a URL that is not http or https")
        raise FetchRefused(f"{field} must be an http or https URL")
    if parsed.userinfo:
        # Credentials in a URL end up in logs and in the Authorization header of whatever it reaches.
        if redirected:
            raise FetchRefused(f"{field} redirects to a URL with a user name or password")
        raise FetchRefused(f"{field} must not contain a user name or password")
    if not _raw_host(parsed, field):
        raise FetchRefused(f"{field} has no host")
    port = parsed.port
    if port is not None and not 0 < port < 65536:
        raise FetchRefused(f"{field} has an invalid port ({port})")
    if isinstance(url, str) and "#" not in url:
        return parsed  # no fragment to take off (a copy costs as much as the parse)
    return parsed.copy_with(fragment=None)


def _reason(error: httpx.InvalidURL) -> str:
    """httpx's words for a URL it cannot read, printable, starting in lower case."""
    text = "".join(char if char.isprintable() else ascii(char)[1:-1] for char in str(error))
    return text[:1].lower() + text[1:]


def _literal_address(host: str, field: str) -> IPAddress | None:
    """The address a host names directly, in any form a browser or the C library reads; None for a name."""
    if ":" not in host:
        return _numeric_ipv4(host, field)
    # Only an IPv6 literal has colons; httpx has taken its brackets off. A zone index ("%eth0") names
    # an interface of ours, which no user-given URL has any business with.
    try:
        if "%" not in host:
            return IPv6Address(host)
    except ValueError:
        pass
    raise FetchRefused(f"{field} has an invalid IPv6 address ({host})")


def _numeric_ipv4(host: str, field: str) -> IPv4Address | None:
    """An IPv4 host written in numbers, read as browsers (the WHATWG URL standard) and inet_aton read it.

    ``2130706433``, ``0x7f.1``, ``127.1`` and ``017700000001`` all mean 127.0.0.1 to them. Reading them
    the same way here means the check sees the address a connection would go to, whatever resolver
    is in use. A host whose last label is a number but that is no valid address is refused, as
    browsers refuse it; any other host is a name (None).
    """
    parts = host.split(".")
    if len(parts) > 1 and not parts[-1]:
        parts.pop()
    if not _IPV4_NUMBER.fullmatch(parts[-1]):
        return None
    malformed = FetchRefused(f"{field} has a malformed numeric host ({host})")
    if len(parts) > 4 or not all(_IPV4_NUMBER.fullmatch(part) for part in parts):
        raise malformed
    try:
        numbers = [_ipv4_number(part) for part in parts]
    except ValueError:
        raise malformed from None
    *leading, last = numbers
    # The last number fills every byte that the leading ones (one byte each) leave.
    if any(number > 255 for number in leading) or last >= 256 ** (5 - len(numbers)):
        raise malformed
    value = last
    for position, number in enumerate(leading):
        value += number << (8 * (3 - position))
    return IPv4Address(value)


def _ipv4_number(part: str) -> int:
    if part[:2].lower() == "0x":
        return int(part[2:] or "0", 16)
    if len(part) > 1 and part.startswith("0"):
        return int(part, 8)  # raises ValueError on 8 or 9, which makes the host malformed
    return int(part)


def _resolve(host: str, resolver: Resolver, field: str) -> tuple[IPAddress, ...]:
    not_found = FetchFailed(f"{field} could not be reached: the host {host} was not found")
    try:
        answers = resolver(host)
    except (OSError, UnicodeError) as error:
        raise not_found from error
    try:
        addresses = tuple(dict.fromkeys(ip_address(answer) for answer in answers))
    except ValueError as error:
        raise not_found from error
    if not addresses:
        raise not_found
    return addresses


def _refuse_text_without_utf8(url: str | httpx.URL, field: str, redirected: bool) -> None:
    """Refuse text with no UTF-8 form, which httpx would fail on with a UnicodeError.

    A URL is percent-encoded as UTF-8, and a lone surrogate (a JSON body can carry one, as
    "\\udcff") has no such form: no URL can hold one.
    """
    if isinstance(url, str):
        try:
            url.encode("utf-8")
        except UnicodeEncodeError:
            what = "a redirect that is not" if redirected else "not"
            raise FetchRefused(f"{field} is {what} a valid URL (it holds text with no UTF-8 form)") from None


def _raw_host(parsed: httpx.URL, field: str) -> bytes:
    try:
        return parsed.raw_host
    except UnicodeError:
        # httpx keeps a bracketed host as written and encodes it only when asked: only an IPv6
        # zone index ("%eth0") in another script than ASCII gets here, refused as any zone is.
        raise FetchRefused(f"{field} has an invalid IPv6 address ({parsed.host})") from None
