import secrets

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand

from apps.keys.scopes import ALL_SCOPES
from apps.keys.services import api_key_create


class Command(BaseCommand):
    help = "First run: create an admin user and an API key and print them once. Later runs print only the URL."

    def add_arguments(self, parser):
        parser.add_argument("--username", default="admin")

    def handle(self, *args, username, **options):
        url = f"http://{settings.VIBEBOX_HOST}:{settings.VIBEBOX_PORT}"
        users = get_user_model().objects
        if users.filter(is_superuser=True).exists():
            self.stderr.write(f"{settings.VIBEBOX_BRAND_NAME} will serve on {url}  (API docs: {url}/api/docs)")
            return
        password = secrets.token_urlsafe(12)
        admin = users.create_superuser(username=username, email="", password=password)
        _, key = api_key_create(user=admin, name="first key (make run)", scopes=ALL_SCOPES)
        self.stdout.write(
            "\n".join(
                [
                    "",
                    f"{settings.VIBEBOX_BRAND_NAME} first run: save these now, they are not shown again.",
                    f"  URL:       {url}   (API docs: {url}/api/docs)",
                    f"  Admin:     {url}/admin/  user '{username}'  password '{password}'",
                    f"  API key:   {key}",
                    "",
                    f"  export VIBEBOX_API_URL={url} VIBEBOX_API_KEY={key}",
                    "",
                ]
            )
        )
