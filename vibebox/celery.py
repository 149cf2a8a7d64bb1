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


# ---- Traces and logs (vibebox/tracing.py, vibebox/logs.py; docs/monitoring.md) ----
# Workers and beat log through Django's LOGGING (VIBEBOX_LOG_FORMAT: JSON lines by default) instead
# of Celery's own set-up, and trace when OTEL_EXPORTER_OTLP_ENDPOINT is set: a task's run continues
# the trace its publisher put in the task's headers.
from celery.signals import beat_init, celeryd_init, setup_logging, worker_init, worker_process_init  # noqa: E402


@celeryd_init.connect  # early: the worker's start-up warnings are log lines too
@setup_logging.connect
def _django_logging(**kwargs):
    import logging.config

    from django.conf import settings

    logging.config.dictConfig(settings.LOGGING)
    logging.captureWarnings(True)  # Python's warnings (Celery's own) as log lines too


@worker_init.connect
@worker_process_init.connect
@beat_init.connect
def _tracing(**kwargs):
    from vibebox import tracing

    tracing.configure(django=False)
