"""Image builds (built-in templates in the background, marketplace submissions' validation) go to
the `builds` queue, which only the Procfile's `builds` worker consumes: a build of minutes never
holds a slot of the `worker` that runs reconciliation and the warm pools."""

from pathlib import Path

from vibebox.celery import app

ROOT = Path(__file__).resolve().parent.parent


def _procfile(name: str) -> str:
    return next(line for line in (ROOT / "Procfile").read_text().splitlines() if line.startswith(f"{name}:"))


def test_builds_are_routed_to_their_own_queue_and_worker():
    for task in ("apps.sandboxes.tasks.build_templates", "apps.sandboxes.tasks.validate_submission"):
        assert task in app.tasks
        assert app.amqp.router.route({}, task)["queue"].name == "builds", task
    assert app.amqp.router.route({}, "apps.sandboxes.tasks.reconcile_sandboxes")["queue"].name == "celery"
    assert "--queues=builds " in _procfile("builds") and "VIBEBOX_BUILD_CONCURRENCY" in _procfile("builds")
    assert "--queues=celery " in _procfile("worker")
