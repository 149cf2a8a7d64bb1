from django.contrib import admin

from apps.audit.admin import AuditedAdmin

from .models import Node, PooledContainer, Sandbox, WarmPool
from .services.nodes import node_holdings, node_remove, node_state_set


@admin.register(Sandbox)
class SandboxAdmin(AuditedAdmin):
    list_display = ("id", "name", "owner", "template", "status", "warm", "container_id_short", "created_at")
    list_filter = ("status", "template", "ephemeral", "warm")
    search_fields = ("id", "name", "owner__username", "container_id")
    readonly_fields = ("id", "container_id", "image", "created_at", "updated_at", "started_at", "stopped_at")
    exclude = ("env",)  # may hold secrets

    @admin.display(description="container")
    def container_id_short(self, sandbox):
        return sandbox.container_id[:12]


class PooledContainerInline(admin.TabularInline):
    model = PooledContainer
    fields = ("id", "node", "status", "image", "created_at", "ready_at", "ready_ms")  # node: empty = local
    readonly_fields = fields
    extra = 0
    can_delete = False


@admin.register(WarmPool)
class WarmPoolAdmin(AuditedAdmin):
    """Operators size pools here, and add pools for other resources (cpu, memory in bytes): creates
    asking for exactly those take from them. `maintain_pools` (Celery beat) applies the change."""

    list_display = ("template", "cpu", "memory", "enabled", "min_size", "max_size", "target_size", "hits", "misses")
    list_editable = ("enabled", "min_size", "max_size")
    readonly_fields = ("target_size", "hits", "misses", "replaced", "last_ready_ms", "updated_at")
    inlines = [PooledContainerInline]


@admin.register(Node)
class NodeAdmin(AuditedAdmin):
    """Docker engines beside the local one (docs/nodes.md). A node is added with `manage.py addnode`
    (its engine must answer over mutual TLS first); here an operator drains it, labels it, or
    removes it. The client keys (the engine's and the relay's) are never shown."""

    list_display = ("name", "docker_url", "state", "failures", "last_seen", "engine_version", "cpus", "memory_mib")
    list_filter = ("state",)
    search_fields = ("name", "docker_url")
    fields = (
        "name",
        "docker_url",
        "state",
        "labels",
        "failures",
        "last_seen",
        "last_error",
        "engine_version",
        "cpus",
        "memory",
        "tls_ca",
        "tls_cert",
        "relay_port",
        "relay_ca",
        "relay_image",
        "created_at",
    )
    readonly_fields = tuple(field for field in fields if field not in ("state", "labels"))

    def has_add_permission(self, request):
        return False  # manage.py addnode: it checks the engine before anything is saved

    def formfield_for_choice_field(self, db_field, request, **kwargs):
        if db_field.name == "state":  # down is for the health check to say, not an operator
            kwargs["choices"] = [(s.value, s.label) for s in (Node.State.HEALTHY, Node.State.DRAINING)]
        return super().formfield_for_choice_field(db_field, request, **kwargs)

    @admin.display(description="memory (MiB)")
    def memory_mib(self, node):
        return node.memory // 1024**2

    def save_model(self, request, obj, form, change):
        """Only what the operator changed is written (the health check updates the rest meanwhile);
        a state set here goes through node_state_set, which starts the failure count again."""
        if "state" in form.changed_data:
            node_state_set(name=obj.name, state=obj.state)
        fields = [field for field in form.changed_data if field != "state"]
        if fields:
            obj.save(update_fields=fields)
        obj.refresh_from_db()

    def get_deleted_objects(self, objs, request):
        """What the confirmation page lists, by node_remove's rule (not the ORM's PROTECT, which
        would count destroyed sandboxes too): a node that holds sandboxes or snapshots is not
        deleted here (`manage.py removenode NAME --force` is)."""
        protected = []
        for node in objs:
            sandboxes, snapshots = node_holdings(node)
            protected += [f"{node.name}: sandbox {s} ({s.status})" for s in sandboxes]
            protected += [f"{node.name}: snapshot {s.pk}" for s in snapshots]
        return [str(node) for node in objs], {Node._meta.verbose_name_plural: len(objs)}, set(), protected

    def delete_model(self, request, obj):
        node_remove(name=obj.name)

    def delete_queryset(self, request, queryset):
        for node in queryset:
            node_remove(name=node.name)
