from django.conf import settings
from django.core.validators import MaxLengthValidator
from django.utils import timezone
from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.orgs.network import MAX_ENTRIES as MAX_NETWORK_ENTRIES
from apps.orgs.network import proxied, validate_network
from apps.orgs.network import stored as stored_network
from apps.sandboxes.models import Execution, SandboxGrant, Status
from apps.sandboxes.services.create import METADATA_VALUE_MAX, validate_metadata
from vibebox import exceptions as errors
from vibebox.api.serializers import BoundedFloatField, DurationField, SizeField, StrictSerializer, pattern_field
from vibebox.units import format_size

from .git_schema import GitAuthField, GitSpecField

NAME_PATTERN = r"^(?!sbx_)[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$"
NAME_HELP = "1-63 letters, digits, '-', '_' or '.', starting with a letter or digit, not 'sbx_'."


def name_field(**kwargs):
    return pattern_field(NAME_PATTERN, "name: " + NAME_HELP, help_text=NAME_HELP, **kwargs)


class MetadataField(serializers.DictField):
    """Keys: 1-64 of letters, digits and _.:/- (checked by the service: OpenAPI 3.0 cannot say it).
    Too many keys or too long a value is `metadata_too_large`, as the service says it; the schema
    states both limits (maxProperties, maxLength)."""

    def to_internal_value(self, data):
        if isinstance(data, dict) and (
            len(data) > settings.VIBEBOX_METADATA_MAX_KEYS
            or any(isinstance(v, str) and len(v) > METADATA_VALUE_MAX for v in data.values())
        ):
            validate_metadata(data)  # raises metadata_too_large with its details
        return super().to_internal_value(data)


def metadata_field(**kwargs):
    return MetadataField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False, max_length=METADATA_VALUE_MAX),
        validators=[MaxLengthValidator(lambda: settings.VIBEBOX_METADATA_MAX_KEYS)],
        help_text="Keys: 1-64 of letters, digits and _.:/- ; values: strings of at most "
        f"{METADATA_VALUE_MAX} characters; at most VIBEBOX_METADATA_MAX_KEYS keys and VIBEBOX_METADATA_MAX_BYTES "
        "bytes of JSON.",
        **kwargs,
    )


class ResourcesInputSerializer(StrictSerializer):
    cpu = BoundedFloatField(
        minimum=0.01, maximum="VIBEBOX_MAX_CPU", error=errors.InvalidResources, required=False,
        help_text="Cores, e.g. 0.5 or 2.",
    )  # fmt: skip
    memory = SizeField(
        minimum="VIBEBOX_MIN_MEMORY", maximum="VIBEBOX_MAX_MEMORY", required=False, help_text="Bytes or '512m', '1g'."
    )
    disk = SizeField(
        maximum="VIBEBOX_MAX_DISK",
        required=False,
        help_text="Writable layer size, where the storage driver can limit it.",
    )


NETWORK_ENTRY_HELP = (
    "A domain ('api.github.com'), '*.domain' (any name below it, not the domain itself), an IP address or a CIDR."
)


class NetworkInputSerializer(StrictSerializer):
    """An egress policy in a request (apps/orgs/network.py checks the entries: 400
    validation_error naming the field)."""

    internet = serializers.BooleanField(
        required=False, help_text="false: no direct internet; only `allow`, the model gateway and the mirror."
    )
    allow = serializers.ListField(
        child=serializers.CharField(max_length=260, help_text=NETWORK_ENTRY_HELP),
        max_length=MAX_NETWORK_ENTRIES,
        required=False,
        help_text="Destinations reachable without internet (deny wins over allow).",
    )
    deny = serializers.ListField(
        child=serializers.CharField(max_length=260, help_text=NETWORK_ENTRY_HELP),
        max_length=MAX_NETWORK_ENTRIES,
        required=False,
        help_text="Destinations never reachable.",
    )

    def validate(self, attrs):
        return validate_network(dict(attrs), field=self.field_name or "network", partial=True)


class NetworkSerializer(serializers.Serializer):
    internet = serializers.BooleanField()
    allow = serializers.ListField(child=serializers.CharField())
    deny = serializers.ListField(child=serializers.CharField())
    proxied = serializers.BooleanField(
        help_text="Commands get HTTP(S)_PROXY: the policy goes through the egress proxy, and direct connections "
        "are closed but to allowed IPs and CIDRs."
    )


def network_representation(sandbox) -> dict:
    policy = stored_network(sandbox.network)
    return {**policy, "proxied": proxied(policy)}


class SandboxCreateSerializer(StrictSerializer):
    any_of_required = ("template", "snapshot")

    template = serializers.CharField(
        max_length=100,
        required=False,
        help_text="A template's name, or name@version to pin a marketplace template's version (a bare name takes "
        "its latest non-yanked version). Required unless `snapshot` is given.",
    )
    snapshot = serializers.CharField(max_length=32, required=False, help_text="Create from this snapshot (snap_…).")
    name = name_field(required=False)
    autoStart = serializers.BooleanField(required=False, default=True)
    ephemeral = serializers.BooleanField(required=False, default=False)
    timeout = DurationField(
        maximum="VIBEBOX_MAX_TIMEOUT", required=False, allow_null=True,
        help_text="Seconds or '30m', '2h', '1d'; 0 or null: none (an ephemeral sandbox gets the server default).",
    )  # fmt: skip
    env = serializers.DictField(
        child=serializers.CharField(allow_blank=True, trim_whitespace=False),
        required=False,
        help_text="NAME (letters, digits, _, not starting with a digit) to value.",
    )
    metadata = metadata_field(required=False)
    resources = ResourcesInputSerializer(required=False)
    git = GitSpecField(
        required=False,
        help_text="A repository URL, or {url, branch, path, depth, auth, failOnError}; cloned before running.",
    )
    autoPause = DurationField(
        minimum="VIBEBOX_AUTO_PAUSE_MIN", zero_allowed=True, required=False, allow_null=True,
        help_text="Pause after this long without activity; 0 or null: never.",
    )  # fmt: skip
    autoResume = serializers.BooleanField(
        required=False, default=False, help_text="Commands and file calls resume the sandbox when it is paused."
    )
    pauseStopsTimeout = serializers.BooleanField(
        required=False, default=False, help_text="Time spent paused does not count toward the expiry."
    )
    wait = serializers.BooleanField(
        required=False,
        default=False,
        help_text="If the template's image is still building, wait for it (up to the server's "
        "VIBEBOX_TEMPLATE_WAIT) instead of answering 503 template_building.",
    )
    network = NetworkInputSerializer(
        required=False,
        help_text="Egress policy; keys not given come from the template's, then the organization's default, then the "
        "platform's (internet on, no lists).",
    )
    nodeLabels = serializers.DictField(
        child=serializers.CharField(max_length=63),
        required=False,
        help_text="Run only on an engine of this server that has all these labels (the operator sets them: "
        "docs/nodes.md), e.g. {\"region\": \"eu\"}. At most 16; keys: lowercase letters, digits, '.', '_', '/', '-'; "
        "values: letters, digits, '.', '_', '-' (1-63 each). Merged with those its template and its organization "
        "(and its snapshot) require: a key asked with another value is 400 node_labels_conflict. 400 "
        "no_matching_node when no engine has them.",
    )


class SandboxUpdateSerializer(StrictSerializer):
    name = name_field(required=False)
    metadata = metadata_field(required=False)
    timeout = DurationField(
        maximum="VIBEBOX_MAX_TIMEOUT", required=False, allow_null=True,
        help_text="New time to live from now; 0 or null clears it.",
    )  # fmt: skip
    autoPause = DurationField(
        minimum="VIBEBOX_AUTO_PAUSE_MIN", zero_allowed=True, required=False, allow_null=True,
        help_text="Idle time before pausing; 0 or null: never.",
    )  # fmt: skip
    autoResume = serializers.BooleanField(required=False)
    pauseStopsTimeout = serializers.BooleanField(required=False)


class ResourcesSerializer(serializers.Serializer):
    cpu = serializers.FloatField()
    memory = serializers.CharField()
    memoryBytes = serializers.IntegerField()
    disk = serializers.CharField(allow_null=True)


class SandboxSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    template = serializers.CharField(source="template.name")
    templateVersion = serializers.CharField(
        source="template_version", help_text="The marketplace template version it runs; empty for built-ins."
    )
    status = serializers.ChoiceField(choices=Status.choices)
    statusReason = serializers.CharField(source="status_reason")
    ephemeral = serializers.BooleanField()
    timeout = serializers.IntegerField(source="timeout_seconds", allow_null=True, help_text="Seconds.")
    expiresAt = serializers.DateTimeField(source="expires_at", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)
    stoppedAt = serializers.DateTimeField(source="stopped_at", allow_null=True)
    destroyedAt = serializers.DateTimeField(source="destroyed_at", allow_null=True)
    resources = serializers.SerializerMethodField()
    metadata = serializers.DictField(child=serializers.CharField())
    warm = serializers.BooleanField(help_text="Whether the sandbox's container came ready from a warm pool.")
    pausedAt = serializers.DateTimeField(source="paused_at", allow_null=True)
    autoPause = serializers.IntegerField(source="auto_pause_seconds", allow_null=True, help_text="Seconds.")
    autoResume = serializers.BooleanField(source="auto_resume")
    pauseStopsTimeout = serializers.BooleanField(source="pause_stops_timeout")
    lastActivityAt = serializers.DateTimeField(source="last_activity_at", allow_null=True)
    network = serializers.SerializerMethodField()
    nodeLabels = serializers.DictField(
        source="node_labels",
        child=serializers.CharField(),
        help_text="The node labels its engine has to have: the create's nodeLabels merged with those its template, "
        "its organization and its snapshot require ({} for none). Its snapshots keep them.",
    )

    @extend_schema_field(NetworkSerializer)
    def get_network(self, sandbox) -> dict:
        return network_representation(sandbox)

    @extend_schema_field(ResourcesSerializer)
    def get_resources(self, sandbox) -> dict:
        return {
            "cpu": sandbox.cpu,
            "memory": format_size(sandbox.memory),
            "memoryBytes": sandbox.memory,
            "disk": format_size(sandbox.disk) if sandbox.disk else None,
        }

    def to_representation(self, sandbox) -> dict:
        """The fields above, rendered by hand: DRF's field-by-field rendering was a third of the CPU
        of a 50-sandbox list (docs/benchmarks.md, "API throughput"). The fields stay the one
        definition (schema, docs); tests/sandboxes/test_api_shapes.py checks this renders them
        exactly as DRF would."""
        return {
            "id": sandbox.id,
            "name": sandbox.name,
            "template": sandbox.template.name,
            "templateVersion": sandbox.template_version,
            "status": sandbox.status,
            "statusReason": sandbox.status_reason,
            "ephemeral": sandbox.ephemeral,
            "timeout": sandbox.timeout_seconds,
            "expiresAt": _datetime(sandbox.expires_at),
            "createdAt": _datetime(sandbox.created_at),
            "startedAt": _datetime(sandbox.started_at),
            "stoppedAt": _datetime(sandbox.stopped_at),
            "destroyedAt": _datetime(sandbox.destroyed_at),
            "resources": self.get_resources(sandbox),
            "metadata": {str(key): str(value) for key, value in sandbox.metadata.items()},
            "warm": sandbox.warm,
            "pausedAt": _datetime(sandbox.paused_at),
            "autoPause": sandbox.auto_pause_seconds,
            "autoResume": sandbox.auto_resume,
            "pauseStopsTimeout": sandbox.pause_stops_timeout,
            "lastActivityAt": _datetime(sandbox.last_activity_at),
            "network": network_representation(sandbox),
            "nodeLabels": dict(sandbox.node_labels or {}),
        }


def _datetime(value) -> str | None:
    """As DRF's DateTimeField renders it: ISO 8601 in the current time zone, UTC as `Z`."""
    if value is None:
        return None
    text = timezone.localtime(value).isoformat()
    return text[:-6] + "Z" if text.endswith("+00:00") else text


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string", "description": "Run by bash -lc (sh -c without bash)."},
            {"type": "array", "items": {"type": "string"}, "minItems": 1, "description": "An argv, run directly."},
        ]
    }
)
class CommandField(serializers.Field):
    """A shell command line (string) or an argv list of strings."""

    def to_internal_value(self, data):
        if isinstance(data, str) and data.strip():
            return data
        if isinstance(data, list) and data and all(isinstance(part, str) for part in data):
            return data
        raise serializers.ValidationError("command is a non-empty string or a list of strings.")

    def to_representation(self, value):
        return value


class EnvMapField(serializers.DictField):
    child = serializers.CharField(allow_blank=True, trim_whitespace=False)


class ExecSerializer(StrictSerializer):
    command = CommandField()
    cwd = serializers.CharField(required=False, allow_blank=True)
    env = EnvMapField(required=False)
    user = serializers.CharField(required=False, allow_blank=True, max_length=64)
    stdin = serializers.CharField(required=False, allow_blank=True, trim_whitespace=False)
    timeout = DurationField(
        maximum="VIBEBOX_EXEC_MAX_TIMEOUT", required=False, allow_null=True,
        help_text="Seconds or '30s'; 0 = the server maximum.",
    )  # fmt: skip
    autoResume = serializers.BooleanField(required=False, default=False)
    background = serializers.BooleanField(
        required=False, default=False, help_text="Return at once with a processId; the command runs on."
    )


class ExecuteSerializer(StrictSerializer):
    code = serializers.CharField(trim_whitespace=False)
    language = serializers.CharField(
        required=False,
        default="auto",
        help_text="auto, javascript, typescript, python, shell, go, rust, ruby, java (those the template runs)",
    )
    cwd = serializers.CharField(required=False, allow_blank=True)
    env = EnvMapField(required=False)
    timeout = DurationField(
        maximum="VIBEBOX_EXEC_MAX_TIMEOUT", required=False, allow_null=True,
        help_text="Seconds or '30s'; 0 = the server maximum.",
    )  # fmt: skip
    autoResume = serializers.BooleanField(required=False, default=False)


EXEC_STATUSES = ["completed", "failed", "timeout"]
EXECUTE_PHASES = ["compile", "run"]


# A command's end, rendered from a services.exec.Outcome: the exec WebSocket's `exit` message,
# and POST …/exec's answer without the output.
class ExecExitSerializer(serializers.Serializer):
    executionId = serializers.CharField(source="execution.id")
    exitCode = serializers.IntegerField(source="result.exit_code", allow_null=True)
    duration = serializers.IntegerField(source="result.duration_ms", help_text="milliseconds")
    status = serializers.ChoiceField(source="execution.status", choices=EXEC_STATUSES)
    truncated = serializers.BooleanField(source="result.truncated")
    oomKilled = serializers.BooleanField(source="result.oom_killed")


class ExecResultSerializer(ExecExitSerializer):
    stdout = serializers.CharField()
    stderr = serializers.CharField()


class ExecuteResultSerializer(ExecResultSerializer):
    language = serializers.CharField(source="execution.language")
    returnValue = serializers.JSONField(source="return_value", allow_null=True)
    phase = serializers.ChoiceField(
        choices=EXECUTE_PHASES,
        help_text="compile: a compiled language's build failed (its messages on stderr) or timed out; else run.",
    )


class ExecutionSerializer(serializers.Serializer):
    executionId = serializers.CharField(source="id")
    kind = serializers.ChoiceField(choices=Execution.Kind.choices)
    language = serializers.CharField()
    command = serializers.CharField(help_text="The command line, the argv as JSON, or the code (first 4096 chars).")
    cwd = serializers.CharField()
    user = serializers.CharField()
    status = serializers.ChoiceField(choices=Execution.Status.choices)
    exitCode = serializers.IntegerField(source="exit_code", allow_null=True)
    duration = serializers.IntegerField(source="duration_ms", allow_null=True)
    stdoutBytes = serializers.IntegerField(source="stdout_bytes")
    stderrBytes = serializers.IntegerField(source="stderr_bytes")
    truncated = serializers.BooleanField()
    oomKilled = serializers.BooleanField(source="oom_killed")
    startedAt = serializers.DateTimeField(source="started_at")
    finishedAt = serializers.DateTimeField(source="finished_at", allow_null=True)


class ExecutionDetailSerializer(ExecutionSerializer):
    stdout = serializers.CharField()
    stderr = serializers.CharField()
    returnValue = serializers.JSONField(source="return_value", allow_null=True)


class MkdirSerializer(StrictSerializer):
    path = serializers.CharField()


class MoveSerializer(StrictSerializer):
    source = serializers.CharField()
    destination = serializers.CharField()
    overwrite = serializers.BooleanField(required=False, default=False)


class GitCloneSerializer(StrictSerializer):
    url = serializers.CharField()
    branch = serializers.CharField(required=False)
    path = serializers.CharField(required=False)
    depth = serializers.IntegerField(required=False, min_value=1, max_value=2**31 - 1)
    auth = GitAuthField(required=False)


class GitPullSerializer(StrictSerializer):
    path = serializers.CharField(required=False)
    remote = serializers.CharField(required=False, default="origin")
    branch = serializers.CharField(required=False)
    auth = GitAuthField(required=False)


class GitPushSerializer(GitPullSerializer):
    setUpstream = serializers.BooleanField(required=False, default=False)
    force = serializers.BooleanField(required=False, default=False, help_text="--force-with-lease")


class GitAuthorSerializer(StrictSerializer):
    name = serializers.CharField()
    email = serializers.CharField()


class GitCommitSerializer(StrictSerializer):
    message = serializers.CharField(trim_whitespace=False)
    path = serializers.CharField(required=False)
    all = serializers.BooleanField(required=False, default=False)
    author = GitAuthorSerializer(required=False)
    allowEmpty = serializers.BooleanField(required=False, default=False)


class GitCheckoutSerializer(StrictSerializer):
    branch = serializers.CharField()
    path = serializers.CharField(required=False)
    create = serializers.BooleanField(required=False, default=False)


class SnapshotCreateSerializer(StrictSerializer):
    name = serializers.CharField(max_length=100, required=False, allow_blank=True)


class SnapshotRestoreSerializer(StrictSerializer):
    snapshot = serializers.CharField(max_length=32)


class SnapshotSerializer(serializers.Serializer):
    id = serializers.CharField()
    name = serializers.CharField()
    sandboxId = serializers.CharField(source="sandbox_id", allow_null=True)
    sandboxName = serializers.CharField(source="sandbox_name")
    template = serializers.CharField(source="template.name")
    size = serializers.IntegerField(help_text="Bytes: imageBytes + workspaceBytes.")
    imageBytes = serializers.IntegerField(
        source="image_bytes", help_text="What the snapshot adds to the template image."
    )
    workspaceBytes = serializers.IntegerField(source="workspace_bytes", help_text="The workspace archive.")
    nodeLabels = serializers.DictField(
        source="node_labels",
        child=serializers.CharField(),
        help_text="Its sandbox's node labels: a create or restore from it runs only on an engine that has them.",
    )
    createdAt = serializers.DateTimeField(source="created_at")


ACCESS_HELP = "read: look; use: also exec, files, git, terminals; manage: also start, stop, destroy, env, grants."


class GrantSerializer(serializers.Serializer):
    id = serializers.CharField()
    user = serializers.CharField(source="user.username", allow_null=True, help_text="The member's username (or null).")
    team = serializers.CharField(source="team.name", allow_null=True, help_text="The team's name (or null).")
    access = serializers.ChoiceField(choices=SandboxGrant.Access.choices, help_text=ACCESS_HELP)
    createdBy = serializers.CharField(source="created_by.username", allow_null=True)
    createdAt = serializers.DateTimeField(source="created_at")


class GrantSetSerializer(StrictSerializer):
    any_of_required = ("user", "team")
    not_together = ("user", "team")

    user = serializers.CharField(required=False, max_length=254, help_text="A member's username or email.")
    team = serializers.CharField(required=False, max_length=50, help_text="A team's name.")
    access = serializers.ChoiceField(choices=SandboxGrant.Access.choices, help_text=ACCESS_HELP)
