from django.apps import AppConfig


class KeysConfig(AppConfig):
    name = "apps.keys"
    label = "keys"

    def ready(self):
        from . import receivers  # noqa: F401 (connects them)
