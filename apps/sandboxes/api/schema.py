"""Schema-only serializers: the shapes of answers the sandbox views build as plain dicts
(environment, files, logs, processes, pools, snapshot lists, background commands)."""

from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer
from rest_framework import serializers

from vibebox.api.schema import MapSerializer
from vibebox.api.serializers import StrictSerializer

from .serializers import SnapshotSerializer

FILE_TYPES = ["file", "directory", "symlink", "other"]
LOG_TYPES = ["log", "event"]
LOG_STREAMS = ["stdout", "stderr", "vibebox"]
BACKGROUND_STATUSES = ["running"]

AUTO_RESUME = OpenApiParameter(
    "autoResume",
    bool,
    description="Resume the sandbox first if it is paused (else 409 sandbox_paused). Resuming needs sandboxes:write: "
    "on a GET, a key without it gets 403 insufficient_scope.",
)

# ---- environment variables ----


class EnvVarValueSerializer(serializers.Serializer):
    value = serializers.CharField(help_text="******** for a secret.")
    secret = serializers.BooleanField()


class EnvVarSerializer(serializers.Serializer):
    name = serializers.CharField()
    value = serializers.CharField(help_text="******** for a secret.")
    secret = serializers.BooleanField()


class EnvVarInputSerializer(StrictSerializer):
    value = serializers.CharField(allow_blank=True)
    secret = serializers.BooleanField(required=False, default=False)


_ENV_VALUE = ({"type": "string"}, EnvVarInputSerializer)


class EnvMapSerializer(MapSerializer):
    """NAME → {value, secret}."""

    values = (EnvVarValueSerializer,)


class EnvReplaceSerializer(MapSerializer):
    """NAME → a string or {value, secret}."""

    values = _ENV_VALUE


class EnvUpdateSerializer(MapSerializer):
    """NAME → a string or {value, secret}; null removes the variable."""

    values = _ENV_VALUE
    nullable = True


# ---- files ----


class FileEntrySerializer(serializers.Serializer):
    path = serializers.CharField()
    name = serializers.CharField()
    size = serializers.IntegerField(help_text="Bytes.")
    isDir = serializers.BooleanField()
    type = serializers.ChoiceField(choices=FILE_TYPES)
    mode = serializers.CharField(help_text="Octal permission bits, e.g. 0644.")
    modifiedAt = serializers.FloatField(help_text="Unix seconds.")
    symlinkTarget = serializers.CharField(allow_null=True)


class FileListSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="The directory, absolute.")
    entries = FileEntrySerializer(many=True)


class FilePathSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="Absolute path in the sandbox.")


class FileUploadedSerializer(FilePathSerializer):
    size = serializers.IntegerField(allow_null=True, help_text="Bytes.")
    mode = serializers.CharField(allow_null=True, help_text="Octal permission bits, e.g. 0644.")


class ArchiveUploadedSerializer(FilePathSerializer):
    entries = serializers.IntegerField(help_text="How many archive entries were written.")


UPLOAD_RESULT = PolymorphicProxySerializer(
    component_name="FileUploadResult",
    serializers=[FileUploadedSerializer, ArchiveUploadedSerializer],
    resource_type_field_name=None,
)


class FileUploadMultipartSerializer(serializers.Serializer):
    file = serializers.FileField()
    path = serializers.CharField(
        required=False, help_text="Default: the file's name in /workspace; ending in / : a directory to put it in."
    )
    mode = serializers.CharField(required=False, help_text="Octal, default 0644.")


# ---- logs, processes, background commands ----


class LogEntrySerializer(serializers.Serializer):
    type = serializers.ChoiceField(choices=LOG_TYPES, help_text="log: the container's output; event: VibeBox's.")
    stream = serializers.ChoiceField(choices=LOG_STREAMS)
    text = serializers.CharField()
    timestamp = serializers.FloatField(help_text="Unix seconds.")
    event = serializers.CharField(required=False, help_text="Events only: its type, e.g. sandbox.started.")


class LogsSerializer(serializers.Serializer):
    logs = LogEntrySerializer(many=True, help_text="Oldest first.")


class ProcessErrorSerializer(serializers.Serializer):
    code = serializers.CharField()
    message = serializers.CharField()


class ProcessExitSerializer(serializers.Serializer):
    """As the `exit` message of the process WebSocket."""

    type = serializers.CharField(help_text="Always exit.")
    status = serializers.CharField(help_text="completed, failed, timeout; error when the engine failed.")
    executionId = serializers.CharField(required=False)
    exitCode = serializers.IntegerField(required=False, allow_null=True)
    duration = serializers.IntegerField(required=False, help_text="Milliseconds.")
    truncated = serializers.BooleanField(required=False)
    oomKilled = serializers.BooleanField(required=False)
    error = ProcessErrorSerializer(required=False, help_text="When status is error.")


class ProcessSerializer(serializers.Serializer):
    processId = serializers.CharField()
    command = serializers.CharField(help_text="Its first 200 characters.")
    running = serializers.BooleanField()
    exit = ProcessExitSerializer(allow_null=True)


class ProcessListSerializer(serializers.Serializer):
    processes = ProcessSerializer(many=True, help_text="The running ones.")


class TerminalSerializer(serializers.Serializer):
    sessionId = serializers.CharField(help_text="term_…; join it with the terminal WebSocket's ?session=.")
    shell = serializers.CharField()
    argv = serializers.ListField(
        child=serializers.CharField(), allow_null=True, help_text="The command as it runs (null: held by the server)."
    )
    cols = serializers.IntegerField()
    rows = serializers.IntegerField()
    attached = serializers.IntegerField(help_text="Clients attached now.")
    running = serializers.BooleanField()
    startedAt = serializers.DateTimeField(allow_null=True)


class TerminalListSerializer(serializers.Serializer):
    terminals = TerminalSerializer(many=True, help_text="The open ones, oldest first.")


class BackgroundProcessSerializer(serializers.Serializer):
    processId = serializers.CharField()
    executionId = serializers.CharField()
    status = serializers.ChoiceField(choices=BACKGROUND_STATUSES)


# ---- pools, snapshots ----


class PoolSerializer(serializers.Serializer):
    template = serializers.CharField()
    cpu = serializers.FloatField()
    memory = serializers.CharField(help_text="e.g. 1g")
    enabled = serializers.BooleanField()
    size = serializers.IntegerField(help_text="Ready containers.")
    creating = serializers.IntegerField()
    targetSize = serializers.IntegerField()
    minSize = serializers.IntegerField()
    maxSize = serializers.IntegerField()
    hits = serializers.IntegerField()
    misses = serializers.IntegerField()
    hitRate = serializers.FloatField(allow_null=True)
    replaced = serializers.IntegerField(help_text="Containers replaced after failed health checks.")
    lastReadyMs = serializers.IntegerField(allow_null=True)


class PoolListSerializer(serializers.Serializer):
    pools = PoolSerializer(many=True)


class SnapshotListSerializer(serializers.Serializer):
    results = SnapshotSerializer(many=True)
