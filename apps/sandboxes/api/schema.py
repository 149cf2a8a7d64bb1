"""Serializers of the sandbox answers (environment, files, logs, processes, terminals, pools,
snapshot lists): each renders what the domain answers (snake_case dataclasses, dicts and models)
under the wire's camelCase names and describes it to the OpenAPI document: one definition of each
shape. Request bodies are in serializers.py. (Named `schema` for the enum names in
vibebox/settings.py's SPECTACULAR_SETTINGS.)"""

from drf_spectacular.utils import OpenApiParameter, PolymorphicProxySerializer
from rest_framework import serializers

from vibebox.api.schema import MapSerializer
from vibebox.api.serializers import StrictSerializer
from vibebox.units import format_size

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


class BlankAsNull(serializers.CharField):
    """Text where "" means "none": rendered as null."""

    def __init__(self, **kwargs):
        super().__init__(allow_null=True, **kwargs)

    def to_representation(self, value):
        return value or None


class OctalModeField(serializers.CharField):
    """Permission bits (an int) as octal text, e.g. 0644."""

    def to_representation(self, value):
        return f"{value:04o}"


class PathNameField(serializers.CharField):
    """A path's last part; the root's is /."""

    def to_representation(self, value):
        return value or "/"


# ---- environment variables ----


class EnvVarValueSerializer(serializers.Serializer):
    # renders a value of apps.sandboxes.services.env.public
    value = serializers.CharField(help_text="******** for a secret.")
    secret = serializers.BooleanField()


class EnvVarSerializer(serializers.Serializer):
    # renders apps.sandboxes.services.env.public_one
    name = serializers.CharField()
    value = serializers.CharField(help_text="******** for a secret.")
    secret = serializers.BooleanField()


class EnvVarInputSerializer(StrictSerializer):
    value = serializers.CharField(allow_blank=True)
    secret = serializers.BooleanField(required=False, default=False)


_ENV_VALUE = ({"type": "string"}, EnvVarInputSerializer)


class EnvMapSerializer(MapSerializer):
    """NAME → {value, secret}."""

    # renders apps.sandboxes.services.env.public
    values = (EnvVarValueSerializer,)

    def to_representation(self, variables) -> dict:
        return {name: EnvVarValueSerializer(variable).data for name, variable in variables.items()}


class EnvReplaceSerializer(MapSerializer):
    """NAME → a string or {value, secret}."""

    values = _ENV_VALUE


class EnvUpdateSerializer(MapSerializer):
    """NAME → a string or {value, secret}; null removes the variable."""

    values = _ENV_VALUE
    nullable = True


# ---- files ----


class FileEntrySerializer(serializers.Serializer):
    # renders a FileInfo (apps.sandboxes.runtime.base) of apps.sandboxes.services.files.file_list
    path = serializers.CharField()
    name = PathNameField()
    size = serializers.IntegerField(help_text="Bytes.")
    isDir = serializers.BooleanField(source="is_dir")
    type = serializers.ChoiceField(choices=FILE_TYPES)
    mode = OctalModeField(help_text="Octal permission bits, e.g. 0644.")
    modifiedAt = serializers.FloatField(source="modified_at", help_text="Unix seconds.")
    symlinkTarget = BlankAsNull(source="link_target")

    def to_representation(self, info) -> dict:
        """The fields above, rendered by hand: a recursive listing has up to VIBEBOX_FILE_LIST_LIMIT
        (10000) entries, which DRF renders field by field 150 times slower (1.3 s; docs/benchmarks.md,
        "Rendering answers"). The fields stay the one definition (schema, docs);
        tests/sandboxes/test_api_shapes.py checks this renders them exactly as DRF would."""
        return {
            "path": info.path,
            "name": info.name or "/",
            "size": info.size,
            "isDir": info.is_dir,
            "type": info.type,
            "mode": f"{info.mode:04o}",
            "modifiedAt": info.modified_at,
            "symlinkTarget": info.link_target or None,
        }


class FileListSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="The directory, absolute.")
    entries = FileEntrySerializer(many=True)


class FilePathSerializer(serializers.Serializer):
    path = serializers.CharField(help_text="Absolute path in the sandbox.")


class FileUploadedSerializer(FilePathSerializer):
    # renders the FileInfo of apps.sandboxes.services.files.file_upload
    size = serializers.IntegerField(allow_null=True, help_text="Bytes.")
    mode = OctalModeField(allow_null=True, help_text="Octal permission bits, e.g. 0644.")


class ArchiveUploadedSerializer(FilePathSerializer):
    # renders apps.sandboxes.services.files.archive_upload
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

    # renders an entry of apps.sandboxes.logs.read
    def to_representation(self, entry) -> dict:
        """The fields above, rendered by hand: a log answers up to 100000 entries, which DRF renders
        field by field 250 times slower (9.7 s; docs/benchmarks.md, "Rendering answers"). The fields stay
        the one definition (schema, docs); tests/sandboxes/test_api_shapes.py checks this renders
        them exactly as DRF would."""
        body = {
            "type": entry["type"],
            "stream": entry["stream"],
            "text": entry["text"],
            "timestamp": float(entry["timestamp"]),
        }
        if "event" in entry:
            body["event"] = entry["event"]
        return body


class LogsSerializer(serializers.Serializer):
    logs = LogEntrySerializer(many=True, help_text="Oldest first.")


class ProcessErrorSerializer(serializers.Serializer):
    # renders an ApplicationError
    code = serializers.CharField()
    message = serializers.CharField()


class ConstantField(serializers.CharField):
    """Always `value` (a message's type)."""

    def __init__(self, value: str, **kwargs):
        self.value = value
        super().__init__(source="*", **kwargs)

    def to_representation(self, instance):
        return self.value


class ProcessExitSerializer(serializers.Serializer):
    """As the `exit` message of the process WebSocket."""

    # renders an apps.sandboxes.processes.ProcessExit (here and as that message)
    RESULT = ("executionId", "exitCode", "duration", "truncated", "oomKilled")

    type = ConstantField("exit", help_text="Always exit.")
    status = serializers.CharField(help_text="completed, failed, timeout; error when the engine failed.")
    executionId = serializers.CharField(source="execution_id", required=False)
    exitCode = serializers.IntegerField(source="exit_code", required=False, allow_null=True)
    duration = serializers.IntegerField(source="duration_ms", required=False, help_text="Milliseconds.")
    truncated = serializers.BooleanField(required=False)
    oomKilled = serializers.BooleanField(source="oom_killed", required=False)
    error = ProcessErrorSerializer(required=False, help_text="When status is error.")

    def to_representation(self, exit) -> dict:
        """A result, or (status error) only the error."""
        body = super().to_representation(exit)
        left_out = self.RESULT if exit.error is not None else ("error",)
        return {name: value for name, value in body.items() if name not in left_out}


class ProcessSerializer(serializers.Serializer):
    # renders an apps.sandboxes.processes.DaemonProcess or EndedProcess
    processId = serializers.CharField(source="id")
    command = serializers.CharField(help_text="Its first 200 characters.")
    running = serializers.BooleanField()
    exit = ProcessExitSerializer(allow_null=True)


class ProcessListSerializer(serializers.Serializer):
    processes = ProcessSerializer(many=True, help_text="The running ones.")


class TerminalSerializer(serializers.Serializer):
    # renders an apps.sandboxes.terminals.Terminal
    sessionId = serializers.CharField(
        source="session_id", help_text="term_…; join it with the terminal WebSocket's ?session=."
    )
    shell = serializers.CharField()
    argv = serializers.ListField(
        child=serializers.CharField(), allow_null=True, help_text="The command as it runs (null: held by the server)."
    )
    cols = serializers.IntegerField()
    rows = serializers.IntegerField()
    attached = serializers.IntegerField(help_text="Clients attached now.")
    running = serializers.BooleanField()
    startedAt = serializers.DateTimeField(source="started_at", allow_null=True)


class TerminalListSerializer(serializers.Serializer):
    terminals = TerminalSerializer(many=True, help_text="The open ones, oldest first.")


class BackgroundProcessSerializer(serializers.Serializer):
    processId = serializers.CharField()
    executionId = serializers.CharField()
    status = serializers.ChoiceField(choices=BACKGROUND_STATUSES)


# ---- pools, snapshots ----


class SizeTextField(serializers.CharField):
    """Bytes (an int) as text, e.g. 1g."""

    def to_representation(self, value):
        return format_size(value)


class EnginePoolSerializer(serializers.Serializer):
    # renders an apps.sandboxes.services.pools.EnginePoolStats
    engine = serializers.CharField(help_text="A node's name, or `local` (this server's engine).")
    size = serializers.IntegerField(help_text="Ready containers on that engine.")
    creating = serializers.IntegerField()


class PoolSerializer(serializers.Serializer):
    # renders an apps.sandboxes.services.pools.PoolStats
    template = serializers.CharField()
    cpu = serializers.FloatField()
    memory = SizeTextField(help_text="e.g. 1g")
    enabled = serializers.BooleanField()
    size = serializers.IntegerField(help_text="Ready containers, on every engine (`engines` has each one's).")
    creating = serializers.IntegerField(help_text="On every engine.")
    targetSize = serializers.IntegerField(source="target_size")
    minSize = serializers.IntegerField(source="min_size")
    maxSize = serializers.IntegerField(source="max_size")
    hits = serializers.IntegerField()
    misses = serializers.IntegerField()
    hitRate = serializers.FloatField(source="hit_rate", allow_null=True)
    replaced = serializers.IntegerField(help_text="Containers replaced after failed health checks.")
    lastReadyMs = serializers.IntegerField(source="last_ready_ms", allow_null=True)
    engines = EnginePoolSerializer(
        many=True,
        help_text="Per engine: `local`, then each node the pool is kept on (placeable, VIBEBOX_POOL_NODES), then any "
        "other engine that still has containers of it.",
    )


class PoolListSerializer(serializers.Serializer):
    pools = PoolSerializer(many=True)


class SnapshotListSerializer(serializers.Serializer):
    results = SnapshotSerializer(many=True)
