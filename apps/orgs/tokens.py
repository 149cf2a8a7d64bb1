"""The signed token of an invitation link: its id, signed by Django's signing (HMAC with the
secret key and a salt of its own, so no other signed value of the project passes for one). Nothing
is stored: the invitation's row says whether it is still pending, and until when. The token has no
time in it, so every email of one invitation carries the same link."""

from django.core import signing

SALT = "vibebox.orgs.invitation"


def _signer() -> signing.Signer:
    return signing.Signer(salt=SALT)


def invitation_token(invitation) -> str:
    return _signer().sign_object({"invitation": invitation.pk})


def invitation_id(token: str) -> str | None:
    """The invitation id a token carries; None for a token not made here (a wrong or changed one)."""
    try:
        payload = _signer().unsign_object(token)
    except signing.BadSignature:
        return None
    value = payload.get("invitation") if isinstance(payload, dict) else None
    return value if isinstance(value, str) else None
