"""Fuzz the URL rules: any text is accepted or refused with InvalidInput, never another exception.

The first byte picks the policy (private addresses allowed or not, a trusted network or none,
the message worded for a redirect) and what the fake resolver answers; the rest is the URL. A
URL that passes must keep the promises `CheckedTarget` makes: http or https, no credentials, a
Host header in ASCII, and only public or trusted addresses unless private ones are allowed.
Seeds: the URLs and addresses of the address rules' tests.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence
from ipaddress import IPv4Network, ip_address

from fuzz.harness import instrumented, run

with instrumented():
    from kinema.domain.errors import InvalidInput
    from kinema.net.addresses import check_url, is_public_address
    from kinema.net.policy import FetchPolicy

POLICIES = (
    FetchPolicy(),
    FetchPolicy(allow_private=True),
    FetchPolicy(trusted_networks=(IPv4Network("10.20.0.0/16"),)),
)
#: What a host name resolves to, by the fuzzer's choice: public, private, trusted, mixed, odd.
ANSWERS: tuple[Sequence[str], ...] = (
    ("93.184.215.14",),
    ("127.0.0.1",),
    ("10.20.1.2",),
    ("8.8.8.8", "169.254.169.254"),
    ("2606:4700::1111", "::ffff:127.0.0.1"),
    ("fe80::1%eth0",),
    ("not an address",),
    (),
)


def fuzz_one(data: bytes) -> None:
    if not data:
        return
    choice, url = data[0], data[1:].decode("utf-8", "surrogateescape")
    policy = POLICIES[choice % len(POLICIES)]
    answers = ANSWERS[(choice // len(POLICIES)) % len(ANSWERS)]
    redirected = choice >= 128

    def resolver(host: str) -> Sequence[str]:
        if choice & 64:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return answers

    try:
        target = check_url(url, policy, field="input.image_url", resolver=resolver, redirected=redirected)
    except InvalidInput:
        return
    if target.url.scheme not in ("http", "https") or target.url.userinfo:
        raise AssertionError(f"{url!r} passed as {target.url}")
    target.host_header.encode("ascii")
    if not target.addresses:
        raise AssertionError(f"{url!r} passed with no address to connect to")
    for address in target.addresses:
        allowed = policy.allow_private or is_public_address(address)
        allowed = allowed or any(address in network for network in policy.trusted_networks)
        if not allowed:
            raise AssertionError(f"{url!r} passed with the non-public address {address}")
        ip_address(str(address))


def seeds() -> list[bytes]:
    from tests.unit.test_fetch_addresses import NON_PUBLIC, PUBLIC, REFUSED_WITHOUT_LOOKUP

    urls = [url for url, _ in REFUSED_WITHOUT_LOOKUP]
    urls += [
        "https://images.example:8443/a/cat.png?size=1#top",
        "http://bücher.example/",
        "http://localhost/",
    ]
    for address in [address for address, _ in NON_PUBLIC] + PUBLIC:
        urls.append(f"http://[{address}]/" if ":" in address else f"https://{address}:443/x")
    return [bytes([index % 256]) + url.encode("utf-8", "surrogatepass") for index, url in enumerate(urls)]


if __name__ == "__main__":
    run("url_rules", fuzz_one, seeds())
