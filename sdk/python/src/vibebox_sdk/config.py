"""Where the SDK and the CLI find the server URL, the API key and defaults.

Order: explicit arguments, then the environment (`VIBEBOX_API_URL`, `VIBEBOX_API_KEY`), then the
config file written by `vibebox init`: `$VIBEBOX_CONFIG`, else `$XDG_CONFIG_HOME/vibebox/config.toml`,
else `~/.config/vibebox/config.toml` (mode 0600: it holds the key).
"""

from __future__ import annotations

import json
import os
import tomllib
from pathlib import Path

DEFAULT_URL = "http://127.0.0.1:8000"
KNOWN_KEYS = ("api_url", "api_key", "template", "timeout")


def config_path() -> Path:
    if os.environ.get("VIBEBOX_CONFIG"):
        return Path(os.environ["VIBEBOX_CONFIG"]).expanduser()
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "vibebox" / "config.toml"


def load_config(path: Path | None = None) -> dict[str, str]:
    """The config file's settings (empty when there is none)."""
    path = path or config_path()
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        return {}
    return {str(k): str(v) for k, v in data.items() if not isinstance(v, dict)}


def save_config(values: dict[str, str], path: Path | None = None) -> Path:
    """Writes the settings as TOML, readable only by the user (0600)."""
    path = path or config_path()
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    text = "".join(f"{key} = {json.dumps(str(value))}\n" for key, value in sorted(values.items()))
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w") as handle:
        handle.write(text)
    os.chmod(path, 0o600)
    return path


def resolve(api_key: str | None = None, base_url: str | None = None) -> tuple[str | None, str]:
    """(api key, base url) from the arguments, the environment, then the config file."""
    file = load_config() if not (api_key and base_url) else {}
    key = api_key or os.environ.get("VIBEBOX_API_KEY") or file.get("api_key")
    url = base_url or os.environ.get("VIBEBOX_API_URL") or file.get("api_url") or DEFAULT_URL
    return key, url.rstrip("/")


def credentials(api_key: str | None, base_url: str | None) -> tuple[str, str]:
    """(api key, base url) for a client; AuthenticationError when no key is found anywhere."""
    from .errors import AuthenticationError

    key, url = resolve(api_key, base_url)
    if not key:
        raise AuthenticationError(
            "no API key: pass api_key=, set VIBEBOX_API_KEY, or run `vibebox init`", code="not_authenticated"
        )
    return key, url
