"""Claude Code in sandboxes: its setup per sandbox, sessions, asks (one `claude -p` run each),
their events, the change sets waiting for review, and model usage through the gateway."""

from django.conf import settings
from django.db import models
from django.db.models import Q

from vibebox.ids import random_id


def new_ask_id() -> str:
    return random_id("ask_", 20)


def new_change_id() -> str:
    return random_id("chg_", 20)


class ClaudeSetup(models.Model):
    """Claude Code enabled on a sandbox. The gateway token (given to the sandbox as its
    ANTHROPIC_API_KEY) is stored only as a hash; a caller's own Anthropic key encrypted.
    `mode` is the collaboration mode (docs/claude.md): enforced by asks.py."""

    class Mode(models.TextChoices):
        HUMAN = "human"  # Claude asks are refused
        ASSIST = "assist"  # Claude's changes wait for a person's approval (review)
        AUTONOMOUS = "autonomous"  # Claude's change sets are applied without review

    sandbox = models.OneToOneField("sandboxes.Sandbox", on_delete=models.CASCADE, related_name="claude")
    api_key = models.ForeignKey("keys.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    version = models.CharField(max_length=64)
    home = models.CharField(max_length=200)  # the sandbox user's home (worktrees live under it)
    token_hash = models.CharField(max_length=64, unique=True)
    upstream_key = models.TextField(blank=True)  # Fernet token of the caller's own Anthropic key, or ""
    mcp = models.BooleanField(default=False)
    mcp_key = models.TextField(blank=True)  # Fernet token of the VibeBox key the sandbox's MCP server uses
    enabled_at = models.DateTimeField(auto_now_add=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)
    mode = models.CharField(max_length=16, choices=Mode.choices, default=Mode.ASSIST)
    model = models.CharField(max_length=100, blank=True)  # asks' default model, before the template's
    permission_mode = models.CharField(max_length=32, blank=True)  # asks' default, before the template's

    def __str__(self):
        return f"claude on {self.sandbox_id}"


class ClaudeSession(models.Model):
    """A Claude Code conversation (its id is Claude's session id). With review, Claude works
    on its own worktree and branch; `reviewed_commit` is where the pending changes start."""

    id = models.CharField(primary_key=True, max_length=64)
    sandbox = models.ForeignKey("sandboxes.Sandbox", on_delete=models.CASCADE, related_name="claude_sessions")
    api_key = models.ForeignKey("keys.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    title = models.CharField(max_length=200, blank=True)
    review = models.BooleanField(default=True)
    cwd = models.CharField(max_length=300)
    branch = models.CharField(max_length=120, blank=True)
    reviewed_commit = models.CharField(max_length=64, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    last_activity_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-last_activity_at"]

    def __str__(self):
        return self.id


class ClaudeAsk(models.Model):
    class Status(models.TextChoices):
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"
        TIMEOUT = "timeout"

    id = models.CharField(primary_key=True, max_length=32, default=new_ask_id, editable=False)
    session = models.ForeignKey(ClaudeSession, on_delete=models.CASCADE, related_name="asks")
    sandbox = models.ForeignKey("sandboxes.Sandbox", on_delete=models.CASCADE, related_name="claude_asks")
    api_key = models.ForeignKey("keys.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    prompt = models.TextField()
    options = models.JSONField(default=dict)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    error = models.TextField(blank=True)
    result = models.TextField(blank=True)
    is_error = models.BooleanField(default=False)
    num_turns = models.PositiveIntegerField(null=True, blank=True)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, null=True, blank=True)
    usage = models.JSONField(default=dict)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    exit_code = models.IntegerField(null=True, blank=True)
    execution_id = models.CharField(max_length=32, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["session"], condition=Q(status="running"), name="one_running_ask_per_session"
            )
        ]

    def __str__(self):
        return self.id


class ClaudeEvent(models.Model):
    """One line of an ask's stream-json output, as received."""

    ask = models.ForeignKey(ClaudeAsk, on_delete=models.CASCADE, related_name="events")
    seq = models.PositiveIntegerField()
    type = models.CharField(max_length=32)
    data = models.JSONField()
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["ask", "seq"]
        constraints = [models.UniqueConstraint(fields=["ask", "seq"], name="unique_claude_event_seq")]

    def __str__(self):
        return f"{self.ask_id}#{self.seq} {self.type}"


class ChangeSet(models.Model):
    """What one reviewed ask changed: commits `base..head` on the session's branch."""

    class Status(models.TextChoices):
        PENDING = "pending"
        APPROVED = "approved"
        REJECTED = "rejected"

    id = models.CharField(primary_key=True, max_length=32, default=new_change_id, editable=False)
    session = models.ForeignKey(ClaudeSession, on_delete=models.CASCADE, related_name="change_sets")
    ask = models.OneToOneField(ClaudeAsk, on_delete=models.CASCADE, related_name="change_set")
    base_commit = models.CharField(max_length=64)
    head_commit = models.CharField(max_length=64)
    files = models.JSONField(default=list)  # [{path, status, additions, deletions}]
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    reviewed_at = models.DateTimeField(null=True, blank=True)
    reviewed_by = models.ForeignKey("keys.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at"]

    def __str__(self):
        return self.id


class ModelUsage(models.Model):
    """One model request through the gateway: tokens and cost, for billing."""

    sandbox = models.ForeignKey("sandboxes.Sandbox", on_delete=models.CASCADE, related_name="model_usage")
    session = models.ForeignKey(ClaudeSession, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    ask = models.ForeignKey(ClaudeAsk, null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    api_key = models.ForeignKey("keys.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    model = models.CharField(max_length=100, blank=True)
    path = models.CharField(max_length=100)
    status = models.PositiveSmallIntegerField()
    input_tokens = models.PositiveIntegerField(default=0)
    output_tokens = models.PositiveIntegerField(default=0)
    cache_creation_tokens = models.PositiveIntegerField(default=0)
    cache_read_tokens = models.PositiveIntegerField(default=0)
    cost_usd = models.DecimalField(max_digits=12, decimal_places=6, default=0)
    own_key = models.BooleanField(default=False)  # the caller's own Anthropic key paid for it
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]
        indexes = [models.Index(fields=["sandbox", "created_at"]), models.Index(fields=["api_key", "created_at"])]

    def __str__(self):
        return f"{self.model} {self.input_tokens}+{self.output_tokens} tokens"


# ---- orchestration records (vibebox_sdk.agent): a run and its tasks, for the dashboard ----


def new_run_id() -> str:
    return random_id("run_", 20)


def new_task_id() -> str:
    return random_id("task_", 20)


class AgentRun(models.Model):
    """One orchestration run (a map, a pool, a stream...) as the SDK reports it."""

    class Kind(models.TextChoices):
        MAP = "map"
        TASK = "task"
        POOL = "pool"
        ORCHESTRATE = "orchestrate"
        STREAM = "stream"

    class Status(models.TextChoices):
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"

    id = models.CharField(primary_key=True, max_length=32, default=new_run_id, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="agent_runs")
    org = models.ForeignKey("orgs.Organization", null=True, on_delete=models.CASCADE, related_name="agent_runs")
    api_key = models.ForeignKey("keys.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=Kind.choices, default=Kind.MAP)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.RUNNING)
    parallelism = models.PositiveIntegerField(null=True, blank=True)
    template = models.CharField(max_length=64, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["owner", "-created_at"])]

    def __str__(self):
        return self.id


class AgentTask(models.Model):
    """One item of a run. `sandbox_id` is a plain id: sandboxes are destroyed, records stay."""

    class Status(models.TextChoices):
        PENDING = "pending"
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"
        CANCELLED = "cancelled"

    id = models.CharField(primary_key=True, max_length=32, default=new_task_id, editable=False)
    run = models.ForeignKey(AgentRun, on_delete=models.CASCADE, related_name="tasks")
    index = models.PositiveIntegerField()
    name = models.CharField(max_length=500, blank=True)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.PENDING)
    sandbox_id = models.CharField(max_length=32, blank=True)
    attempts = models.PositiveIntegerField(default=0)
    error = models.TextField(blank=True)
    result = models.JSONField(null=True, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "index"]
        constraints = [models.UniqueConstraint(fields=["run", "index"], name="unique_agent_task_index")]

    def __str__(self):
        return f"{self.run_id}#{self.index}"
