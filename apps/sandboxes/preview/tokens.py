"""Preview tokens: `<sandbox id>:<port>:<expiry, unix seconds>:<signature>`, signed with the
server's secret (django.core.signing, a salt of its own). A token opens one port of one sandbox
until it expires; the proxy turns it into a cookie of the same value."""

import logging
import re
import time

from django.core import signing

SALT = "vibebox.preview.token"
QUERY_PARAMETER = "vibebox_token"
COOKIE = "vibebox_preview"
MAX_LENGTH = 200  # a token (or a cookie value) longer than this is not one of ours


def _signer() -> signing.Signer:
    return signing.Signer(salt=SALT, algorithm="sha256")


def token_make(*, sandbox_id: str, port: int, expires_at: int) -> str:
    return _signer().sign(f"{sandbox_id}:{int(port)}:{int(expires_at)}")


def token_check(token: str, *, sandbox_id: str, port: int, now: float | None = None) -> str | None:
    """None when the token opens `port` of `sandbox_id` now; else why not: "invalid" (not ours,
    damaged, or another sandbox's or port's) or "expired"."""
    if not isinstance(token, str) or not token or len(token) > MAX_LENGTH:
        return "invalid"
    try:
        value = _signer().unsign(token)
    except signing.BadSignature:
        return "invalid"
    parts = value.split(":")
    if len(parts) != 3 or parts[0] != sandbox_id or parts[1] != str(int(port)) or not parts[2].isdigit():
        return "invalid"
    if int(parts[2]) <= (time.time() if now is None else now):
        return "expired"
    return None


def token_expiry(token: str) -> int | None:
    """A token's expiry (unix seconds), read without checking it (the caller checked it)."""
    try:
        return int(token.rsplit(":", 2)[1])
    except (IndexError, ValueError):
        return None


_IN_QUERY = re.compile(rf"({QUERY_PARAMETER}=)[^&#\s]*")


class RedactTokens(logging.Filter):
    """The server's access log shows each request's query string: a token there opens its port
    to anyone who reads the log until it expires, so the line shows `vibebox_token=[redacted]`."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple) and any(isinstance(a, str) and QUERY_PARAMETER in a for a in record.args):
            record.args = tuple(_IN_QUERY.sub(r"\1[redacted]", a) if isinstance(a, str) else a for a in record.args)
        return True
