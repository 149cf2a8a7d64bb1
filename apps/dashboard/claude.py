"""The Claude parts of the dashboard beyond asking and reviewing (sandbox_dev.py): the sandbox's
Claude setup panel (collaboration mode, the asks' default model and permission mode, whose
Anthropic key pays), and the organization's Claude page (metrics over time).

Thin views over apps/agents (setup.claude_setup_update, the same service as
`PATCH …/claude/status`; metrics.claude_metrics) scoped like the other sandbox pages: another
organization's sandbox is a 404 page, a missing permission a 403 page naming it.
"""

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.shortcuts import redirect, render
from django.views.decorators.http import require_GET, require_POST

from apps.agents import metrics, setup
from apps.keys.actors import actor_of
from vibebox import exceptions as errors

from .sandbox_dev import _claude_sandbox, _claude_url

KEY_CHOICES = ("keep", "operator", "own")


@login_required
@require_POST
def sandbox_claude_setup(request, sandbox_id):
    """The setup panel's form: every field is sent, so each is applied as given ("" for the
    template's default); the key only when the form says to change it."""
    sandbox = _claude_sandbox(request, sandbox_id)
    post = request.POST
    choice = post.get("key", "keep")
    changes = {
        "mode": post.get("mode") or None,
        "model": post.get("model", "").strip(),
        "permission_mode": post.get("permission_mode", ""),
    }
    try:
        if choice not in KEY_CHOICES:
            raise errors.ValidationFailed("Choose whose Anthropic key to use.")
        if choice == "own":
            secret = post.get("anthropic_api_key", "").strip()
            if not secret:
                raise errors.ValidationFailed("Give your Anthropic API key, or keep the current one.")
            changes["anthropic_api_key"] = secret
        elif choice == "operator":
            changes["anthropic_api_key"] = ""
        found = setup.claude_setup_update(sandbox=sandbox, **changes)
    except errors.ApplicationError as exc:
        messages.error(request, f"The Claude setup was not changed: {exc.message} ({exc.code})")
    else:
        messages.success(request, f"Claude setup saved: {found.get_mode_display().lower()} mode.")
    return redirect(_claude_url(sandbox))


@login_required
@require_GET
def claude_page(request):
    """Claude's metrics over the sandboxes the user may read in the organization they act in."""
    found = metrics.claude_metrics(sandboxes=metrics.org_sandboxes(actor_of(request)))
    return render(request, "dashboard/claude.html", {"metrics": found, "nav": "claude", **chart_of(found)})


def chart_of(found: dict) -> dict:
    """The per-day series for the chart script (json_script)."""
    rows = found["days"]
    return {
        "chart": {
            "labels": [row["day"].isoformat() for row in rows],
            "asks": [row["asks"] for row in rows],
            "tokens": [row["input_tokens"] + row["output_tokens"] for row in rows],
            "cost": [row["cost_usd"] for row in rows],
        }
    }
