import os

from celery import Celery, signals

from vibebox import metrics

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vibebox.settings")

app = Celery("vibebox")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


# Metrics (vibebox/metrics.py): a pool process that exits drops its live gauges; its counters stay.
@signals.worker_process_shutdown.connect
def _forget_process_metrics(pid=None, **kwargs):
    metrics.mark_process_dead(pid)
