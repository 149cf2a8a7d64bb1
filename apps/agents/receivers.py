"""What the agents app does when lower apps announce something (connected in AgentsConfig.ready)."""

from django.conf import settings
from django.dispatch import receiver

from apps.sandboxes.signals import reconcile_pass, sandbox_created

from .asks import asks_orphaned
from .setup import claude_auto_start


@receiver(reconcile_pass, dispatch_uid="agents.asks_orphaned")
def _asks_orphaned(*, startup: bool, **_) -> dict[str, int]:
    """Claude asks run in the web process, like executions: a restart leaves them `running`."""
    grace = settings.VIBEBOX_CLAUDE_ASK_TIMEOUT + settings.VIBEBOX_STUCK_AFTER
    return {"asks_abandoned": asks_orphaned(older_than_seconds=0 if startup else grace)}


@receiver(sandbox_created, dispatch_uid="agents.claude_auto_start")
def _claude_auto_start(*, sandbox, api_key, **_) -> None:
    """A template with `claude: {autoStart: true}`: Claude Code enabled at create, as
    `POST …/claude/enable` would with the creating key (its errors undo the create)."""
    claude_auto_start(sandbox=sandbox, api_key=api_key)
