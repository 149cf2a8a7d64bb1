from django.apps import AppConfig


class OrgsConfig(AppConfig):
    name = "apps.orgs"
    label = "orgs"

    def ready(self):
        from . import receivers  # noqa: F401 (connects them)
