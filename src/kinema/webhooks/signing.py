"""The signatures a callback carries: the published scheme and Standard Webhooks.

- Published: ``X-Webhook-Timestamp`` (Unix seconds) and ``X-Webhook-Signature``, the base64
  HMAC-SHA256 of ``taskId + "." + timestamp`` keyed with the secret as written (UTF-8).
- Standard Webhooks: ``webhook-id``, ``webhook-timestamp`` and ``webhook-signature``
  (``v1,<base64>``, one per secret during a rotation), which sign the body itself, made with
  the `standardwebhooks` package.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from datetime import UTC, datetime

from standardwebhooks import Webhook


def published_signature(secret: str, task_id: str, timestamp: int) -> str:
    digest = hmac.new(secret.encode(), f"{task_id}.{timestamp}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def callback_headers(
    secrets: list[str], delivery_id: str, task_id: str, body: str, timestamp: int
) -> dict[str, str]:
    """Headers for one attempt; `secrets` has the active secret first."""
    moment = datetime.fromtimestamp(timestamp, UTC)
    signatures = " ".join(Webhook(secret).sign(delivery_id, moment, body) for secret in secrets)
    return {
        "Content-Type": "application/json",
        "User-Agent": "Kinema-Webhooks/1",
        "X-Webhook-Timestamp": str(timestamp),
        "X-Webhook-Signature": published_signature(secrets[0], task_id, timestamp),
        "webhook-id": delivery_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": signatures,
    }
