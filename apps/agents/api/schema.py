"""Schema-only serializers: the answers of /sandboxes/{id}/claude/… (built by `ask_body`,
`session_body`, `change_body` and apps.agents.setup as plain dicts)."""

from rest_framework import serializers

from ..models import ChangeSet, ClaudeAsk

ANY = serializers.JSONField
CHANGE_FILE_STATUSES = ["added", "modified", "deleted"]
REVIEW_STATUSES = ["approved", "rejected"]
MESSAGE_ROLES = ["user", "assistant", "tool", "result"]
MESSAGE_TYPES = ["prompt", "text", "tool_use", "tool_result", "result"]


class ModelUsageSerializer(serializers.Serializer):
    """Model calls through VibeBox's gateway, summed."""

    requests = serializers.IntegerField()
    inputTokens = serializers.IntegerField()
    outputTokens = serializers.IntegerField()
    cacheCreationTokens = serializers.IntegerField()
    cacheReadTokens = serializers.IntegerField()
    costUsd = serializers.FloatField()


class ClaudeEnabledSerializer(serializers.Serializer):
    installed = serializers.BooleanField()
    version = serializers.CharField(help_text="Claude Code's version.")
    enabled = serializers.BooleanField()
    mcp = serializers.BooleanField()
    ownKey = serializers.BooleanField(help_text="The sandbox's model calls use your own Anthropic key.")


class ClaudeStatusSerializer(serializers.Serializer):
    """When Claude is not enabled: only enabled (false), version (null), runningAsks, lastActivityAt, mcp."""

    enabled = serializers.BooleanField()
    version = serializers.CharField(allow_null=True)
    runningAsks = serializers.ListField(child=serializers.CharField(), help_text="Ids of the running asks.")
    lastActivityAt = serializers.DateTimeField(allow_null=True)
    mcp = serializers.BooleanField()
    enabledAt = serializers.DateTimeField(required=False)
    ownKey = serializers.BooleanField(required=False)
    sessions = serializers.IntegerField(required=False)
    usage = ModelUsageSerializer(required=False)


class ClaudeAskOptionsSerializer(serializers.Serializer):
    model = serializers.CharField(allow_null=True, required=False)
    permissionMode = serializers.CharField(required=False)
    allowedTools = serializers.ListField(child=serializers.CharField(), required=False)
    disallowedTools = serializers.ListField(child=serializers.CharField(), required=False)
    maxTurns = serializers.IntegerField(allow_null=True, required=False)
    appendSystemPrompt = serializers.CharField(allow_null=True, required=False)


class ClaudeAskSerializer(serializers.Serializer):
    askId = serializers.CharField()
    sessionId = serializers.CharField()
    status = serializers.ChoiceField(choices=ClaudeAsk.Status.choices)
    prompt = serializers.CharField()
    options = ClaudeAskOptionsSerializer()
    review = serializers.BooleanField(help_text="Claude works on its own branch; its changes wait for approval.")
    result = serializers.CharField(allow_null=True, help_text="Claude's final answer.")
    isError = serializers.BooleanField()
    error = serializers.CharField(allow_null=True)
    numTurns = serializers.IntegerField(allow_null=True)
    costUsd = serializers.FloatField(allow_null=True, help_text="As Claude Code reports it.")
    usage = serializers.DictField(help_text="Claude Code's own usage report (tokens...), as it gives it.")
    durationMs = serializers.IntegerField(allow_null=True)
    exitCode = serializers.IntegerField(allow_null=True)
    executionId = serializers.CharField(allow_null=True)
    changeSetId = serializers.CharField(allow_null=True, help_text="The change set this ask made, under review.")
    gatewayUsage = ModelUsageSerializer()
    startedAt = serializers.DateTimeField()
    finishedAt = serializers.DateTimeField(allow_null=True)


class ClaudeAskStartedSerializer(ClaudeAskSerializer):
    stream = serializers.CharField(help_text="The WebSocket path streaming this ask's events.")


class ClaudeAskListSerializer(serializers.Serializer):
    data = ClaudeAskSerializer(many=True, help_text="Newest first; at most 200.")


class ClaudeSessionSerializer(serializers.Serializer):
    sessionId = serializers.CharField()
    title = serializers.CharField()
    review = serializers.BooleanField()
    cwd = serializers.CharField()
    branch = serializers.CharField(allow_null=True, help_text="Claude's own branch (review mode).")
    createdAt = serializers.DateTimeField()
    lastActivityAt = serializers.DateTimeField()
    asks = serializers.IntegerField()
    pendingChanges = serializers.IntegerField()
    usage = ModelUsageSerializer()


class ClaudeSessionListSerializer(serializers.Serializer):
    data = ClaudeSessionSerializer(many=True, help_text="At most 200.")


class ClaudeMessageSerializer(serializers.Serializer):
    """One turn of the conversation; which fields it has depends on `type`."""

    role = serializers.ChoiceField(choices=MESSAGE_ROLES)
    type = serializers.ChoiceField(choices=MESSAGE_TYPES)
    askId = serializers.CharField()
    seq = serializers.IntegerField(required=False, help_text="Not on prompts.")
    text = serializers.CharField(required=False, allow_null=True, help_text="prompt, text and result.")
    toolUseId = serializers.CharField(required=False, allow_null=True, help_text="tool_use and tool_result.")
    name = serializers.CharField(required=False, allow_null=True, help_text="tool_use: the tool.")
    input = ANY(required=False, help_text="tool_use: the tool's input.")
    content = ANY(required=False, help_text="tool_result: what the tool answered.")
    isError = serializers.BooleanField(required=False, help_text="tool_result and result.")
    costUsd = serializers.FloatField(required=False, allow_null=True, help_text="result.")
    numTurns = serializers.IntegerField(required=False, allow_null=True, help_text="result.")


class ClaudeSessionDetailSerializer(ClaudeSessionSerializer):
    messages = ClaudeMessageSerializer(many=True)
    askIds = serializers.ListField(child=serializers.CharField(), help_text="Oldest first.")
    transcript = serializers.ListField(child=ANY(), required=False, help_text="With ?transcript=1: its JSON lines.")
    transcriptTruncated = serializers.BooleanField(required=False)


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
    id = serializers.CharField()
    sessionId = serializers.CharField()
    askId = serializers.CharField()
    status = serializers.ChoiceField(choices=ChangeSet.Status.choices)
    baseCommit = serializers.CharField()
    headCommit = serializers.CharField()
    files = ChangeFileSerializer(many=True)
    stats = ChangeStatsSerializer()
    createdAt = serializers.DateTimeField()
    reviewedAt = serializers.DateTimeField(allow_null=True)
    diff = serializers.CharField(required=False, help_text="The unified diff (GET changes, unless diff=false).")
    truncated = serializers.BooleanField(required=False, help_text="Whether the diff was cut.")


class ChangeSetListSerializer(serializers.Serializer):
    data = ChangeSetSerializer(many=True, help_text="At most 100.")


class ReviewResultSerializer(serializers.Serializer):
    status = serializers.ChoiceField(choices=REVIEW_STATUSES)
    changeSets = ChangeSetSerializer(many=True, help_text="The change sets approved or rejected.")
