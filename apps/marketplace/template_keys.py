"""The product spec's template keys (spec 2.1), read the same way for built-in templates
(images/*/template.yaml) and marketplace submissions: each is honoured or refused with a message
that says why. Each function answers the normalised value or raises ValueError(message).

- `claude: {autoStart, model, permissions, mcpServers}`: Claude Code enabled at create with the
  creating key's rights (apps/agents/receivers.py), and the defaults of its asks;
- `autoStart: [claude-code]`: the spec's short form of `claude: {autoStart: true}` (Claude Code is
  the only thing VibeBox starts by name; a template's own command is `start:` or `services:`);
- `preInstalled`: a mapping (`git: "2.47"`) or the spec's list of one-entry mappings
  (`- git: "latest"`);
- `ports`: port numbers or the spec's `{container, protocol: tcp, description}`;
- `baseImage`: a built-in's image is built from its Dockerfile, so the key may only name that
  image (`vibebox/<name or alias>[:latest]`); a submission's is refused (FROM says it).
"""

import re

# Claude Code's permission modes (`claude --permission-mode`); apps/agents/asks.py uses these.
PERMISSION_MODES = ("acceptEdits", "default", "plan", "bypassPermissions", "dontAsk")
AUTO_STARTABLE = ("claude-code",)
CLAUDE_KEYS = {"autoStart", "model", "permissions", "mcpServers"}
MCP_SERVERS_MAX = 10
TOOLS_MAX = 100
MODEL_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/-]{0,99}$")
SERVER_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$")
PORTS_MAX = 10


def _tools(value, where: str) -> list[str]:
    if value is None:
        return []
    if not isinstance(value, list) or not all(isinstance(t, str) and t.strip() for t in value):
        raise ValueError(f"{where}: a list of tool names, e.g. [Edit, 'Bash(npm test:*)'].")
    if len(value) > TOOLS_MAX or any(len(t) > 200 or t.startswith("-") or "\0" in t for t in value):
        raise ValueError(f"{where}: at most {TOOLS_MAX} names of at most 200 characters, not starting with '-'.")
    return list(value)


def _permissions(value) -> dict:
    """`acceptEdits` or {mode, allow, deny}: the default permission mode and tools of asks."""
    if value is None:
        return {}
    if isinstance(value, str):
        value = {"mode": value}
    if not isinstance(value, dict) or set(value) - {"mode", "allow", "deny"}:
        raise ValueError("claude.permissions: a permission mode or a mapping {mode, allow, deny}.")
    mode = value.get("mode")
    if mode is not None and mode not in PERMISSION_MODES:
        raise ValueError(f"claude.permissions.mode: one of {', '.join(PERMISSION_MODES)}.")
    found = {"mode": mode} if mode else {}
    for key in ("allow", "deny"):
        tools = _tools(value.get(key), f"claude.permissions.{key}")
        if tools:
            found[key] = tools
    return found


def _mcp_servers(value) -> dict:
    """`[vibebox]` (VibeBox's own MCP server for the sandbox, with the creating key's scopes) and
    servers run inside the sandbox: {name: {command, args, env}}. Remote servers are refused: their
    credentials would have to live in the template."""
    if value is None:
        return {}
    if isinstance(value, list):
        if not all(isinstance(name, str) for name in value):
            raise ValueError("claude.mcpServers: a list of names ([vibebox]) or a mapping of name to server.")
        value = {name: {} for name in value}
    if not isinstance(value, dict) or len(value) > MCP_SERVERS_MAX:
        raise ValueError(f"claude.mcpServers: a list or mapping of at most {MCP_SERVERS_MAX} servers.")
    servers = {}
    for name, server in value.items():
        if not isinstance(name, str) or not SERVER_NAME_RE.match(name):
            raise ValueError(f"claude.mcpServers: {name!r} is not a server name (letters, digits, _ and -).")
        server = server or {}
        if name == "vibebox":
            if server:
                raise ValueError("claude.mcpServers.vibebox: VibeBox's own server takes no settings.")
            servers[name] = {}
            continue
        if not isinstance(server, dict) or set(server) - {"command", "args", "env"} or "command" not in server:
            raise ValueError(
                f"claude.mcpServers.{name}: a server run in the sandbox, {{command, args, env}} "
                "(only `vibebox` is known by name; remote servers are not supported)."
            )
        command, args, env = server["command"], server.get("args") or [], server.get("env") or {}
        if not isinstance(command, str) or not command.strip() or len(command) > 500:
            raise ValueError(f"claude.mcpServers.{name}.command: a program (at most 500 characters).")
        if not isinstance(args, list) or len(args) > 50 or not all(isinstance(a, str) and len(a) <= 500 for a in args):
            raise ValueError(f"claude.mcpServers.{name}.args: at most 50 strings.")
        if not isinstance(env, dict) or len(env) > 50 or not all(isinstance(v, str | int) for v in env.values()):
            raise ValueError(f"claude.mcpServers.{name}.env: a mapping of at most 50 names to strings.")
        servers[name] = {"command": command, "args": list(args), "env": {str(k): str(v) for k, v in env.items()}}
    return servers


def claude_config(value, *, auto_start=None) -> dict:
    """The template's Claude Code settings ({} when it has none): {autoStart, model?,
    permissions?, mcpServers?}. `auto_start` is the spec's top-level `autoStart:` list."""
    if value is None:
        value = {}
    if not isinstance(value, dict):
        raise ValueError("claude: a mapping {autoStart, model, permissions, mcpServers}.")
    unknown = sorted(map(str, set(value) - CLAUDE_KEYS))
    if unknown:
        raise ValueError(f"claude.{unknown[0]}: unknown key; known: {', '.join(sorted(CLAUDE_KEYS))}.")
    start = value.get("autoStart", False)
    if not isinstance(start, bool):
        raise ValueError("claude.autoStart: true or false.")
    if auto_start is not None:
        if not isinstance(auto_start, list) or not all(isinstance(item, str) for item in auto_start):
            raise ValueError("autoStart: a list of what starts with the sandbox, e.g. [claude-code].")
        others = [item for item in auto_start if item not in AUTO_STARTABLE]
        if others:
            raise ValueError(
                f"autoStart: {others[0]!r} cannot be started by name; only claude-code can "
                "(a template's own command runs from `start:` or `services:`)."
            )
        start = start or "claude-code" in auto_start
    model = value.get("model")
    if model is not None and (not isinstance(model, str) or not MODEL_RE.match(model)):
        raise ValueError("claude.model: a model name, e.g. claude-sonnet-4-5.")
    found = {
        "autoStart": start,
        **({"model": model} if model else {}),
        **({"permissions": p} if (p := _permissions(value.get("permissions"))) else {}),
        **({"mcpServers": s} if (s := _mcp_servers(value.get("mcpServers"))) else {}),
    }
    return found if value or start else {}


def pre_installed(value) -> dict[str, str]:
    """{tool: version} from a mapping or the spec's list of one-entry mappings."""
    if value is None:
        return {}
    if isinstance(value, list):
        merged = {}
        for item in value:
            if not isinstance(item, dict) or len(item) != 1:
                raise ValueError("preInstalled: a mapping (git: '2.47') or a list of one-entry mappings (- git: x).")
            merged.update(item)
        value = merged
    if not isinstance(value, dict) or len(value) > 50:
        raise ValueError("preInstalled: a mapping of at most 50 tools to versions.")
    bad = [str(k) for k, v in value.items() if not isinstance(v, str | int | float) or isinstance(v, bool)]
    if bad:
        raise ValueError(f"preInstalled.{bad[0]}: a version (a string).")
    return {str(k)[:64]: str(v)[:64] for k, v in value.items()}


def ports(value) -> list[dict]:
    """[{container, protocol, description?}] from port numbers or the spec's mappings (tcp only:
    preview URLs are HTTP)."""
    if value is None:
        return []
    if not isinstance(value, list) or len(value) > PORTS_MAX:
        raise ValueError(f"ports: a list of at most {PORTS_MAX} ports.")
    found = []
    for item in value:
        entry = {"container": item, "protocol": "tcp"} if not isinstance(item, dict) else dict(item)
        if set(entry) - {"container", "protocol", "description"}:
            raise ValueError("ports: each is a number or {container, protocol, description}.")
        port = entry.get("container")
        if isinstance(port, bool) or not isinstance(port, int) or not 1024 <= port <= 65535:
            raise ValueError("ports: container ports are 1024..65535 (no privileged ports).")
        if entry.get("protocol", "tcp") != "tcp":
            raise ValueError(f"ports: {port}/{entry['protocol']}: only tcp (preview URLs are HTTP).")
        description = entry.get("description")
        if description is not None and (not isinstance(description, str) or len(description) > 200):
            raise ValueError(f"ports: {port}'s description is a string of at most 200 characters.")
        found.append({"container": port, "protocol": "tcp", **({"description": description} if description else {})})
    return found


def base_image(value, *, names: list[str], prefix: str) -> None:
    """A built-in's `baseImage` may only name its own image (built from its Dockerfile)."""
    if value is None:
        return
    allowed = {f"{prefix}/{name}{tag}" for name in names for tag in ("", ":latest")}
    if value not in allowed:
        raise ValueError(
            f"baseImage {value!r}: a built-in template's image is built from its Dockerfile; "
            f"baseImage may only name it ({prefix}/{names[0]}:latest)."
        )
