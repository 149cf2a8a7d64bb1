from django.contrib import admin

from apps.audit.admin import AuditedAdmin

from .models import PooledContainer, Sandbox, WarmPool


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
    fields = ("id", "status", "image", "created_at", "ready_at", "ready_ms")
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
