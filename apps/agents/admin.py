from django.contrib import admin

from apps.audit.admin import AuditedAdmin

from .models import AgentRun, AgentTask, ChangeSet, ClaudeAsk, ClaudeSession, ClaudeSetup, ModelUsage


@admin.register(ClaudeSetup)
class ClaudeSetupAdmin(AuditedAdmin):
    list_display = ["sandbox", "version", "mcp", "enabled_at", "last_activity_at"]
    exclude = ["token_hash", "upstream_key", "mcp_key"]
    readonly_fields = ["sandbox", "api_key", "version", "home", "mcp"]


@admin.register(ClaudeSession)
class ClaudeSessionAdmin(AuditedAdmin):
    list_display = ["id", "sandbox", "title", "review", "last_activity_at"]
    search_fields = ["id", "sandbox__id", "title"]


@admin.register(ClaudeAsk)
class ClaudeAskAdmin(AuditedAdmin):
    list_display = ["id", "sandbox", "session", "status", "cost_usd", "started_at"]
    list_filter = ["status"]
    search_fields = ["id", "sandbox__id", "session__id"]


@admin.register(ChangeSet)
class ChangeSetAdmin(AuditedAdmin):
    list_display = ["id", "session", "status", "created_at", "reviewed_at"]
    list_filter = ["status"]


@admin.register(ModelUsage)
class ModelUsageAdmin(AuditedAdmin):
    list_display = ["created_at", "sandbox", "model", "input_tokens", "output_tokens", "cost_usd", "status"]
    list_filter = ["model"]


@admin.register(AgentRun)
class AgentRunAdmin(AuditedAdmin):
    """Records the SDK writes: read them here, change them through the API."""

    list_display = ["id", "owner", "name", "kind", "status", "parallelism", "created_at", "finished_at"]
    list_filter = ["status", "kind"]
    search_fields = ["id", "name", "owner__username"]
    readonly_fields = ["id", "owner", "api_key", "kind", "parallelism", "template", "created_at", "finished_at"]

    def has_add_permission(self, request):
        return False


@admin.register(AgentTask)
class AgentTaskAdmin(AuditedAdmin):
    list_display = ["id", "run", "index", "name", "status", "sandbox_id", "attempts", "started_at", "finished_at"]
    list_filter = ["status"]
    search_fields = ["id", "run__id", "name", "sandbox_id"]
    list_select_related = ["run"]
    readonly_fields = ["id", "run", "index", "sandbox_id", "attempts", "started_at", "finished_at"]

    def has_add_permission(self, request):
        return False
