from django.apps import AppConfig


class SandboxesConfig(AppConfig):
    name = "apps.sandboxes"
    label = "sandboxes"

    def ready(self):
        from . import receivers  # noqa: F401 (connects them)
