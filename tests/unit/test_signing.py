"""Signed links: what verifies, what is tampered, what has expired; and reading our own URLs back."""

from __future__ import annotations

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kinema.storage.base import InvalidKey, check_key
from kinema.storage.signing import EXPIRY_STEP_S, LinkCheck, LinkSigner, key_from_url, link_expiry

SECRET = b"test-secret-0123456789abcdef-xyz"
BASE = "https://kinema.example"
KEY = "results/acct/task-1/video.mp4"
NOW = 1_700_000_000
EXPIRES = NOW + 600


@pytest.fixture
def signer() -> LinkSigner:
    return LinkSigner(SECRET)


def query_of(signer: LinkSigner, key: str = KEY, expires_at: int = EXPIRES) -> tuple[str, str]:
    query = parse_qs(signer.sign(key, expires_at), strict_parsing=True)
    assert sorted(query) == ["expires", "signature"]
    return query["expires"][0], query["signature"][0]


def test_a_fresh_link_is_valid(signer: LinkSigner) -> None:
    expires, signature = query_of(signer)
    assert expires == str(EXPIRES)
    assert signer.verify(KEY, expires, signature, now=NOW) is LinkCheck.VALID
    assert signer.verify(KEY, EXPIRES, signature, now=NOW) is LinkCheck.VALID
    assert signer.verify(KEY, expires, signature, now=EXPIRES - 1) is LinkCheck.VALID


def test_the_signature_is_base64url_sha256_without_padding(signer: LinkSigner) -> None:
    _, signature = query_of(signer)
    assert re.fullmatch(r"[A-Za-z0-9_-]{43}", signature)


def test_a_link_for_another_key_is_tampered(signer: LinkSigner) -> None:
    expires, signature = query_of(signer)
    for other in ("results/acct/task-2/video.mp4", "results/other/task-1/video.mp4", KEY + "x"):
        assert signer.verify(other, expires, signature, now=NOW) is LinkCheck.TAMPERED


def test_a_moved_expiry_is_tampered(signer: LinkSigner) -> None:
    expires, signature = query_of(signer)
    for other in (str(EXPIRES + 1), str(EXPIRES + 86400 * 365), "0" + expires, expires + " ", "+" + expires):
        assert signer.verify(KEY, other, signature, now=NOW) is LinkCheck.TAMPERED


def test_an_altered_signature_is_tampered(signer: LinkSigner) -> None:
    expires, signature = query_of(signer)
    flipped = ("A" if signature[0] != "A" else "B") + signature[1:]
    for other in (flipped, signature[:-1], signature + "A", signature + "=", "", "é" * 43, "\ud800"):
        assert signer.verify(KEY, expires, other, now=NOW) is LinkCheck.TAMPERED


def test_a_missing_part_is_tampered(signer: LinkSigner) -> None:
    expires, signature = query_of(signer)
    assert signer.verify(KEY, None, signature, now=NOW) is LinkCheck.TAMPERED
    assert signer.verify(KEY, expires, None, now=NOW) is LinkCheck.TAMPERED
    assert signer.verify(KEY, "", signature, now=NOW) is LinkCheck.TAMPERED


def test_a_link_signed_with_another_secret_is_tampered(signer: LinkSigner) -> None:
    expires, signature = query_of(LinkSigner(b"another-secret-0123456789abcdef!"))
    assert signer.verify(KEY, expires, signature, now=NOW) is LinkCheck.TAMPERED


def test_an_authentic_link_past_its_time_is_expired(signer: LinkSigner) -> None:
    expires, signature = query_of(signer)
    assert signer.verify(KEY, expires, signature, now=EXPIRES) is LinkCheck.EXPIRED
    assert signer.verify(KEY, expires, signature, now=EXPIRES + 86400) is LinkCheck.EXPIRED


def test_expiry_is_judged_only_after_the_signature(signer: LinkSigner) -> None:
    expires, signature = query_of(signer, expires_at=NOW - 10)
    assert signer.verify(KEY, expires, signature, now=NOW) is LinkCheck.EXPIRED
    assert signer.verify(KEY + "x", expires, signature, now=NOW) is LinkCheck.TAMPERED


def test_the_secret_is_never_in_a_link_nor_in_the_repr(signer: LinkSigner) -> None:
    url = signer.signed_url(BASE, KEY, EXPIRES)
    assert SECRET.decode() not in url
    assert SECRET.decode() not in repr(signer)


def test_a_short_secret_is_refused() -> None:
    with pytest.raises(ValueError, match="at least 16 bytes"):
        LinkSigner(b"short")


def test_signed_url_has_the_documented_shape(signer: LinkSigner) -> None:
    key = "uploads/acct/vidéo finale#1?.mp4"
    url = signer.signed_url(BASE + "/", key, EXPIRES)
    expires, signature = query_of(signer, key)
    assert url == (
        f"{BASE}/files/uploads/acct/vid%C3%A9o%20finale%231%3F.mp4?expires={expires}&signature={signature}"
    )


def test_signed_url_refuses_a_bad_key(signer: LinkSigner) -> None:
    with pytest.raises(InvalidKey):
        signer.signed_url(BASE, "../etc/passwd", EXPIRES)


def test_key_from_url_reads_back_our_links(signer: LinkSigner) -> None:
    assert key_from_url(signer.signed_url(BASE, KEY, EXPIRES), BASE) == KEY
    assert key_from_url(f"{BASE}/files/{KEY}", BASE + "/") == KEY
    assert key_from_url(f"HTTPS://KINEMA.example:443/files/{KEY}#t=3", BASE) == KEY
    assert key_from_url(f"http://host:8000/api/files/{KEY}", "http://host:8000/api") == KEY


@pytest.mark.parametrize(
    "url",
    [
        f"https://elsewhere.example/files/{KEY}",
        f"http://kinema.example/files/{KEY}",
        f"https://kinema.example:8443/files/{KEY}",
        f"https://kinema.example.evil.test/files/{KEY}",
        f"https://user@kinema.example/files/{KEY}",
        f"https://kinema.example/other/{KEY}",
        f"https://kinema.example/{KEY}",
        "https://kinema.example/files/",
        "https://kinema.example/files/..%2F..%2Fetc%2Fpasswd",
        "https://kinema.example/files/a%00b",
        "https://kinema.example/files/%ff.mp4",
        "https://kinema.example:notaport/files/x.mp4",
        f"/files/{KEY}",
        "not a url",
    ],
)
def test_key_from_url_refuses_other_urls(url: str) -> None:
    assert key_from_url(url, BASE) is None


def test_key_from_url_keeps_to_the_base_path() -> None:
    assert key_from_url(f"http://host/files/{KEY}", "http://host/api") is None


def test_issued_key_wants_our_signature_but_not_a_live_one(signer: LinkSigner) -> None:
    expired = signer.signed_url(BASE, KEY, NOW - 1)
    assert signer.issued_key(expired, BASE) == KEY
    assert signer.issued_key(f"{BASE}/files/{KEY}", BASE) is None
    forged = LinkSigner(b"another-secret-0123456789abcdef!").signed_url(BASE, KEY, EXPIRES)
    assert signer.issued_key(forged, BASE) is None
    moved = signer.signed_url(BASE, KEY, EXPIRES).replace(KEY, "results/other/task-1/video.mp4")
    assert signer.issued_key(moved, BASE) is None
    doubled = signer.signed_url(BASE, KEY, EXPIRES) + "&signature=x"
    assert signer.issued_key(doubled, BASE) is None


keys = st.lists(
    st.text(st.characters(codec="utf-8", exclude_categories=["Cc", "Cs"]), min_size=1, max_size=20).filter(
        lambda s: s not in (".", "..") and "/" not in s and "\\" not in s
    ),
    min_size=1,
    max_size=5,
).map("/".join)


@given(key=keys, expires_at=st.integers(min_value=0, max_value=2**40))
def test_any_valid_key_round_trips_through_a_link(key: str, expires_at: int) -> None:
    signer = LinkSigner(SECRET)
    check_key(key)
    url = signer.signed_url(BASE, key, expires_at)
    assert key_from_url(url, BASE) == key
    query = parse_qs(urlsplit(url).query)
    check = signer.verify(key, query["expires"][0], query["signature"][0], now=expires_at - 1)
    assert check is LinkCheck.VALID


@given(now=st.integers(0, 2**40), lasting=st.integers(1, 10**7))
def test_links_expire_on_the_next_whole_minute_after_their_lifetime(now: int, lasting: int) -> None:
    expires_at = link_expiry(now, lasting)
    assert expires_at % EXPIRY_STEP_S == 0
    assert now + lasting <= expires_at < now + lasting + EXPIRY_STEP_S


def test_a_remembered_link_is_the_link_signing_would_make(signer: LinkSigner) -> None:
    first = signer.signed_url(BASE, KEY, EXPIRES)
    again = signer.signed_url(BASE, KEY, EXPIRES)
    assert again == first
    assert again == f"{BASE}/files/{KEY}?{LinkSigner(SECRET).sign(KEY, EXPIRES)}"
    assert signer.signed_url(BASE, KEY, EXPIRES + 60) != first
    with pytest.raises(InvalidKey):  # a refusal is never remembered as a link
        signer.signed_url(BASE, "../escape", EXPIRES)
    with pytest.raises(InvalidKey):
        signer.signed_url(BASE, "../escape", EXPIRES)
