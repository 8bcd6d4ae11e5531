"""SSRF checks without a network: which addresses are public, which URLs are refused before connecting."""

from __future__ import annotations

import socket
from collections.abc import Sequence
from ipaddress import IPv4Address, IPv6Address, ip_address, ip_network

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kinema.domain.errors import InvalidInput
from kinema.net.addresses import CheckedTarget, check_url, is_public_address
from kinema.net.policy import FetchFailed, FetchPolicy, FetchRefused

FIELD = "input.image_url"
STRICT = FetchPolicy()

NON_PUBLIC = [
    ("127.0.0.1", "loopback"),
    ("127.255.255.254", "loopback, anywhere in 127/8"),
    ("0.0.0.0", "unspecified"),
    ("0.1.2.3", "this network"),
    ("10.0.0.1", "private"),
    ("172.16.0.1", "private"),
    ("172.31.255.255", "private"),
    ("192.168.1.1", "private"),
    ("169.254.169.254", "link-local: cloud metadata"),
    ("100.64.0.1", "shared address space (CGNAT)"),
    ("100.127.255.254", "shared address space (CGNAT)"),
    ("192.0.0.8", "IETF protocol assignments"),
    ("192.0.2.1", "documentation"),
    ("198.51.100.7", "documentation"),
    ("203.0.113.9", "documentation"),
    ("198.18.0.1", "benchmarking"),
    ("192.88.99.1", "6to4 relay anycast"),
    ("224.0.0.1", "multicast"),
    ("239.255.255.250", "multicast (SSDP)"),
    ("240.0.0.1", "reserved"),
    ("255.255.255.255", "broadcast"),
    ("::1", "IPv6 loopback"),
    ("::", "IPv6 unspecified"),
    ("::ffff:127.0.0.1", "IPv4-mapped loopback"),
    ("::ffff:10.0.0.1", "IPv4-mapped private"),
    ("::ffff:169.254.169.254", "IPv4-mapped metadata"),
    ("::127.0.0.1", "IPv4-compatible loopback"),
    ("::8.8.8.8", "IPv4-compatible (deprecated), even of a public address"),
    ("fe80::1", "IPv6 link-local"),
    ("fec0::1", "IPv6 site-local (deprecated)"),
    ("fc00::1", "unique local"),
    ("fd12:3456:789a::1", "unique local"),
    ("ff02::1", "IPv6 multicast"),
    ("100::1", "discard prefix"),
    ("2001:db8::1", "IPv6 documentation"),
    ("3fff::1", "IPv6 documentation (RFC 9637)"),
    ("2001:10::1", "ORCHID"),
    ("2001:0:4136:e378:8000:63bf:3fff:fdd2", "Teredo"),
    ("2001:0:4136:e378:8000:63bf:80ff:fffe", "Teredo whose client is 127.0.0.1"),
    ("2002:7f00:1::", "6to4 of 127.0.0.1"),
    ("2002:a00:1::1", "6to4 of 10.0.0.1"),
    ("2002:a9fe:a9fe::", "6to4 of 169.254.169.254"),
    ("64:ff9b::7f00:1", "NAT64 of 127.0.0.1"),
    ("64:ff9b::a9fe:a9fe", "NAT64 of 169.254.169.254"),
    ("64:ff9b:1::808:808", "local-use NAT64 prefix"),
    ("5f00::1", "SRv6 SIDs"),
]

PUBLIC = [
    "8.8.8.8",
    "1.1.1.1",
    "93.184.215.14",
    "100.63.255.255",  # just below the shared space
    "100.128.0.0",  # just above it
    "172.32.0.1",  # just above 172.16/12
    "2606:4700::1111",
    "2a00:1450:4001:82b::200e",
    "::ffff:8.8.8.8",  # IPv4-mapped public
    "64:ff9b::808:808",  # NAT64 of a public address, as DNS64 networks answer for IPv4-only hosts
    "2002:808:808::1",  # 6to4 of a public address
]


@pytest.mark.parametrize(("address", "why"), NON_PUBLIC, ids=[address for address, _ in NON_PUBLIC])
def test_non_public_addresses_are_refused(address: str, why: str) -> None:
    assert not is_public_address(ip_address(address)), why


@pytest.mark.parametrize("address", PUBLIC)
def test_public_addresses_are_allowed(address: str) -> None:
    assert is_public_address(ip_address(address))


class FakeResolver:
    """Answers from a table and records what was asked; an unknown name does not resolve."""

    def __init__(self, answers: dict[str, Sequence[str]]) -> None:
        self.answers = answers
        self.asked: list[str] = []

    def __call__(self, host: str) -> Sequence[str]:
        self.asked.append(host)
        if host not in self.answers:
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return self.answers[host]


def nothing_resolves(host: str) -> Sequence[str]:
    raise AssertionError(f"the resolver must not be asked about {host}")


# (url, what the refusal says)
REFUSED_WITHOUT_LOOKUP = [
    ("file:///etc/passwd", "input.image_url must be an http or https URL"),
    ("ftp://images.example/cat.png", "input.image_url must be an http or https URL"),
    ("gopher://images.example:70/_GET", "input.image_url must be an http or https URL"),
    ("data:image/png;base64,iVBORw0KGgo=", "input.image_url must be an http or https URL"),
    ("javascript:alert(1)", "input.image_url must be an http or https URL"),
    ("//images.example/cat.png", "input.image_url must be an http or https URL"),
    ("cat.png", "input.image_url must be an http or https URL"),
    ("http://user:pass@images.example/", "input.image_url must not contain a user name or password"),
    ("http://user@images.example/", "input.image_url must not contain a user name or password"),
    ("http:///cat.png", "input.image_url has no host"),
    ("http://", "input.image_url has no host"),
    ("http://images.example:99999/", "input.image_url has an invalid port (99999)"),
    ("http://%31%32%37.0.0.1/", "input.image_url has a malformed numeric host (%31%32%37.0.0.1)"),
    ("http://%6c%6f%63%61%6c%68%6f%73%74/", "input.image_url has an invalid host name"),
    ("http://a b/", "input.image_url has an invalid host name"),
    # httpx reads four dotted numbers itself, more strictly than the C library: refused all the same.
    ("http://256.1.1.1/", "input.image_url is not a valid URL"),
    ("http://0177.0.0.01/", "input.image_url is not a valid URL"),
    ("http://1.2.3.256/", "input.image_url is not a valid URL"),
    # A lone surrogate (JSON's "\udcff") has no UTF-8 form, so no URL can hold it.
    ("http://images.example/\udcff.png", "input.image_url is not a valid URL"),
    ("http://images.example/?q=\ud800", "input.image_url is not a valid URL"),
    ("http://\udcff.example/", "input.image_url is not a valid URL"),
    ("http://[fe80::1%25et\udcff]/", "input.image_url is not a valid URL"),
    ("http://1.2.3.4.5/", "input.image_url has a malformed numeric host (1.2.3.4.5)"),
    ("http://1.2.65536/", "input.image_url has a malformed numeric host (1.2.65536)"),
    ("http://4294967296/", "input.image_url has a malformed numeric host (4294967296)"),
    ("http://09.1.1/", "input.image_url has a malformed numeric host (09.1.1)"),
    ("http://1..1/", "input.image_url has a malformed numeric host (1..1)"),
    ("http://[fe80::1%25eth0]/", "input.image_url has an invalid IPv6 address (fe80::1%25eth0)"),
    ("http://[fe80::1%25et\u00e9]/", "input.image_url has an invalid IPv6 address (fe80::1%25et\u00e9)"),
    # Addresses named directly, in every spelling the C library or a browser accepts.
    ("http://127.0.0.1/", "input.image_url points to a private or reserved address (127.0.0.1)"),
    ("http://127.0.0.1./", "input.image_url points to a private or reserved address (127.0.0.1)"),
    ("http://2130706433/", "input.image_url points to a private or reserved address (127.0.0.1)"),
    ("http://0x7f.1/", "input.image_url points to a private or reserved address (127.0.0.1)"),
    ("http://0X7F000001/", "input.image_url points to a private or reserved address (127.0.0.1)"),
    ("http://017700000001/", "input.image_url points to a private or reserved address (127.0.0.1)"),
    ("http://0177.1/", "input.image_url points to a private or reserved address (127.0.0.1)"),
    ("http://0x7f.0.0.0x1/", "input.image_url points to a private or reserved address (127.0.0.1)"),
    ("http://127.1/", "input.image_url points to a private or reserved address (127.0.0.1)"),
    ("http://127.0.1/", "input.image_url points to a private or reserved address (127.0.0.1)"),
    ("http://0/", "input.image_url points to a private or reserved address (0.0.0.0)"),
    ("http://0x/", "input.image_url points to a private or reserved address (0.0.0.0)"),
    ("http://10.0.0.1/", "input.image_url points to a private or reserved address (10.0.0.1)"),
    ("http://167772161/", "input.image_url points to a private or reserved address (10.0.0.1)"),
    ("http://169.254.169.254/latest/meta-data/", "private or reserved address (169.254.169.254)"),
    ("http://0xa9fea9fe/", "private or reserved address (169.254.169.254)"),
    ("https://100.64.0.1/", "private or reserved address (100.64.0.1)"),
    ("http://[::1]/", "input.image_url points to a private or reserved address (::1)"),
    ("http://[::1]:8080/x", "input.image_url points to a private or reserved address (::1)"),
    ("http://[::]/", "input.image_url points to a private or reserved address (::)"),
    ("http://[::ffff:127.0.0.1]/", "input.image_url points to a private or reserved address (::ffff:"),
    ("http://[::ffff:7f00:1]/", "input.image_url points to a private or reserved address (::ffff:"),
    ("http://[::ffff:a9fe:a9fe]/", "input.image_url points to a private or reserved address (::ffff:"),
    ("http://[fd00::1]/", "input.image_url points to a private or reserved address (fd00::1)"),
    ("http://[2002:7f00:1::]/", "input.image_url points to a private or reserved address (2002:7f00:1::)"),
    ("http://[64:ff9b::a9fe:a9fe]/", "private or reserved address (64:ff9b::a9fe:a9fe)"),
]


@pytest.mark.parametrize(("url", "message"), REFUSED_WITHOUT_LOOKUP)
def test_urls_refused_before_any_lookup(url: str, message: str) -> None:
    with pytest.raises(FetchRefused) as refused:
        check_url(url, STRICT, field=FIELD, resolver=nothing_resolves)
    assert message in refused.value.message
    assert refused.value.message.startswith(FIELD)
    assert isinstance(refused.value, InvalidInput)
    assert refused.value.code == 422


@pytest.mark.parametrize(
    ("host", "answers", "refused"),
    [
        ("localhost", ["127.0.0.1", "::1"], "127.0.0.1"),
        ("localhost.", ["127.0.0.1"], "127.0.0.1"),
        ("metadata.google.internal", ["169.254.169.254"], "169.254.169.254"),
        ("intranet.example", ["10.0.0.1"], "10.0.0.1"),
        ("v6.example", ["fd00::5"], "fd00::5"),
        # One bad answer among good ones is enough: the connection could go to any of them.
        ("mixed.example", ["93.184.215.14", "10.1.2.3"], "10.1.2.3"),
        ("mixed6.example", ["2606:4700::1111", "::1"], "::1"),
    ],
)
def test_names_are_refused_when_any_answer_is_not_public(host: str, answers: list[str], refused: str) -> None:
    resolver = FakeResolver({host: answers})
    with pytest.raises(FetchRefused) as error:
        check_url(f"https://{host}/cat.png", STRICT, field=FIELD, resolver=resolver)
    assert error.value.message == f"{FIELD} points to a private or reserved address ({refused})"
    assert resolver.asked == [host]


def test_public_name_is_checked_and_pinned() -> None:
    resolver = FakeResolver({"images.example": ["93.184.215.14", "2606:4700::1111", "93.184.215.14"]})
    target = check_url(
        "HTTPS://Images.Example:8443/a/cat.png?size=1#top", STRICT, field=FIELD, resolver=resolver
    )
    assert target == CheckedTarget(
        url=target.url,
        addresses=(IPv4Address("93.184.215.14"), IPv6Address("2606:4700::1111")),
        server_name="images.example",
    )
    assert str(target.url) == "https://images.example:8443/a/cat.png?size=1"
    assert target.host_header == "images.example:8443"


def test_root_dot_is_kept_for_lookup_but_not_for_tls() -> None:
    resolver = FakeResolver({"images.example.": ["8.8.8.8"]})
    target = check_url("https://images.example./", STRICT, field=FIELD, resolver=resolver)
    assert target.server_name == "images.example"
    assert resolver.asked == ["images.example."]


@pytest.mark.parametrize(
    ("url", "address"),
    [
        ("http://8.8.8.8/", "8.8.8.8"),
        ("http://134744072/", "8.8.8.8"),
        ("http://0x8.0x8.0x8.0x8/", "8.8.8.8"),
        ("https://[2606:4700::1111]/", "2606:4700::1111"),
    ],
)
def test_public_addresses_named_directly_are_not_looked_up(url: str, address: str) -> None:
    target = check_url(url, STRICT, field=FIELD, resolver=nothing_resolves)
    assert target.addresses == (ip_address(address),)
    assert target.server_name is None


def test_idna_names_are_looked_up_in_ascii() -> None:
    resolver = FakeResolver({"xn--bcher-kva.example": ["8.8.8.8"]})
    target = check_url("http://bücher.example/", STRICT, field=FIELD, resolver=resolver)
    assert target.server_name == "xn--bcher-kva.example"


@pytest.mark.parametrize(
    ("answers", "why"),
    [([], "no answer"), (["not-an-address"], "a broken answer")],
)
def test_names_without_usable_answers_fail(answers: list[str], why: str) -> None:
    resolver = FakeResolver({"images.example": answers})
    with pytest.raises(FetchFailed, match=r"host images\.example was not found"):
        check_url("http://images.example/", STRICT, field=FIELD, resolver=resolver)


def test_unknown_name_fails_as_not_found() -> None:
    with pytest.raises(FetchFailed) as error:
        check_url("http://nowhere.example/", STRICT, field="fileUrl", resolver=FakeResolver({}))
    assert error.value.message == "fileUrl could not be reached: the host nowhere.example was not found"
    assert not isinstance(error.value, FetchRefused)


def test_allow_private_keeps_only_the_url_checks() -> None:
    lenient = FetchPolicy(allow_private=True)
    resolver = FakeResolver({"localhost": ["127.0.0.1"]})
    assert check_url("http://localhost:8080/", lenient, field=FIELD, resolver=resolver).addresses == (
        IPv4Address("127.0.0.1"),
    )
    assert check_url("http://[::1]/", lenient, field=FIELD, resolver=resolver).addresses == (
        IPv6Address("::1"),
    )
    for url in ("file:///etc/passwd", "http://user:pw@localhost/", "http:///x"):
        with pytest.raises(FetchRefused):
            check_url(url, lenient, field=FIELD, resolver=resolver)


def test_trusted_networks_let_only_themselves_through() -> None:
    policy = FetchPolicy(trusted_networks=(ip_network("10.20.0.0/16"),))
    resolver = FakeResolver({"store.internal": ["10.20.1.2"], "other.internal": ["10.21.0.1"]})
    assert check_url("http://store.internal/", policy, field=FIELD, resolver=resolver).addresses == (
        IPv4Address("10.20.1.2"),
    )
    with pytest.raises(FetchRefused, match=r"\(10\.21\.0\.1\)"):
        check_url("http://other.internal/", policy, field=FIELD, resolver=resolver)
    # The IPv4-mapped form of a trusted address is another address, and stays refused.
    with pytest.raises(FetchRefused):
        check_url("http://[::ffff:10.20.1.2]/", policy, field=FIELD, resolver=resolver)


def test_redirect_refusals_say_so() -> None:
    resolver = FakeResolver({"localhost": ["127.0.0.1"]})
    cases = {
        "http://localhost/": "callBackUrl redirects to a private or reserved address (127.0.0.1)",
        "file:///etc/passwd": "callBackUrl redirects to a URL that is not http or https",
        "http://u:p@example.com/": "callBackUrl redirects to a URL with a user name or password",
    }
    for url, message in cases.items():
        with pytest.raises(FetchRefused) as error:
            check_url(url, STRICT, field="callBackUrl", resolver=resolver, redirected=True)
        assert error.value.message == message


@pytest.mark.parametrize(
    "settings",
    [
        {"max_bytes": 0},
        {"max_redirects": -1},
        {"connect_timeout_s": 0.0},
        {"total_timeout_s": -1.0},
    ],
)
def test_policy_rejects_nonsense_limits(settings: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="must be"):
        FetchPolicy(**settings)  # type: ignore[arg-type]


def _spell_ipv4(value: int, parts: int, radixes: list[str]) -> str:
    """An IPv4 address written with ``parts`` numbers, each in decimal, octal or hex."""
    widths = [1] * (parts - 1) + [5 - parts]
    numbers = []
    remaining_bytes = value.to_bytes(4, "big")
    offset = 0
    for width in widths:
        numbers.append(int.from_bytes(remaining_bytes[offset : offset + width], "big"))
        offset += width
    spelled = []
    for number, radix in zip(numbers, radixes, strict=False):
        if radix == "hex":
            spelled.append(hex(number))
        elif radix == "octal" and number:
            spelled.append("0" + format(number, "o"))
        else:
            spelled.append(str(number))
    return ".".join(spelled)


@given(
    value=st.integers(0, 2**32 - 1),
    parts=st.integers(1, 4),
    radixes=st.lists(st.sampled_from(["decimal", "octal", "hex"]), min_size=4, max_size=4),
)
def test_every_numeric_spelling_means_the_address_inet_aton_reads(
    value: int, parts: int, radixes: list[str]
) -> None:
    spelled = _spell_ipv4(value, parts, radixes)
    expected = IPv4Address(value)
    # The C library agrees on what the spelling means, so this is the address a connection would reach.
    assert IPv4Address(socket.inet_aton(spelled)) == expected
    lenient = FetchPolicy(allow_private=True)
    labels = spelled.split(".")
    if len(labels) == 4 and all(map(str.isdigit, labels)) and any(len(x) > 1 and x[0] == "0" for x in labels):
        # httpx reads four dotted decimals itself, and refuses leading zeros outright: safe too.
        with pytest.raises(FetchRefused, match="is not a valid URL"):
            check_url(f"http://{spelled}/", lenient, field=FIELD, resolver=nothing_resolves)
        return
    target = check_url(f"http://{spelled}/", lenient, field=FIELD, resolver=nothing_resolves)
    assert target.addresses == (expected,)
    if not is_public_address(expected):
        with pytest.raises(FetchRefused, match=rf"private or reserved address \({expected}\)"):
            check_url(f"http://{spelled}/", STRICT, field=FIELD, resolver=nothing_resolves)
