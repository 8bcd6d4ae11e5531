"""What a fetch may reach and how much it may take, and the two ways a fetch fails."""

from __future__ import annotations

from dataclasses import dataclass
from ipaddress import IPv4Network, IPv6Network
from typing import TypeAlias

from kinema.domain.errors import InvalidInput

IPNetwork: TypeAlias = IPv4Network | IPv6Network


class FetchRefused(InvalidInput):
    """The URL is one the policy forbids: not http(s), with credentials, or at a non-public address."""


class FetchFailed(InvalidInput):
    """The URL was allowed but the transfer did not succeed (DNS, connection, timeout, status, size)."""


@dataclass(frozen=True, slots=True)
class FetchPolicy:
    """What a fetch may reach and how much it may take."""

    #: Skip the address checks (development, or a deployment that fetches from its own network);
    #: the URL checks (scheme, credentials, host) still apply.
    allow_private: bool = False
    max_bytes: int = 10 * 1024 * 1024
    max_redirects: int = 3
    connect_timeout_s: float = 5.0  #: For each connection attempt, TLS handshake included.
    total_timeout_s: float = 30.0  #: For the whole download, every redirect and the body included.
    #: Non-public networks fetched from all the same (an internal image store); any other address
    #: must be public.
    trusted_networks: tuple[IPNetwork, ...] = ()

    def __post_init__(self) -> None:
        if self.max_bytes <= 0 or self.max_redirects < 0:
            raise ValueError("max_bytes must be positive and max_redirects not negative")
        if self.connect_timeout_s <= 0 or self.total_timeout_s <= 0:
            raise ValueError("timeouts must be positive")
