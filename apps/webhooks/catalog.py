"""The events a webhook can subscribe to (docs/webhooks.md). `"*"` subscribes to all of them."""

ALL = "*"

EVENTS: dict[str, str] = {
    "sandbox.created": "A sandbox was created (its data: the sandbox, as GET /sandboxes/{id}).",
    "sandbox.started": "A sandbox started (at create with autoStart, or POST …/start).",
    "sandbox.stopped": "A sandbox stopped.",
    "sandbox.destroyed": "A sandbox was destroyed.",
    "sandbox.paused": "A sandbox was paused.",
    "sandbox.resumed": "A sandbox was resumed.",
    "sandbox.expired": "A sandbox reached its timeout and was stopped or destroyed.",
    "sandbox.error": "A sandbox went into the error state.",
    "sandbox.unreachable": "A sandbox's node stopped answering: the sandbox is unreachable until the node returns.",
    "sandbox.recovered": "A sandbox in error was recovered (POST …/recover): its container found, or made again.",
    "execution.completed": "A command or code run finished with exit code 0 (data: the execution).",
    "execution.failed": "A command or code run finished otherwise (non-zero exit, timeout).",
    "file.uploaded": "A file or archive was written into a sandbox.",
    "resource.limit_exceeded": "A sandbox or a command hit a limit (OOM kill, a command's timeout).",
    "snapshot.created": "A snapshot of a sandbox was taken.",
    "git.pulled": "An auto-pull webhook's push was pulled into a sandbox's repository (fast-forward).",
    "git.pull_failed": "An auto-pull webhook's push was not pulled: a conflict or a diverged branch (the tree is "
    "left alone), a sandbox not running, or a failed fetch (data.status says which).",
    "claude.ask.finished": "A Claude Code ask finished.",
    "claude.changes.pending": "A Claude Code ask left changes to review.",
    "agent_run.finished": "An agent run finished.",
    "key.created": "An API key was created in the organization.",
    "key.revoked": "An API key of the organization was revoked.",
    "template.published": "A template was published to the marketplace.",
    "template.rejected": "A reviewer rejected the organization's template submission.",
    "billing.threshold_reached": "80 % or 100 % of a monthly quota or of the budget was reached (once a month each).",
}

# Sent only by POST /webhooks/{id}/test, to that webhook alone (it cannot be subscribed to).
TEST = "webhook.test"


def unknown(names) -> list[str]:
    return sorted({name for name in names if name != ALL and name not in EVENTS})
