"""An organization's package registry mirrors (`registryMirrors`): {manager: URL}, used by
package installs in its sandboxes instead of the public registries (docs/api.md#packages)."""

import re

from vibebox import exceptions as errors

MIRROR_MANAGERS = ("pip", "npm", "cargo", "gem", "go", "maven")
# Managers that use another one's setting: uv uses pip's index, bundler RubyGems'.
MIRROR_KEY = {"uv": "pip", "bundler": "gem"}
# No userinfo (credentials would show to every member), nothing that needs quoting in TOML or XML.
MIRROR_URL = re.compile(r"(?:sparse\+)?https?://[A-Za-z0-9.-]+(?::[0-9]{1,5})?(?:/[A-Za-z0-9._~/%+=,;:!$*()?#-]*)?")


def validate_mirrors(value) -> dict[str, str]:
    """An organization's `registryMirrors`: {manager: http(s) URL}; a null value removes one."""
    if not isinstance(value, dict):
        raise errors.InvalidRegistryMirror("registryMirrors is an object of manager to URL.")
    mirrors = {}
    for manager, url in value.items():
        if manager not in MIRROR_MANAGERS:
            raise errors.InvalidRegistryMirror(
                f"No mirror setting for {str(manager)[:20]!r}.",
                details={"manager": str(manager)[:50], "supported": list(MIRROR_MANAGERS)},
            )
        if url is None:
            continue
        if not isinstance(url, str) or len(url) > 500 or not MIRROR_URL.fullmatch(url):
            raise errors.InvalidRegistryMirror(
                "A mirror URL is http(s)://host/path, at most 500 characters, with no credentials, quotes or spaces.",
                details={"manager": manager},
            )
        mirrors[manager] = url
    return mirrors
