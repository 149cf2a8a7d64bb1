"""Standard Webhooks signatures (https://www.standardwebhooks.com): `v1,<base64 HMAC-SHA256 of
"{id}.{timestamp}.{body}">`, keyed with the secret's base64-decoded bytes after `whsec_`."""

import base64
import secrets
from datetime import datetime

from standardwebhooks.webhooks import Webhook as Signer

PREFIX = "whsec_"


def new_secret() -> str:
    return PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def signature(secret: str, *, msg_id: str, timestamp: datetime, body: str) -> str:
    return Signer(secret).sign(msg_id=msg_id, timestamp=timestamp, data=body)


def header(secrets_: list[str], *, msg_id: str, timestamp: datetime, body: str) -> str:
    """The webhook-signature header: one signature per secret (two during a rotation's overlap),
    space-separated."""
    return " ".join(signature(secret, msg_id=msg_id, timestamp=timestamp, body=body) for secret in secrets_)
