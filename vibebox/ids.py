"""Random identifiers: a type prefix and base62 characters (`sbx_…`, `exec_…`, `key_…`)."""

import secrets

ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"


def random_id(prefix: str, length: int = 20) -> str:
    """`prefix` + `length` base62 characters (20 characters: about 119 bits)."""
    return prefix + "".join(secrets.choice(ALPHABET) for _ in range(length))
