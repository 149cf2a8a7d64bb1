import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vibebox.settings")

app = Celery("vibebox")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
