from rest_framework import serializers

from vibebox.api.serializers import StrictSerializer

from ..asks import PERMISSION_MODES
from ..models import ModelUsage
from ..usage import totals


class EnableSerializer(StrictSerializer):
    anthropicApiKey = serializers.CharField(
        required=False,
        allow_blank=True,
        write_only=True,
        max_length=500,
        help_text="Your own Anthropic key for this sandbox's model calls (stored encrypted; never enters the sandbox).",
    )
    mcp = serializers.BooleanField(
        required=False, default=False, help_text="Give Claude VibeBox's MCP server, scoped to this sandbox."
    )


class AskSerializer(StrictSerializer):
    prompt = serializers.CharField(trim_whitespace=False, max_length=200_000)
    sessionId = serializers.CharField(required=False, allow_null=True, max_length=64)
    model = serializers.CharField(required=False, allow_null=True, max_length=100)
    permissionMode = serializers.ChoiceField(choices=PERMISSION_MODES, required=False, default="acceptEdits")
    allowedTools = serializers.ListField(child=serializers.CharField(max_length=200), required=False, max_length=100)
    disallowedTools = serializers.ListField(child=serializers.CharField(max_length=200), required=False, max_length=100)
    maxTurns = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=500)
    appendSystemPrompt = serializers.CharField(
        required=False, allow_null=True, max_length=100_000, trim_whitespace=False
    )
    review = serializers.BooleanField(
        required=False,
        allow_null=True,
        default=None,
        help_text="Claude works on its own branch and its changes wait for approval (default true for a new session).",
    )


class ReviewSerializer(StrictSerializer):
    sessionId = serializers.CharField(
        required=False, allow_null=True, max_length=64, help_text="Default: every session."
    )


def iso(value):
    return value.isoformat().replace("+00:00", "Z") if value else None


def ask_body(ask) -> dict:
    return {
        "askId": ask.id,
        "sessionId": ask.session_id,
        "status": ask.status,
        "prompt": ask.prompt,
        "options": ask.options,
        "review": ask.session.review,
        "result": ask.result or None,
        "isError": ask.is_error,
        "error": ask.error or None,
        "numTurns": ask.num_turns,
        "costUsd": float(ask.cost_usd) if ask.cost_usd is not None else None,
        "usage": ask.usage,
        "durationMs": ask.duration_ms,
        "exitCode": ask.exit_code,
        "executionId": ask.execution_id or None,
        "changeSetId": getattr(getattr(ask, "change_set", None), "id", None),
        "gatewayUsage": totals(ModelUsage.objects.filter(ask=ask)),
        "startedAt": iso(ask.started_at),
        "finishedAt": iso(ask.finished_at),
    }


def session_body(session) -> dict:
    return {
        "sessionId": session.id,
        "title": session.title,
        "review": session.review,
        "cwd": session.cwd,
        "branch": session.branch or None,
        "createdAt": iso(session.created_at),
        "lastActivityAt": iso(session.last_activity_at),
        "asks": session.asks.count(),
        "pendingChanges": session.change_sets.filter(status="pending").count(),
        "usage": totals(ModelUsage.objects.filter(session=session)),
    }


def change_body(change, diff: tuple[str, bool] | None = None) -> dict:
    body = {
        "id": change.id,
        "sessionId": change.session_id,
        "askId": change.ask_id,
        "status": change.status,
        "baseCommit": change.base_commit,
        "headCommit": change.head_commit,
        "files": change.files,
        "stats": {
            "files": len(change.files),
            "additions": sum(f.get("additions", 0) for f in change.files),
            "deletions": sum(f.get("deletions", 0) for f in change.files),
        },
        "createdAt": iso(change.created_at),
        "reviewedAt": iso(change.reviewed_at),
    }
    if diff is not None:
        body["diff"], body["truncated"] = diff
    return body
