from django.apps import AppConfig


class SsoConfig(AppConfig):
    name = "apps.sso"
    label = "sso"

    def ready(self):
        from . import receivers  # noqa: F401 (connects them)
