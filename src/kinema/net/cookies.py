"""Cookies, refused: a fetcher shared by every user must carry none from one URL to the next."""

from __future__ import annotations

from http.cookiejar import Cookie, CookieJar, CookiePolicy
from urllib.request import Request as CookieRequest


class RefuseAllCookies(CookiePolicy):
    """A cookie policy that neither stores nor sends any cookie."""

    netscape = True
    rfc2965 = False
    hide_cookie2 = True

    def set_ok(self, cookie: Cookie, request: CookieRequest) -> bool:
        return False

    def return_ok(self, cookie: Cookie, request: CookieRequest) -> bool:
        return False

    def domain_return_ok(self, domain: str, request: CookieRequest) -> bool:
        return False

    def path_return_ok(self, path: str, request: CookieRequest) -> bool:
        return False


def cookie_free_jar() -> CookieJar:
    """A cookie jar that stays empty whatever the servers send."""
    return CookieJar(policy=RefuseAllCookies())
