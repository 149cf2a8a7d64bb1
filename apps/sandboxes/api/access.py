"""What a read (GET) may do to a sandbox: look, never change it.

Resuming a paused sandbox is a change, so it needs `sandboxes:write`: a GET that asks for it
(`?autoResume=true`) with a key lacking that scope is `403 insufficient_scope`, and the
sandbox's own `autoResume` setting does not apply to such a key (a paused sandbox stays paused:
`409 sandbox_paused`). Signed-in users (the dashboard) act with every scope.
"""

from apps.keys.models import ApiKey
from apps.keys.scopes import SANDBOXES_WRITE
from vibebox import exceptions as errors

from .. import states
from ..models import Sandbox, Status
from ..services.exec import require_not_paused


def may_write(request) -> bool:
    key = request.auth
    return not isinstance(key, ApiKey) or SANDBOXES_WRITE in key.scopes


def read_guard(request, sandbox: Sandbox, *, auto_resume: bool = False) -> None:
    """Call before a read that needs the sandbox unfrozen; `auto_resume`: the request asked."""
    states.require_reachable(sandbox)  # its node is down: 409 sandbox_unreachable
    writer = may_write(request)
    if auto_resume and not writer:
        raise errors.InsufficientScope(
            "Resuming a paused sandbox (autoResume) needs the sandboxes:write scope.",
            details={"required": [SANDBOXES_WRITE], "missing": [SANDBOXES_WRITE]},
        )
    if sandbox.status != Status.PAUSED:
        return
    if not writer:
        # The later require_running() would honour the sandbox's own autoResume setting.
        raise errors.SandboxPaused(
            "The sandbox is paused; a key without sandboxes:write cannot resume it.",
            details={"status": sandbox.status},
        )
    if auto_resume:
        require_not_paused(sandbox, auto_resume=True)
