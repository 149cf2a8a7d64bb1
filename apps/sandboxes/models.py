from django.conf import settings
from django.db import models
from django.db.models import Q

from vibebox.crypto import decrypt
from vibebox.ids import random_id

from .runtime.base import NodeConnection


def new_sandbox_id() -> str:
    return random_id("sbx_", 20)  # about 119 random bits


def new_execution_id() -> str:
    return random_id("exec_", 20)


def new_snapshot_id() -> str:
    return random_id("snap_", 20)


def new_grant_id() -> str:
    return random_id("grt_", 20)


class Status(models.TextChoices):
    CREATING = "creating"
    STARTING = "starting"
    RUNNING = "running"
    PAUSED = "paused"
    STOPPING = "stopping"
    STOPPED = "stopped"
    DESTROYING = "destroying"
    DESTROYED = "destroyed"
    ERROR = "error"
    UNREACHABLE = "unreachable"  # its node is down (docs/nodes.md): back to what the engine says when it returns


class Sandbox(models.Model):
    id = models.CharField(primary_key=True, max_length=32, default=new_sandbox_id, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="sandboxes")
    # RESTRICT: an organization with sandboxes is not deleted, but a user's deletion (which takes
    # their personal organization and their sandboxes together) is not stopped by it.
    org = models.ForeignKey("orgs.Organization", null=True, on_delete=models.RESTRICT, related_name="sandboxes")
    api_key = models.ForeignKey("keys.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    name = models.CharField(max_length=64)
    template = models.ForeignKey("marketplace.Template", on_delete=models.PROTECT, related_name="sandboxes")
    # A marketplace template's version it was created from (pinned or the latest); "" for built-ins.
    template_version = models.CharField(max_length=32, blank=True)
    image = models.CharField(max_length=200)
    status = models.CharField(max_length=16, choices=Status.choices, default=Status.CREATING)
    status_reason = models.CharField(max_length=500, blank=True)
    ephemeral = models.BooleanField(default=False)
    timeout_seconds = models.PositiveIntegerField(null=True, blank=True)
    expires_at = models.DateTimeField(null=True, blank=True)
    cpu = models.FloatField()
    memory = models.PositiveBigIntegerField()
    disk = models.PositiveBigIntegerField(null=True, blank=True)
    env = models.JSONField(default=dict, blank=True)
    metadata = models.JSONField(default=dict, blank=True)
    # The egress policy in force (apps/orgs/network.py), resolved at create; {}: the platform's.
    network = models.JSONField(default=dict, blank=True)
    # Its address on the sandbox bridge while its rules are in force (the egress proxy knows it by it).
    network_address = models.CharField(max_length=45, blank=True, db_index=True)
    container_id = models.CharField(max_length=80, blank=True)
    # The workspace volume when it is not `<id>-workspace` (a restore builds a new one beside the old).
    workspace_volume = models.CharField(max_length=100, blank=True)
    warm = models.BooleanField(default=False)  # its container came ready from a warm pool
    auto_pause_seconds = models.PositiveIntegerField(null=True, blank=True)  # pause after this long idle
    auto_resume = models.BooleanField(default=False)  # commands and files resume a paused sandbox
    pause_stops_timeout = models.BooleanField(default=False)  # time paused does not count toward expiry
    paused_at = models.DateTimeField(null=True, blank=True)
    last_activity_at = models.DateTimeField(null=True, blank=True)  # API, exec or terminal use (10 s precision)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now_add=True)  # set by every state change
    started_at = models.DateTimeField(null=True, blank=True)
    stopped_at = models.DateTimeField(null=True, blank=True)
    destroyed_at = models.DateTimeField(null=True, blank=True)
    # Preview URLs: flags per port, {"3000": {"public": true}} (apps/sandboxes/preview/).
    ports = models.JSONField(default=dict, blank=True)
    # The engine the container lives on: null is the local engine (docs/nodes.md). Chosen once, at
    # create; every engine call for the sandbox goes through runtime.driver_for(sandbox).
    node = models.ForeignKey("Node", null=True, blank=True, on_delete=models.PROTECT, related_name="sandboxes")
    # The node labels its engine must have (docs/nodes.md, "Placement"): the create's `nodeLabels`
    # merged with its template's, its organization's and its snapshot's, as placement used them;
    # its snapshots keep them, so a create or restore from one runs only where they are.
    node_labels = models.JSONField(default=dict, blank=True)

    class Meta:
        ordering = ["-created_at"]
        constraints = [
            models.UniqueConstraint(
                fields=["owner", "name"], condition=~Q(status="destroyed"), name="unique_live_sandbox_name"
            ),
        ]
        indexes = [
            models.Index(fields=["owner", "status"]),
            models.Index(fields=["status", "expires_at"]),
        ]

    def __str__(self):
        return f"{self.name} ({self.id})"

    @property
    def container_name(self) -> str:
        return self.id

    @property
    def volume_name(self) -> str:
        return self.workspace_volume or f"{self.id}-workspace"


class Execution(models.Model):
    """One command (`exec`) or code snippet (`execute`) run in a sandbox, with its outcome.

    Output is stored capped (VIBEBOX_EXEC_STORED_OUTPUT per stream) with secret env values
    masked; the byte counts are of everything the command printed.
    """

    class Kind(models.TextChoices):
        EXEC = "exec"
        EXECUTE = "execute"

    class Status(models.TextChoices):
        RUNNING = "running"
        COMPLETED = "completed"
        FAILED = "failed"
        TIMEOUT = "timeout"
        ERROR = "error"

    id = models.CharField(primary_key=True, max_length=32, default=new_execution_id, editable=False)
    sandbox = models.ForeignKey(Sandbox, on_delete=models.CASCADE, related_name="executions")
    api_key = models.ForeignKey("keys.ApiKey", null=True, blank=True, on_delete=models.SET_NULL, related_name="+")
    kind = models.CharField(max_length=8, choices=Kind.choices)
    background = models.BooleanField(default=False)  # started with background: true (a process)
    language = models.CharField(max_length=16, blank=True)
    command = models.TextField(blank=True)  # the command, or the code's first lines
    code_sha256 = models.CharField(max_length=64, blank=True)
    cwd = models.CharField(max_length=1024, blank=True)
    user = models.CharField(max_length=64, blank=True)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.RUNNING)
    exit_code = models.IntegerField(null=True, blank=True)
    duration_ms = models.PositiveIntegerField(null=True, blank=True)
    stdout = models.TextField(blank=True)
    stderr = models.TextField(blank=True)
    stdout_bytes = models.PositiveBigIntegerField(default=0)
    stderr_bytes = models.PositiveBigIntegerField(default=0)
    truncated = models.BooleanField(default=False)
    oom_killed = models.BooleanField(default=False)
    return_value = models.JSONField(null=True, blank=True)
    started_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-started_at"]
        indexes = [models.Index(fields=["sandbox", "-started_at"])]

    def __str__(self):
        return f"{self.id} ({self.kind}, {self.status})"


class SandboxGitConfig(models.Model):
    """A repository cloned into a sandbox. The URL is stored without credentials; credentials
    are stored (encrypted) only when the caller asked for them to be kept."""

    sandbox = models.ForeignKey(Sandbox, on_delete=models.CASCADE, related_name="git_repos")
    path = models.CharField(max_length=1024, default="/repo")
    repo_url = models.CharField(max_length=2048)
    branch = models.CharField(max_length=255, blank=True)
    auth = models.TextField(blank=True)  # encrypted JSON of the kept credentials, or empty
    cloned_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["sandbox", "path"], name="unique_sandbox_git_path")]

    def __str__(self):
        return f"{self.repo_url} at {self.path}"


class WarmPool(models.Model):
    """Started, hardened, unassigned containers of one template, kept ready for creates.

    The pool holds between `min_size` and `max_size` containers: the target follows the number
    of creates of the template over the last VIBEBOX_POOL_DEMAND_WINDOW."""

    template = models.ForeignKey("marketplace.Template", on_delete=models.CASCADE, related_name="warm_pools")
    # The resources key: a create takes from the pool of its template with its cpu and memory.
    cpu = models.FloatField(default=1.0)
    memory = models.PositiveBigIntegerField(default=1024**3)
    enabled = models.BooleanField(default=True)
    min_size = models.PositiveIntegerField(default=2)
    max_size = models.PositiveIntegerField(default=10)
    target_size = models.PositiveIntegerField(default=2)
    hits = models.PositiveBigIntegerField(default=0)
    misses = models.PositiveBigIntegerField(default=0)
    replaced = models.PositiveBigIntegerField(default=0)  # pooled containers that failed a health check
    last_ready_ms = models.PositiveIntegerField(null=True, blank=True)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["template", "cpu", "memory"], name="unique_pool_resources")]

    def __str__(self):
        return f"pool of {self.template_id} ({self.cpu:g} cpu, {self.memory // 1024**2} MiB)"


class PooledContainer(models.Model):
    """One container of a warm pool. Its id is the id of the sandbox that will take it, so the
    container and volume names never change (`<id>`, `<id>-workspace`)."""

    class Status(models.TextChoices):
        CREATING = "creating"
        READY = "ready"

    id = models.CharField(primary_key=True, max_length=32, default=new_sandbox_id, editable=False)
    pool = models.ForeignKey(WarmPool, on_delete=models.CASCADE, related_name="containers")
    # The engine it is on (null: the local engine). A pool's size applies on each placeable engine
    # (docs/nodes.md, "Per-node warm pools"); a removed node's rows go with it (its containers stay
    # there, as everything else of a removed node does).
    node = models.ForeignKey("Node", null=True, blank=True, on_delete=models.CASCADE, related_name="pooled")
    image = models.CharField(max_length=200)
    status = models.CharField(max_length=12, choices=Status.choices, default=Status.CREATING)
    container_id = models.CharField(max_length=80, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    ready_at = models.DateTimeField(null=True, blank=True)
    ready_ms = models.PositiveIntegerField(null=True, blank=True)

    class Meta:
        indexes = [models.Index(fields=["pool", "status", "ready_at"])]

    def __str__(self):
        return f"{self.id} ({self.status})"


class Snapshot(models.Model):
    """A sandbox's filesystem at one moment: the container committed as an image, plus a tar of
    its workspace volume (which a commit leaves out). Memory and /tmp (a tmpfs) are not in it.
    It outlives its sandbox; new sandboxes can be created from it."""

    id = models.CharField(primary_key=True, max_length=32, default=new_snapshot_id, editable=False)
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.CASCADE, related_name="snapshots")
    org = models.ForeignKey("orgs.Organization", null=True, on_delete=models.RESTRICT, related_name="snapshots")
    sandbox = models.ForeignKey(Sandbox, null=True, blank=True, on_delete=models.SET_NULL, related_name="snapshots")
    sandbox_name = models.CharField(max_length=64, blank=True)
    template = models.ForeignKey("marketplace.Template", on_delete=models.PROTECT, related_name="+")
    name = models.CharField(max_length=100, blank=True)
    image = models.CharField(max_length=200)  # the committed image's tag
    image_bytes = models.PositiveBigIntegerField(default=0)  # what the commit adds to the template image
    workspace_bytes = models.PositiveBigIntegerField(default=0)
    # The engine holding the image: null is the local engine (docs/nodes.md).
    node = models.ForeignKey("Node", null=True, blank=True, on_delete=models.PROTECT, related_name="snapshots")
    workspace_sha256 = models.CharField(max_length=64, blank=True)  # of the archive, checked before each use
    # Its sandbox's node labels (Sandbox.node_labels): a create or restore from it runs only where they are.
    node_labels = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self):
        return f"{self.name or self.id} of {self.sandbox_name}"

    @property
    def size(self) -> int:
        return self.image_bytes + self.workspace_bytes


class SandboxGrant(models.Model):
    """One sandbox shared with one member or one team of its organization, at a level: `read` <
    `use` < `manage`, each with those below it (selectors.check_access). A grant only widens what
    the member's role allows; a team's reaches whoever is in the team at the time of the request."""

    class Access(models.TextChoices):
        READ = "read"
        USE = "use"
        MANAGE = "manage"

    id = models.CharField(primary_key=True, max_length=32, default=new_grant_id, editable=False)
    sandbox = models.ForeignKey(Sandbox, on_delete=models.CASCADE, related_name="grants")
    user = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.CASCADE, related_name="sandbox_grants"
    )
    team = models.ForeignKey(
        "orgs.Team", null=True, blank=True, on_delete=models.CASCADE, related_name="sandbox_grants"
    )
    access = models.CharField(max_length=8, choices=Access.choices)
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]
        constraints = [
            models.CheckConstraint(
                condition=(Q(user__isnull=False) & Q(team__isnull=True))
                | (Q(user__isnull=True) & Q(team__isnull=False)),
                name="sandboxes_grant_user_or_team",
            ),
            models.UniqueConstraint(fields=["sandbox", "user"], name="sandboxes_grant_unique_user"),
            models.UniqueConstraint(fields=["sandbox", "team"], name="sandboxes_grant_unique_team"),
        ]

    def __str__(self):
        return f"{self.access} on {self.sandbox_id} to {self.user or self.team}"


# ---- code contexts (issue 25; apps/sandboxes/contexts.py) ----


def new_context_id() -> str:
    return random_id("ctx_", 20)


class CodeContext(models.Model):
    """A stateful code context: a long-lived kernel (VibeBox's own, apps/sandboxes/kernels/) run
    as a background process of the sandbox's sandboxd, under the exec id `kernel_id`. Whether it
    is alive is sandboxd's to say (its process list); the row holds what the kernel cannot
    (its language, working directory, generation and when it is busy)."""

    class Language(models.TextChoices):
        PYTHON = "python"
        JAVASCRIPT = "javascript"

    id = models.CharField(primary_key=True, max_length=32, default=new_context_id, editable=False)
    sandbox = models.ForeignKey(Sandbox, on_delete=models.CASCADE, related_name="contexts")
    language = models.CharField(max_length=16, choices=Language.choices)
    cwd = models.CharField(max_length=1024)
    generation = models.PositiveIntegerField(default=1)  # a restart starts a new kernel, a new exec id
    execution_count = models.PositiveIntegerField(default=0)
    busy_until = models.DateTimeField(null=True, blank=True)  # an execute runs until at most then
    created_at = models.DateTimeField(auto_now_add=True)
    last_used_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.id} ({self.language} in {self.sandbox_id})"

    @property
    def kernel_id(self) -> str:
        return f"{self.id}-{self.generation}"


def new_git_hook_id() -> str:
    return random_id("ghk_", 24)  # in the hook's URL, which is not secret: the secret is


class GitHook(models.Model):
    """An auto-pull webhook (docs/api.md, "Auto-pull webhooks"): a push to `branch` that a git
    host reports to the hook's URL, signed with the hook's secret, pulls into `path` (fast-forward
    only). The secret is stored encrypted (vibebox.crypto), as git credentials are: GitHub and
    Gitea sign with it (HMAC), so it cannot be kept as a hash the way API keys are."""

    class Provider(models.TextChoices):
        AUTO = "auto"  # told by the request's headers
        GITHUB = "github"
        GITLAB = "gitlab"
        GITEA = "gitea"

    id = models.CharField(primary_key=True, max_length=32, default=new_git_hook_id, editable=False)
    sandbox = models.ForeignKey(Sandbox, on_delete=models.CASCADE, related_name="git_hooks")
    path = models.CharField(max_length=1024, default="/repo")
    branch = models.CharField(max_length=255)
    provider = models.CharField(max_length=8, choices=Provider.choices, default=Provider.AUTO)
    secret = models.TextField()  # encrypted
    created_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, null=True, blank=True, on_delete=models.SET_NULL, related_name="+"
    )
    created_at = models.DateTimeField(auto_now_add=True)
    last_delivery_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["created_at", "id"]

    def __str__(self):
        return f"{self.branch} into {self.path}"


class GitHookDelivery(models.Model):
    """One accepted push of a hook; also what refuses a replay (the same delivery id or body)."""

    class Status(models.TextChoices):
        QUEUED = "queued"
        RUNNING = "running"  # a worker took it
        PULLED = "pulled"  # fast-forwarded, or already up to date
        CONFLICT = "conflict"  # not a fast-forward, or local changes in the way: the tree is left alone
        SKIPPED = "skipped"  # the sandbox was not running (stopped, or paused without autoResume)
        FAILED = "failed"  # the fetch failed (credentials, network...)

    hook = models.ForeignKey(GitHook, on_delete=models.CASCADE, related_name="deliveries")
    delivery_id = models.CharField(max_length=100)
    digest = models.CharField(max_length=64)  # sha256 of the body
    provider = models.CharField(max_length=8)
    after = models.CharField(max_length=64, blank=True)  # the pushed commit, as the payload says
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED)
    detail = models.TextField(blank=True)
    commit = models.CharField(max_length=64, blank=True)  # HEAD after the pull
    received_at = models.DateTimeField(auto_now_add=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-received_at", "-id"]
        constraints = [
            models.UniqueConstraint(fields=["hook", "delivery_id"], name="unique_git_hook_delivery_id"),
            models.UniqueConstraint(fields=["hook", "digest"], name="unique_git_hook_delivery_body"),
        ]

    def __str__(self):
        return f"{self.delivery_id}: {self.status}"


class Node(models.Model):
    """A Docker engine beside the local one, reached over TCP with mutual TLS (docs/nodes.md).
    The local engine is the implicit default node: it has no row, and with no rows nothing
    changes. The client key is stored encrypted (vibebox.crypto), as other secrets are."""

    class State(models.TextChoices):
        HEALTHY = "healthy"
        DOWN = "down"  # stopped answering the health checks (VIBEBOX_NODE_DOWN_AFTER in a row)
        DRAINING = "draining"  # set by an operator: checked, but takes no new sandboxes

    name = models.SlugField(max_length=63, unique=True)
    docker_url = models.CharField(max_length=255)  # tcp://host:2376
    tls_ca = models.TextField()  # PEM
    tls_cert = models.TextField()  # PEM, the client certificate
    tls_key = models.TextField()  # PEM, the client key, encrypted
    state = models.CharField(max_length=8, choices=State.choices, default=State.HEALTHY)
    failures = models.PositiveIntegerField(default=0)  # failed health checks in a row
    last_seen = models.DateTimeField(null=True, blank=True)  # last answered a check
    last_error = models.TextField(blank=True)
    engine_version = models.CharField(max_length=64, blank=True)
    memory = models.BigIntegerField(default=0)  # bytes, the engine's MemTotal
    cpus = models.PositiveIntegerField(default=0)
    labels = models.JSONField(default=dict, blank=True)
    created_at = models.DateTimeField(auto_now_add=True)
    # The node's relay (docs/nodes.md): credentials VibeBox mints at node_prepare (a CA of the
    # node's own, whose key is not kept; the relay's server certificate for the node's host; a
    # client certificate for this server), keys encrypted. Empty relay_ca: not prepared yet.
    relay_port = models.PositiveIntegerField(default=2377)
    relay_ca = models.TextField(blank=True)  # PEM
    relay_cert = models.TextField(blank=True)  # PEM, this server's client certificate
    relay_key = models.TextField(blank=True)  # PEM, its key, encrypted
    relay_server_cert = models.TextField(blank=True)  # PEM, the relay's certificate
    relay_server_key = models.TextField(blank=True)  # PEM, the relay's key, encrypted (sent to the node only)
    relay_image = models.CharField(max_length=128, blank=True)  # the image (tag) the relay last started from

    class Meta:
        ordering = ["name"]

    def __str__(self):
        return self.name

    def connection(self) -> NodeConnection:
        return NodeConnection(
            url=self.docker_url,
            ca=self.tls_ca,
            cert=self.tls_cert,
            key=decrypt(self.tls_key),
            relay_port=self.relay_port,
            relay_ca=self.relay_ca,
            relay_cert=self.relay_cert,
            relay_key=decrypt(self.relay_key) if self.relay_key else "",
        )
