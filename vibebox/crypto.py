"""Secrets at rest (sandbox environment variables, git credentials, keys held for Claude Code):
Fernet (AES-128-CBC + HMAC-SHA256) under a key derived from VIBEBOX_ENCRYPTION_KEY."""

import base64
import hashlib
from functools import cache

from cryptography.fernet import Fernet, InvalidToken
from django.conf import settings

from vibebox import exceptions as errors


@cache
def _fernet(key: str) -> Fernet:
    # The derivation's label predates the module (sandbox environment variables came first);
    # changing it would make every stored secret unreadable.
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(b"vibebox-env-v1:" + key.encode()).digest()))


def encrypt(value: str) -> str:
    return _fernet(settings.VIBEBOX_ENCRYPTION_KEY).encrypt(value.encode()).decode()


def decrypt(token: str) -> str:
    try:
        return _fernet(settings.VIBEBOX_ENCRYPTION_KEY).decrypt(token.encode()).decode()
    except InvalidToken:
        raise errors.ApplicationError(
            "A stored secret cannot be decrypted (was VIBEBOX_ENCRYPTION_KEY changed?)."
        ) from None
