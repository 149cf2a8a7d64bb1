"""Checking the webhooks VibeBox delivers (the Standard Webhooks scheme, https://www.standardwebhooks.com).

Each delivery is a `POST` of JSON `{"type", "timestamp", "data"}` with the headers `webhook-id`
(the event's id, the same on every retry: dedupe on it), `webhook-timestamp` (unix seconds, when
this attempt was sent) and `webhook-signature`: `v1,<base64 HMAC-SHA256>` of
`"{webhook-id}.{webhook-timestamp}.{body}"`, keyed with the endpoint's secret (`whsec_` + base64,
the HMAC key is the decoded bytes). After a secret rotation the header holds several signatures,
space-separated; one valid signature is enough.

    from vibebox_sdk import WebhookVerificationError, verify_webhook

    try:
        event = verify_webhook(raw_body, request_headers, secret)
    except WebhookVerificationError:
        ...  # answer 400: not from VibeBox, changed on the way, or a replay
    print(event["type"], event["data"])

Only the standard library: `hmac`, `hashlib`, `base64`, `json`.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
import re
import time
from collections.abc import Mapping
from typing import Any

from .errors import WebhookVerificationError

SECRET_PREFIX = "whsec_"  # noqa: S105  (a prefix, not a secret)
DEFAULT_TOLERANCE = 300  # seconds between the delivery's timestamp and this clock, either way
HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
_TIMESTAMP = re.compile(r"[0-9]{1,12}")


def webhook_secret_key(secret: str) -> bytes:
    """The HMAC key of a webhook secret: the bytes its base64 (after `whsec_`) encodes.

    A secret that is not base64 raises `ValueError` (a configuration mistake, not a bad delivery)."""
    if not isinstance(secret, str):
        raise TypeError("the webhook secret is a string (whsec_...)")
    encoded = secret.strip().removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(encoded, validate=True)
    except (binascii.Error, ValueError):
        raise ValueError("not a webhook secret: expected whsec_ followed by base64") from None
    if not key:
        raise ValueError("the webhook secret is empty")
    return key


def verify_webhook(
    body: bytes | str, headers: Mapping[str, Any], secret: str, *, tolerance: float = DEFAULT_TOLERANCE
) -> dict[str, Any]:
    """Checks one delivery and answers its event (the parsed JSON body: `type`, `timestamp`, `data`).

    `body` is the request body exactly as received (bytes, or text that is its UTF-8 decoding: never
    JSON parsed and serialized again). `headers` is any mapping of the request's headers, whatever
    the case of their names (a dict, `http.server`'s `self.headers`, Django's `request.headers`...).
    `secret` is the endpoint's `whsec_...`. `tolerance` is how many seconds the delivery's
    `webhook-timestamp` may differ from this machine's clock (default 300).

    Raises `WebhookVerificationError` (`code`: `webhook_headers_missing`, `webhook_headers_malformed`,
    `webhook_timestamp_out_of_tolerance`, `webhook_signature_invalid`, `webhook_payload_invalid`)
    when the delivery must be refused. Signatures are compared in constant time.
    """
    if tolerance < 0:
        raise ValueError("tolerance is a number of seconds, 0 or more")
    key = webhook_secret_key(secret)
    raw = body.encode() if isinstance(body, str) else bytes(body)
    found = _webhook_headers(headers)
    missing = [name for name in HEADERS if not found.get(name)]
    if missing:
        raise WebhookVerificationError(
            f"missing webhook header(s): {', '.join(missing)}",
            code="webhook_headers_missing",
            details={"missing": missing},
        )
    message_id, stamp, signatures = (found[name] for name in HEADERS)
    if not _TIMESTAMP.fullmatch(stamp):
        raise WebhookVerificationError(
            "webhook-timestamp is not unix seconds", code="webhook_headers_malformed", details={"header": stamp[:40]}
        )
    timestamp, now = int(stamp), int(time.time())
    if abs(now - timestamp) > tolerance:
        when = "old" if timestamp < now else "new"
        raise WebhookVerificationError(
            f"webhook-timestamp is too {when}: {abs(now - timestamp)} s from this clock, tolerance {tolerance:g} s",
            code="webhook_timestamp_out_of_tolerance",
            details={"timestamp": timestamp, "now": now, "tolerance": tolerance},
        )
    expected = hmac.new(key, f"{message_id}.{stamp}.".encode() + raw, hashlib.sha256).digest()
    candidates = _v1_signatures(signatures)
    if candidates is None:
        raise WebhookVerificationError(
            "webhook-signature holds no v1 signature", code="webhook_headers_malformed", details={}
        )
    matched = False
    for candidate in candidates:  # every one is compared: the time does not depend on which matched
        matched |= hmac.compare_digest(expected, candidate)
    if not matched:
        raise WebhookVerificationError("no valid webhook signature", code="webhook_signature_invalid")
    try:
        event = json.loads(raw.decode("utf-8"))  # UTF-8 only (RFC 8259), as the TypeScript SDK
    except ValueError:  # UnicodeDecodeError too
        event = None
    if not isinstance(event, dict):
        raise WebhookVerificationError("the webhook's body is not a JSON object", code="webhook_payload_invalid")
    return event


def _webhook_headers(headers: Mapping[str, Any]) -> dict[str, str]:
    """The three webhook headers of `headers`, by lower-case name (the first value of a repeated one)."""
    found: dict[str, str] = {}
    for name, value in headers.items():
        if isinstance(name, bytes):
            name = name.decode("latin-1")
        name = str(name).lower()
        if name not in HEADERS or name in found:
            continue
        if isinstance(value, (list, tuple)):  # frameworks that keep every value of a header
            value = value[0] if value else ""
        if isinstance(value, bytes):
            value = value.decode("latin-1")
        found[name] = str(value).strip()
    return found


def _v1_signatures(header: str) -> list[bytes] | None:
    """The decoded `v1,<base64>` entries of a webhook-signature header; other schemes (`v1a`...) are
    skipped. None when there is no well-formed v1 entry at all."""
    decoded = []
    for entry in header.split():
        scheme, _, value = entry.partition(",")
        if scheme != "v1" or not value:
            continue
        try:
            decoded.append(base64.b64decode(value, validate=True))
        except (binascii.Error, ValueError):
            continue
    return decoded or None
