"""`verify_webhook` against deliveries signed by an independent implementation: the Standard Webhooks
reference library (`standardwebhooks`, requirements-dev.txt), which also checks what we accept.

No server here: the signatures are made the way the issue's contract (and the spec) says VibeBox's
server makes them, by the reference library, not by our code.
"""

from __future__ import annotations

import base64
import email.message
import hashlib
import hmac
import json
import secrets
import time
from datetime import UTC, datetime

import pytest
import standardwebhooks
from vibebox_sdk import VibeBoxError, WebhookVerificationError, verify_webhook

EVENT = {
    "type": "sandbox.created",
    "timestamp": "2026-12-03T11:00:00.123456Z",
    "data": {"id": "sbx_abc", "template": "python-3", "metadata": {"ci": "build-42", "note": "é ✓"}},
}
BODY = json.dumps(EVENT, separators=(",", ":"), ensure_ascii=False)


def new_secret(size: int = 32) -> str:
    """A secret as the server makes them (32 random bytes: base64 with padding); the spec's minimum is 24."""
    return "whsec_" + base64.b64encode(secrets.token_bytes(size)).decode()


def sign(secret: str, msg_id: str, timestamp: int, body: str) -> str:
    """`v1,<base64>` as the reference library signs it."""
    return standardwebhooks.Webhook(secret).sign(msg_id, datetime.fromtimestamp(timestamp, tz=UTC), body)


def delivery(secret: str, body: str = BODY, *, msg_id: str = "evt_01", at: int | None = None) -> dict[str, str]:
    stamp = int(time.time()) if at is None else at
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(stamp),
        "webhook-signature": sign(secret, msg_id, stamp, body),
    }


def refused(code: str, body: str | bytes, headers, secret: str, **options) -> WebhookVerificationError:
    with pytest.raises(WebhookVerificationError) as caught:
        verify_webhook(body, headers, secret, **options)
    assert caught.value.code == code, caught.value
    return caught.value


def reference_accepts(body: str, headers: dict[str, str], secret: str) -> bool:
    try:
        standardwebhooks.Webhook(secret).verify(body, headers)
    except standardwebhooks.WebhookVerificationError:
        return False
    return True


@pytest.mark.parametrize("size", [24, 32, 64])
def test_a_signed_delivery_gives_its_event_from_bytes_or_text(size):
    secret = new_secret(size)
    headers = delivery(secret)
    assert verify_webhook(BODY.encode(), headers, secret) == EVENT
    assert verify_webhook(BODY, headers, secret) == EVENT
    assert reference_accepts(BODY, headers, secret)


def test_header_names_in_any_case_and_http_server_headers():
    secret = new_secret()
    headers = {name.title(): value for name, value in delivery(secret).items()}  # Webhook-Id...
    assert set(headers) == {"Webhook-Id", "Webhook-Timestamp", "Webhook-Signature"}
    assert verify_webhook(BODY.encode(), headers, secret)["data"]["id"] == "sbx_abc"
    message = email.message.Message()  # what http.server's self.headers is (HTTPMessage)
    for name, value in delivery(secret).items():
        message[name.upper()] = value
    message["Content-Type"] = "application/json"
    assert verify_webhook(BODY.encode(), message, secret) == EVENT


def test_a_secret_without_its_prefix_is_the_same_key():
    secret = new_secret()
    assert verify_webhook(BODY, delivery(secret), secret.removeprefix("whsec_")) == EVENT


def test_during_a_rotation_any_one_valid_signature_is_enough():
    old, new, other = new_secret(), new_secret(), new_secret()
    stamp = int(time.time())
    both = f"{sign(old, 'evt_r', stamp, BODY)} {sign(new, 'evt_r', stamp, BODY)}"
    headers = {"webhook-id": "evt_r", "webhook-timestamp": str(stamp), "webhook-signature": both}
    assert verify_webhook(BODY, headers, old) == EVENT
    assert verify_webhook(BODY, headers, new) == EVENT
    refused("webhook_signature_invalid", BODY, headers, other)
    # an entry of another scheme (v1a: asymmetric) or a broken one next to a valid v1 is skipped
    headers["webhook-signature"] = f"v1a,AAAA v1,@@@ {sign(new, 'evt_r', stamp, BODY)}"
    assert verify_webhook(BODY, headers, new) == EVENT
    assert reference_accepts(BODY, {**headers, "webhook-signature": both}, new)


@pytest.mark.parametrize(
    "change",
    ["body", "id", "timestamp", "secret", "signature"],
)
def test_anything_changed_is_refused_as_the_reference_refuses_it(change):
    secret = new_secret()
    body, headers = BODY, delivery(secret)
    if change == "body":
        body = BODY.replace("build-42", "build-43")
    elif change == "id":
        headers["webhook-id"] = "evt_02"
    elif change == "timestamp":
        headers["webhook-timestamp"] = str(int(headers["webhook-timestamp"]) - 1)
    elif change == "secret":
        secret = new_secret()
    else:
        raw = bytearray(base64.b64decode(headers["webhook-signature"].removeprefix("v1,")))
        raw[0] ^= 1
        headers["webhook-signature"] = "v1," + base64.b64encode(bytes(raw)).decode()
    refused("webhook_signature_invalid", body, headers, secret)
    assert not reference_accepts(body, headers, secret)


def test_a_body_parsed_and_serialized_again_is_refused():
    secret = new_secret()
    headers = delivery(secret)
    again = json.dumps(json.loads(BODY))  # spaces after the separators, \\u escapes: other bytes
    refused("webhook_signature_invalid", again, headers, secret)


@pytest.mark.parametrize(("offset", "word"), [(-301, "old"), (301, "new"), (-86400, "old")])
def test_a_timestamp_outside_the_tolerance_is_refused(offset, word):
    secret = new_secret()
    now = int(time.time())
    headers = delivery(secret, at=now + offset)  # validly signed: a replay, or a clock far off
    error = refused("webhook_timestamp_out_of_tolerance", BODY, headers, secret)
    assert f"too {word}" in str(error)
    assert error.details["timestamp"] == now + offset and error.details["tolerance"] == 300
    assert not reference_accepts(BODY, headers, secret)  # its tolerance is 5 minutes too


def test_the_tolerance_is_an_option():
    secret = new_secret()
    now = int(time.time())
    assert verify_webhook(BODY, delivery(secret, at=now - 280), secret) == EVENT  # within the default 300 s
    refused("webhook_timestamp_out_of_tolerance", BODY, delivery(secret, at=now - 60), secret, tolerance=30)
    assert verify_webhook(BODY, delivery(secret, at=now - 3000), secret, tolerance=3600) == EVENT
    with pytest.raises(ValueError, match="tolerance"):
        verify_webhook(BODY, delivery(secret), secret, tolerance=-1)


@pytest.mark.parametrize("missing", ["webhook-id", "webhook-timestamp", "webhook-signature"])
def test_a_missing_header_is_refused(missing):
    secret = new_secret()
    headers = delivery(secret)
    del headers[missing]
    error = refused("webhook_headers_missing", BODY, headers, secret)
    assert error.details == {"missing": [missing]}
    headers[missing] = ""  # present but empty is missing too
    refused("webhook_headers_missing", BODY, headers, secret)
    assert refused("webhook_headers_missing", BODY, {}, secret).details == {
        "missing": ["webhook-id", "webhook-timestamp", "webhook-signature"]
    }


@pytest.mark.parametrize("stamp", ["soon", "1.5e9", "-1", "1764759600.5", "0x10", "9" * 13])
def test_a_timestamp_that_is_not_unix_seconds_is_malformed(stamp):
    secret = new_secret()
    headers = delivery(secret)
    headers["webhook-timestamp"] = stamp
    refused("webhook_headers_malformed", BODY, headers, secret)


@pytest.mark.parametrize("signature", ["garbage", "v1", "v1,", "v1,***", "v2,AAAA", "v1a,AAAA", "sha256=abcd"])
def test_a_signature_header_without_a_v1_signature_is_malformed(signature):
    secret = new_secret()
    headers = {**delivery(secret), "webhook-signature": signature}
    refused("webhook_headers_malformed", BODY, headers, secret)


def test_a_signed_body_that_is_not_a_json_object_is_refused():
    secret = new_secret()
    for body in ("not json", "[1, 2]", '"text"', '{"a": 1'):
        refused("webhook_payload_invalid", body, delivery(secret, body), secret)
    raw = b"\xff\xfe{}"
    stamp = int(time.time())
    key = base64.b64decode(secret.removeprefix("whsec_"))  # not UTF-8: signed as bytes, as the spec's algorithm
    signature = base64.b64encode(hmac.new(key, f"evt_b.{stamp}.".encode() + raw, hashlib.sha256).digest()).decode()
    headers = {"webhook-id": "evt_b", "webhook-timestamp": str(stamp), "webhook-signature": f"v1,{signature}"}
    refused("webhook_payload_invalid", raw, headers, secret)
    utf16 = '{"type": "x"}'.encode("utf-16")  # JSON that json.loads(bytes) would read: not UTF-8, refused
    signature = base64.b64encode(hmac.new(key, f"evt_b.{stamp}.".encode() + utf16, hashlib.sha256).digest()).decode()
    refused("webhook_payload_invalid", utf16, {**headers, "webhook-signature": f"v1,{signature}"}, secret)


def test_the_error_is_a_vibebox_error_with_no_http_status():
    secret = new_secret()
    error = refused("webhook_signature_invalid", BODY, delivery(new_secret()), secret)
    assert isinstance(error, VibeBoxError)
    assert error.status is None and error.request_id is None
    assert str(error) == "no valid webhook signature (code=webhook_signature_invalid)"


@pytest.mark.parametrize("secret", ["whsec_", "whsec_not base64!", "", "whsec_abc"])
def test_a_secret_that_is_not_one_is_a_configuration_error(secret):
    with pytest.raises(ValueError, match="secret"):
        verify_webhook(BODY, delivery(new_secret()), secret)
