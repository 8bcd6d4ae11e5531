"""Reaching URLs that users give us, without letting them reach inside our network (SSRF).

- `policy`: what a fetch may reach and how much it may take (`FetchPolicy`, built once from the
  settings by the composition root), and the two ways a fetch fails.
- `addresses`: the URL and address rules, checked before anything connects.
- `fetcher`: `SafeFetcher`, which downloads and posts to checked addresses only.
- `deadline`: the time one transfer may take in all, kept against a server that trickles.
- `cookies`: a cookie policy that keeps no cookie, so one user's never reach another's URL.

Imports nothing of ours but the domain's errors.
"""
