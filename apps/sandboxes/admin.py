from django.contrib import admin

from .models import Sandbox


@admin.register(Sandbox)
class SandboxAdmin(admin.ModelAdmin):
    list_display = ("id", "name", "owner", "template", "status", "container_id_short", "created_at", "expires_at")
    list_filter = ("status", "template", "ephemeral")
    search_fields = ("id", "name", "owner__username", "container_id")
    readonly_fields = ("id", "container_id", "image", "created_at", "updated_at", "started_at", "stopped_at")
    exclude = ("env",)  # may hold secrets

    @admin.display(description="container")
    def container_id_short(self, sandbox):
        return sandbox.container_id[:12]
