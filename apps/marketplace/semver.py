"""Template versions are MAJOR.MINOR.PATCH (no pre-releases, no leading zeros)."""

import re

SEMVER_RE = re.compile(r"^(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})\.(0|[1-9]\d{0,5})$")


def semver_ok(version) -> bool:
    return isinstance(version, str) and bool(SEMVER_RE.match(version))


def semver_key(version: str) -> tuple[int, int, int]:
    """A sort key: newer versions are greater; an invalid one sorts first."""
    match = SEMVER_RE.match(version or "")
    return tuple(int(part) for part in match.groups()) if match else (-1, -1, -1)
