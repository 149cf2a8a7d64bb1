"""Bodies of /api/v1/sandboxes/{id}/claude/…. Requests are validated by the Strict serializers;
each answer is rendered by the serializer that also describes it to the OpenAPI document, from
the models and the snake_case values the domain modules answer."""

from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from vibebox.api.serializers import StrictSerializer

from ..asks import PERMISSION_MODES
from ..models import ChangeSet, ClaudeAsk, ClaudeSetup, ModelUsage
from ..selectors import conversation
from ..usage import totals

ANY = serializers.JSONField
CHANGE_FILE_STATUSES = ["added", "modified", "deleted"]
REVIEW_STATUSES = ["approved", "rejected"]
MESSAGE_ROLES = ["user", "assistant", "tool", "result"]
MESSAGE_TYPES = ["prompt", "text", "tool_use", "tool_result", "result"]
MODES = ClaudeSetup.Mode.values


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
    model = serializers.CharField(
        required=False,
        allow_null=True,
        max_length=100,
        help_text="Default: the template's `claude.model`, else Claude's.",
    )
    permissionMode = serializers.ChoiceField(
        choices=PERMISSION_MODES,
        required=False,
        help_text="Default: the template's (template.yaml `claude.permissions`), else acceptEdits.",
    )
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


class ClaudeSetupUpdateSerializer(StrictSerializer):
    """PATCH …/claude/status: only the fields given change."""

    mode = serializers.ChoiceField(
        choices=MODES,
        required=False,
        help_text="Collaboration mode: human (Claude asks are refused, 409 claude_disabled_by_mode), assist"
        " (Claude's changes wait for approval), autonomous (Claude's change sets are applied without review).",
    )
    model = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        max_length=100,
        help_text="The asks' default model; null or \"\": the template's `claude.model`, else Claude's.",
    )
    permissionMode = serializers.ChoiceField(
        choices=PERMISSION_MODES,
        required=False,
        allow_null=True,
        allow_blank=True,
        help_text="The asks' default permission mode; null or \"\": the template's, else acceptEdits.",
    )
    anthropicApiKey = serializers.CharField(
        required=False,
        allow_null=True,
        allow_blank=True,
        write_only=True,
        max_length=500,
        help_text='Your own Anthropic key for this sandbox\'s model calls (stored encrypted); null or "":'
        " the operator's key.",
    )


class ReviewSerializer(StrictSerializer):
    sessionId = serializers.CharField(
        required=False, allow_null=True, max_length=64, help_text="Default: every session."
    )


def iso(value):
    return value.isoformat().replace("+00:00", "Z") if value else None


class BlankAsNull(serializers.CharField):
    """A text column where "" means "none": rendered as null."""

    def __init__(self, **kwargs):
        super().__init__(allow_null=True, **kwargs)

    def to_representation(self, value):
        return value or None


@extend_schema_field(OpenApiTypes.BOOL)
class AlwaysTrue(serializers.Field):
    def __init__(self, **kwargs):
        super().__init__(source="*", read_only=True, **kwargs)

    def to_representation(self, value):
        return True


# ---- answers ----


class ModelUsageSerializer(serializers.Serializer):
    """Model calls through VibeBox's gateway, summed."""

    # renders apps.agents.usage.totals

    requests = serializers.IntegerField()
    inputTokens = serializers.IntegerField(source="input_tokens")
    outputTokens = serializers.IntegerField(source="output_tokens")
    cacheCreationTokens = serializers.IntegerField(source="cache_creation_tokens")
    cacheReadTokens = serializers.IntegerField(source="cache_read_tokens")
    costUsd = serializers.FloatField(source="cost_usd")


def _usage_of(**filters) -> dict:
    return ModelUsageSerializer(totals(ModelUsage.objects.filter(**filters))).data


class ClaudeEnabledSerializer(serializers.Serializer):
    # renders a ClaudeSetup
    installed = AlwaysTrue()
    version = serializers.CharField(help_text="Claude Code's version.")
    enabled = AlwaysTrue()
    mcp = serializers.BooleanField()
    ownKey = serializers.SerializerMethodField(help_text="The sandbox's model calls use your own Anthropic key.")

    def get_ownKey(self, setup) -> bool:
        return bool(setup.upstream_key)


class ClaudeStatusSerializer(serializers.Serializer):
    """When Claude is not enabled: only enabled (false), version (null), runningAsks, lastActivityAt, mcp."""

    # renders apps.agents.setup.claude_status

    enabled = serializers.BooleanField()
    version = serializers.CharField(allow_null=True)
    runningAsks = serializers.ListField(
        source="running_asks", child=serializers.CharField(), help_text="Ids of the running asks."
    )
    lastActivityAt = serializers.DateTimeField(source="last_activity_at", allow_null=True)
    mcp = serializers.BooleanField()
    enabledAt = serializers.DateTimeField(source="enabled_at", required=False)
    ownKey = serializers.BooleanField(source="own_key", required=False)
    sessions = serializers.IntegerField(required=False)
    usage = ModelUsageSerializer(required=False)
    mode = serializers.ChoiceField(choices=MODES, required=False, help_text="The collaboration mode.")
    model = serializers.CharField(
        allow_null=True, required=False, help_text="The asks' default model set on the sandbox (null: none set)."
    )
    permissionMode = serializers.CharField(
        source="permission_mode", allow_null=True, required=False, help_text="The asks' default permission mode set."
    )
    effectiveModel = serializers.CharField(
        source="effective_model",
        allow_null=True,
        required=False,
        help_text="What an ask naming no model gets: the sandbox's, else the template's (null: Claude's default).",
    )
    effectivePermissionMode = serializers.CharField(
        source="effective_permission_mode", required=False, help_text="What an ask naming none gets."
    )
    mcpServers = serializers.ListField(
        source="mcp_servers",
        child=serializers.CharField(),
        required=False,
        help_text="The MCP servers Claude is given: `vibebox` (enable's mcp) and the template's.",
    )


class ClaudeAskOptionsSerializer(serializers.Serializer):
    # renders ClaudeAsk.options, as stored
    model = serializers.CharField(allow_null=True, required=False)
    permissionMode = serializers.CharField(required=False)
    allowedTools = serializers.ListField(child=serializers.CharField(), required=False)
    disallowedTools = serializers.ListField(child=serializers.CharField(), required=False)
    maxTurns = serializers.IntegerField(allow_null=True, required=False)
    appendSystemPrompt = serializers.CharField(allow_null=True, required=False)


class ClaudeAskSerializer(serializers.Serializer):
    askId = serializers.CharField(source="id")
    sessionId = serializers.CharField(source="session_id")
    status = serializers.ChoiceField(choices=ClaudeAsk.Status.choices)
    prompt = serializers.CharField()
    options = ClaudeAskOptionsSerializer()
    review = serializers.BooleanField(
        source="session.review", help_text="Claude works on its own branch; its changes wait for approval."
    )
    result = BlankAsNull(help_text="Claude's final answer.")
    isError = serializers.BooleanField(source="is_error")
    error = BlankAsNull()
    numTurns = serializers.IntegerField(source="num_turns", allow_null=True)
    costUsd = serializers.FloatField(source="cost_usd", allow_null=True, help_text="As Claude Code reports it.")
    usage = serializers.DictField(help_text="Claude Code's own usage report (tokens...), as it gives it.")
    durationMs = serializers.IntegerField(source="duration_ms", allow_null=True)
    exitCode = serializers.IntegerField(source="exit_code", allow_null=True)
    executionId = BlankAsNull(source="execution_id")
    changeSetId = serializers.SerializerMethodField(help_text="The change set this ask made, under review.")
    gatewayUsage = serializers.SerializerMethodField()
    startedAt = serializers.DateTimeField(source="started_at")
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)

    def get_changeSetId(self, ask) -> str | None:
        return getattr(getattr(ask, "change_set", None), "id", None)

    @extend_schema_field(ModelUsageSerializer)
    def get_gatewayUsage(self, ask) -> dict:
        return _usage_of(ask=ask)


class ClaudeAskStartedSerializer(ClaudeAskSerializer):
    stream = serializers.SerializerMethodField(help_text="The WebSocket path streaming this ask's events.")

    def get_stream(self, ask) -> str:
        return f"/ws/sandboxes/{ask.sandbox_id}/claude?askId={ask.id}"


class ClaudeAskListSerializer(serializers.Serializer):
    data = ClaudeAskSerializer(many=True, help_text="Newest first; at most 200.")


class ClaudeSessionSerializer(serializers.Serializer):
    sessionId = serializers.CharField(source="id")
    title = serializers.CharField()
    review = serializers.BooleanField()
    cwd = serializers.CharField()
    branch = BlankAsNull(help_text="Claude's own branch (review mode).")
    createdAt = serializers.DateTimeField(source="created_at")
    lastActivityAt = serializers.DateTimeField(source="last_activity_at")
    asks = serializers.SerializerMethodField()
    pendingChanges = serializers.SerializerMethodField()
    usage = serializers.SerializerMethodField()

    def get_asks(self, session) -> int:
        return session.asks.count()

    def get_pendingChanges(self, session) -> int:
        return session.change_sets.filter(status=ChangeSet.Status.PENDING).count()

    @extend_schema_field(ModelUsageSerializer)
    def get_usage(self, session) -> dict:
        return _usage_of(session=session)


class ClaudeSessionListSerializer(serializers.Serializer):
    data = ClaudeSessionSerializer(many=True, help_text="At most 200.")


class ClaudeMessageSerializer(serializers.Serializer):
    """One turn of the conversation; which fields it has depends on `type`."""

    # renders an entry of apps.agents.selectors.conversation

    role = serializers.ChoiceField(choices=MESSAGE_ROLES)
    type = serializers.ChoiceField(choices=MESSAGE_TYPES)
    askId = serializers.CharField(source="ask_id")
    seq = serializers.IntegerField(required=False, help_text="Not on prompts.")
    text = serializers.CharField(required=False, allow_null=True, help_text="prompt, text and result.")
    toolUseId = serializers.CharField(
        source="tool_use_id", required=False, allow_null=True, help_text="tool_use and tool_result."
    )
    name = serializers.CharField(required=False, allow_null=True, help_text="tool_use: the tool.")
    input = ANY(required=False, help_text="tool_use: the tool's input.")
    content = ANY(required=False, help_text="tool_result: what the tool answered.")
    isError = serializers.BooleanField(source="is_error", required=False, help_text="tool_result and result.")
    costUsd = serializers.FloatField(source="cost_usd", required=False, allow_null=True, help_text="result.")
    numTurns = serializers.IntegerField(source="num_turns", required=False, allow_null=True, help_text="result.")


class ClaudeSessionDetailSerializer(ClaudeSessionSerializer):
    # context["transcript"] (entries, truncated) adds Claude's own transcript
    messages = serializers.SerializerMethodField()
    askIds = serializers.SerializerMethodField(help_text="Oldest first.")
    transcript = serializers.ListField(child=ANY(), required=False, help_text="With ?transcript=1: its JSON lines.")
    transcriptTruncated = serializers.BooleanField(required=False)

    @extend_schema_field(ClaudeMessageSerializer(many=True))
    def get_messages(self, session) -> list:
        return ClaudeMessageSerializer(conversation(session), many=True).data

    def get_askIds(self, session) -> list[str]:
        return list(session.asks.order_by("started_at").values_list("id", flat=True))

    def to_representation(self, session):
        body = super().to_representation(session)
        if "transcript" in self.context:
            body["transcript"], body["transcriptTruncated"] = self.context["transcript"]
        return body


class ChangeFileSerializer(serializers.Serializer):
    path = serializers.CharField()
    status = serializers.ChoiceField(choices=CHANGE_FILE_STATUSES)
    additions = serializers.IntegerField()
    deletions = serializers.IntegerField()
    binary = serializers.BooleanField(required=False)


class ChangeStatsSerializer(serializers.Serializer):
    files = serializers.IntegerField()
    additions = serializers.IntegerField()
    deletions = serializers.IntegerField()


class ChangeSetSerializer(serializers.Serializer):
    # context["diffs"] (change id -> (text, truncated)) adds each change set's diff
    id = serializers.CharField()
    sessionId = serializers.CharField(source="session_id")
    askId = serializers.CharField(source="ask_id")
    status = serializers.ChoiceField(choices=ChangeSet.Status.choices)
    baseCommit = serializers.CharField(source="base_commit")
    headCommit = serializers.CharField(source="head_commit")
    files = ChangeFileSerializer(many=True)
    stats = serializers.SerializerMethodField()
    createdAt = serializers.DateTimeField(source="created_at")
    reviewedAt = serializers.DateTimeField(source="reviewed_at", allow_null=True)
    diff = serializers.CharField(required=False, help_text="The unified diff (GET changes, unless diff=false).")
    truncated = serializers.BooleanField(required=False, help_text="Whether the diff was cut.")

    @extend_schema_field(ChangeStatsSerializer)
    def get_stats(self, change) -> dict:
        return {
            "files": len(change.files),
            "additions": sum(f.get("additions", 0) for f in change.files),
            "deletions": sum(f.get("deletions", 0) for f in change.files),
        }

    def to_representation(self, change):
        body = super().to_representation(change)
        diff = self.context.get("diffs", {}).get(change.id)
        if diff is not None:
            body["diff"], body["truncated"] = diff
        return body


class ChangeSetListSerializer(serializers.Serializer):
    data = ChangeSetSerializer(many=True, help_text="At most 100.")


class ReviewResultSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=REVIEW_STATUSES)
    changeSets = ChangeSetSerializer(source="change_sets", many=True, help_text="The change sets approved or rejected.")
