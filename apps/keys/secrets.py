"""Key material: generation, checksum and the HMAC stored in place of the key.

A key is `vb_live_` (or `vb_test_`) + 33 base62 characters of randomness (192 bits,
from 24 random bytes) + a 6-character base62 checksum, so typos and truncated keys are
rejected without a database lookup, and secret scanners can recognise the format.
"""

import hashlib
import hmac
import secrets
import zlib

from django.conf import settings

from vibebox.ids import ALPHABET

LIVE_PREFIX = "vb_live_"
TEST_PREFIX = "vb_test_"
BODY_LENGTH = 33  # 24 random bytes -> at most 33 base62 digits (zero-padded)
CHECKSUM_LENGTH = 6


def _base62(number: int, width: int) -> str:
    digits = []
    while number:
        number, rest = divmod(number, 62)
        digits.append(ALPHABET[rest])
    return "".join(reversed(digits)).rjust(width, "0")


def _checksum(prefix: str, body: str) -> str:
    return _base62(zlib.crc32(f"{prefix}{body}".encode()), CHECKSUM_LENGTH)


def generate_key(*, test: bool = False) -> str:
    prefix = TEST_PREFIX if test else LIVE_PREFIX
    body = _base62(int.from_bytes(secrets.token_bytes(24), "big"), BODY_LENGTH)
    return prefix + body + _checksum(prefix, body)


def well_formed(key: str) -> bool:
    """Format and checksum; says nothing about whether the key exists."""
    if len(key) != len(LIVE_PREFIX) + BODY_LENGTH + CHECKSUM_LENGTH:
        return False
    prefix, rest = key[: len(LIVE_PREFIX)], key[len(LIVE_PREFIX) :]
    if prefix not in (LIVE_PREFIX, TEST_PREFIX) or any(ch not in ALPHABET for ch in rest):
        return False
    body, checksum = rest[:BODY_LENGTH], rest[BODY_LENGTH:]
    return hmac.compare_digest(checksum, _checksum(prefix, body))


def hash_key(key: str) -> str:
    secret = settings.VIBEBOX_KEY_HASH_SECRET.encode()
    return hmac.new(secret, key.encode(), hashlib.sha256).hexdigest()


def display_prefix(key: str) -> str:
    """What lists show: `vb_live_AbC1`, enough to tell keys apart, too little to matter."""
    return key[: len(LIVE_PREFIX) + 4]
