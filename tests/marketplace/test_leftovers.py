"""What the marketplace's reaper (apps.sandboxes.tasks.reap_submissions -> submissions_interrupted)
does with submissions left behind, against the real database and engine: a queued one whose task
was lost is queued again, then failed; one stuck smoke testing fails at the smoke step; a dead
build's step images and containers (labelled with the submission) are removed by label. Also: a
failed submission's name stays its organization's to submit again (the row its smoke sandbox
protected is reused), and warm pools never serve a bare-name create from an older version."""

import datetime as dt
import json
import secrets

import docker
import pytest
import redis
from celery import Celery
from django.utils import timezone

from apps.marketplace import services
from apps.marketplace.models import Submission, Template
from apps.marketplace.signals import submission_queued
from apps.orgs.services import personal_org_ensure
from apps.sandboxes import specs, submissions
from apps.sandboxes.models import PooledContainer, Sandbox, Status
from apps.sandboxes.runtime import get_driver
from apps.sandboxes.runtime.base import BUILD_OWNER_LABEL
from apps.sandboxes.services import pools
from apps.sandboxes.submissions import build_labels, plan_dockerfile
from tests.marketplace.conftest import DOCKERFILE, yaml_for
from tests.marketplace.pipeline_helpers import SMALL_DOCKERFILE, make_submission, spec_for
from tests.test_make_run import redis_server
from vibebox import exceptions as errors

pytestmark = pytest.mark.django_db(transaction=True)


@pytest.fixture
def queued_signals():
    sent: list[str] = []

    def receiver(*, submission, **_):
        sent.append(submission.pk)

    submission_queued.connect(receiver, dispatch_uid="test-leftovers-queued")
    yield sent
    submission_queued.disconnect(dispatch_uid="test-leftovers-queued")


@pytest.fixture
def broker(tmp_path, settings):
    """A Redis of the test's own as the Celery broker the reaper reads (nothing else consumes it)."""
    with redis_server(tmp_path) as url:
        settings.CELERY_BROKER_URL = url
        client = redis.Redis.from_url(url)
        yield client
        client.close()


def _send_validate(broker_url: str, submission_id: str) -> None:
    """Sends validate_submission to the builds queue as the receiver does, through a Celery app of
    the test's own on `broker_url` (no worker consumes it: it waits there)."""
    app = Celery("m23fix-test", broker=broker_url, set_as_current=False)
    app.conf.task_routes = {"apps.sandboxes.tasks.validate_submission": {"queue": "builds"}}
    with app:
        app.send_task("apps.sandboxes.tasks.validate_submission", args=[submission_id])


def test_a_queued_submission_whose_task_was_lost_is_queued_again_then_failed(
    owner, tmp_path, settings, queued_signals, caplog, broker
):
    settings.VIBEBOX_TEMPLATE_PIPELINE_DISPATCH = False  # the receiver would send the Celery task
    settings.VIBEBOX_TEMPLATE_REQUEUE_AFTER = 600
    settings.VIBEBOX_TEMPLATE_QUEUE_TIMEOUT = 3 * 3600
    lost = make_submission(owner, tmp_path, dockerfile=SMALL_DOCKERFILE, spec=spec_for("lost-task"))
    fresh = make_submission(owner, tmp_path, dockerfile=SMALL_DOCKERFILE, spec=spec_for("fresh-task"))
    ancient = make_submission(owner, tmp_path, dockerfile=SMALL_DOCKERFILE, spec=spec_for("ancient-task"))
    # Submitted long ago, but queued again 11 minutes ago: the 3 h count from that.
    requeued_lately = make_submission(owner, tmp_path, dockerfile=SMALL_DOCKERFILE, spec=spec_for("late-task"))
    now = timezone.now()
    Submission.objects.filter(pk=lost.pk).update(updated_at=now - dt.timedelta(minutes=11))
    Submission.objects.filter(pk=ancient.pk).update(
        created_at=now - dt.timedelta(hours=3, minutes=2), updated_at=now - dt.timedelta(hours=3, minutes=1)
    )
    Submission.objects.filter(pk=requeued_lately.pk).update(
        created_at=now - dt.timedelta(hours=5), updated_at=now - dt.timedelta(minutes=11)
    )

    with caplog.at_level("WARNING", logger="apps.sandboxes.submissions"):
        report = submissions.submissions_interrupted()
    assert sorted(report["requeued"]) == sorted([lost.pk, requeued_lately.pk]) and report["failed"] == [ancient.pk]
    said = [record.getMessage() for record in caplog.records]
    assert (
        f"submission {lost.pk}: still queued with no change for 10 min and no task in the broker: queued again" in said
    )
    assert f"submission {ancient.pk}: no task in the broker 3 h after it was last queued: failed (step build)" in said
    assert sorted(queued_signals) == sorted([lost.pk, requeued_lately.pk])  # the receiver queues validate_submission
    lost.refresh_from_db()
    assert lost.state == "queued" and "re-queued: the validation had not started after" in lost.build_log
    assert lost.updated_at > now - dt.timedelta(minutes=1)
    ancient.refresh_from_db()
    assert (ancient.state, ancient.failed_step) == ("failed", "build")
    assert "never started within 3 h" in ancient.message
    assert Submission.objects.get(pk=fresh.pk).state == "queued"
    # The next pass finds nothing new: the re-queued one changed just now.
    assert submissions.submissions_interrupted()["requeued"] == []
    assert len(queued_signals) == 2
    # A redelivered task runs the pipeline once: the second finds it no longer queued.
    assert services.submission_start(lost.pk) is not None
    assert services.submission_start(lost.pk) is None


def test_a_submission_whose_task_waits_in_the_broker_is_neither_queued_again_nor_failed(
    owner, tmp_path, settings, queued_signals, broker
):
    """A burst behind one build at a time: the tenth waits for hours, its task in the builds
    queue (or taken by a worker, not started). It is not lost: no second task, no failure."""
    settings.VIBEBOX_TEMPLATE_PIPELINE_DISPATCH = False
    settings.VIBEBOX_TEMPLATE_REQUEUE_AFTER = 600
    settings.VIBEBOX_TEMPLATE_QUEUE_TIMEOUT = 3 * 3600
    waiting = make_submission(owner, tmp_path, dockerfile=SMALL_DOCKERFILE, spec=spec_for("waiting-task"))
    taken = make_submission(owner, tmp_path, dockerfile=SMALL_DOCKERFILE, spec=spec_for("taken-task"))
    lost = make_submission(owner, tmp_path, dockerfile=SMALL_DOCKERFILE, spec=spec_for("gone-task"))
    long_ago = timezone.now() - dt.timedelta(hours=4)
    Submission.objects.filter(pk__in=[waiting.pk, taken.pk, lost.pk]).update(created_at=long_ago, updated_at=long_ago)
    url = settings.CELERY_BROKER_URL
    # A worker took `taken`'s task (BRPOP: the oldest) and has not started it: kombu keeps it in `unacked`.
    _send_validate(url, taken.pk)
    payload = json.loads(broker.rpop("builds"))
    assert submissions._task_submission(payload) == taken.pk
    broker.hset("unacked", "tag-1", json.dumps([payload, "", "builds"]))
    _send_validate(url, waiting.pk)
    _send_validate(url, "sub_someoneelse")  # another submission's task: not this one's
    assert broker.llen("builds") == 2
    assert submissions.tasks_waiting({waiting.pk, taken.pk, lost.pk}) == {waiting.pk, taken.pk}

    report = submissions.submissions_interrupted()
    assert report["requeued"] == [] and report["failed"] == [lost.pk]
    assert queued_signals == []
    for submission in (waiting, taken):
        submission.refresh_from_db()
        assert submission.state == "queued" and "re-queued" not in submission.build_log
    assert Submission.objects.get(pk=lost.pk).state == "failed"

    # A broker that cannot be read: nothing is done with queued ones (it does not guess).
    broker.delete("builds", "unacked")
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:1/0"
    assert submissions.tasks_waiting({waiting.pk}) is None
    report = submissions.submissions_interrupted()
    assert report["requeued"] == [] and report["failed"] == []
    assert Submission.objects.get(pk=waiting.pk).state == "queued"


def test_a_submission_stuck_smoke_testing_fails_at_the_smoke_step(owner, tmp_path, settings):
    settings.VIBEBOX_TEMPLATE_BUILD_TIMEOUT = 60
    settings.VIBEBOX_TEMPLATE_SMOKE_TIMEOUT = 30
    stuck = make_submission(owner, tmp_path, dockerfile=SMALL_DOCKERFILE, spec=spec_for("stuck-smoke"))
    services.submission_start(stuck.pk)
    services.submission_progress(stuck.pk, state="smoke_testing", image="vibebox/none:1", image_size=1)
    Submission.objects.filter(pk=stuck.pk).update(updated_at=timezone.now() - dt.timedelta(seconds=60 + 30 + 305))
    assert submissions.submissions_interrupted()["failed"] == [stuck.pk]
    stuck.refresh_from_db()
    assert (stuck.state, stuck.failed_step) == ("failed", "smoke")
    assert "interrupted" in stuck.message and "in its smoke step" in stuck.message


def _build_and_die(docker_client, tmp_path, dockerfile: str) -> list[str]:
    """Builds with the engine's classic builder as the pipeline does, but stops at a failing
    step without cleaning up, as a build whose worker died leaves things: the ids of the step
    images it made."""
    folder = tmp_path / f"ctx-{secrets.token_hex(3)}"
    folder.mkdir()
    (folder / "Dockerfile").write_text(dockerfile)
    made, after_from = [], False
    for chunk in docker_client.api.build(path=str(folder), rm=True, nocache=True, pull=False, decode=True):
        for line in (chunk.get("stream") or "").splitlines():
            if line.startswith("Step "):
                after_from = " : FROM " in line
            elif line.startswith(" ---> ") and not line.startswith(" ---> Running") and not after_from:
                made.append(line.split()[-1])  # a step's image (not the FROM's base)
    return made


def test_a_dead_builds_step_images_and_containers_are_reaped_by_label(owner, tmp_path, settings, docker_client):
    base = submissions.catalog.base_image("trixie")
    if not get_driver().image_exists(base):
        pytest.skip(f"{base} is not built here")
    org = personal_org_ensure(user=owner)
    dead = make_submission(owner, tmp_path, dockerfile=SMALL_DOCKERFILE, spec=spec_for("dead-build"))
    alive = make_submission(owner, tmp_path, dockerfile=SMALL_DOCKERFILE, spec=spec_for("alive-build"))
    services.submission_start(alive.pk)
    text = "FROM debian:trixie AS one\nRUN echo one > /one\nFROM one\nRUN echo two > /two\nRUN exit 3\n"
    labelled = {}
    for submission in (dead, alive):
        plan = plan_dockerfile(text, org=org, labels=build_labels(submission))
        assert plan.dockerfile.count(f'{BUILD_OWNER_LABEL}="{submission.pk}"') == 2  # after each FROM
        labelled[submission.pk] = _build_and_die(docker_client, tmp_path, plan.dockerfile)
        assert labelled[submission.pk]
        for image in labelled[submission.pk]:
            assert docker_client.api.inspect_image(image)["Config"]["Labels"][BUILD_OWNER_LABEL] == submission.pk
    # A step container the engine did not remove (its worker died mid-step), and a sandbox made
    # from a labelled image (it inherits the label, but is a sandbox: never reaped).
    step = docker_client.api.create_container(labelled[dead.pk][-1], command=["true"])["Id"]
    sandbox_like = docker_client.api.create_container(
        labelled[alive.pk][-1],
        command=["true"],
        labels={"vibebox.managed": "1", "vibebox.instance": settings.VIBEBOX_INSTANCE},
    )["Id"]
    try:
        services.submission_start(dead.pk)
        services.submission_fail(dead.pk, step="build", message="The validation was interrupted.")
        report = submissions.submissions_interrupted()
        assert step in report["containers_removed"]  # with the failed step's own container
        # The leaf went, and its untagged parents (the same build's earlier steps) were pruned with it.
        assert [image[7:19] for image in report["images_removed"]] == [labelled[dead.pk][-1]]
        for image in labelled[dead.pk]:
            assert not _exists(docker_client, image), image
        assert not _labelled_containers(docker_client, dead.pk)
        assert all(_exists(docker_client, image) for image in labelled[alive.pk])  # still building: left alone
        assert sandbox_like in _labelled_containers(docker_client, alive.pk)
        services.submission_fail(alive.pk, step="build", message="The validation was interrupted.")
        submissions.submissions_interrupted()
        assert _labelled_containers(docker_client, alive.pk) == [sandbox_like]  # a sandbox's: never reaped
        docker_client.api.remove_container(sandbox_like, force=True)
        submissions.submissions_interrupted()
        for image in labelled[dead.pk] + labelled[alive.pk]:
            assert not _exists(docker_client, image), image
        assert not _labelled_containers(docker_client, alive.pk)
    finally:
        for container in (step, sandbox_like):
            if _container(docker_client, container):
                docker_client.api.remove_container(container, force=True)
        for image in reversed(labelled[dead.pk] + labelled[alive.pk]):
            if _exists(docker_client, image):
                docker_client.api.remove_image(image, force=True)


def _build(docker_client, tmp_path, dockerfile: str, tag: str) -> str:
    """Builds with the engine's classic builder, as the pipeline does; the image's id."""
    folder = tmp_path / f"ctx-{secrets.token_hex(3)}"
    folder.mkdir()
    (folder / "Dockerfile").write_text(dockerfile)
    for chunk in docker_client.api.build(path=str(folder), tag=tag, rm=True, pull=False, decode=True):
        assert "error" not in chunk, chunk
    return docker_client.api.inspect_image(tag)["Id"]


def test_the_reaper_never_touches_a_snapshot_of_a_sandbox_made_from_a_submissions_image(
    owner, tmp_path, settings, docker_client
):
    """Images inherit labels: a snapshot of a sandbox made from a submission's built image carries
    the submission's label. A failed submission's leftovers go; the snapshot (and an image the
    pipeline did not tag) stays."""
    base = submissions.catalog.base_image("trixie")
    if not get_driver().image_exists(base):
        pytest.skip(f"{base} is not built here")
    org = personal_org_ensure(user=owner)
    failed = make_submission(owner, tmp_path, dockerfile=SMALL_DOCKERFILE, spec=spec_for("snapped-build"))
    labels = build_labels(failed)
    built_tag = submissions.image_tag(failed)
    snapshot_tag = f"{settings.VIBEBOX_IMAGE_PREFIX}/snapshot-test-{secrets.token_hex(4)}:1"
    copy_tag = f"{settings.VIBEBOX_IMAGE_PREFIX}/test-m23fix-copy:{secrets.token_hex(4)}"
    text = "FROM debian:trixie\nRUN echo built > /built\n"
    built = _build(docker_client, tmp_path, plan_dockerfile(text, org=org, labels=labels).dockerfile, built_tag)
    dead_steps = _build_and_die(
        docker_client, tmp_path, plan_dockerfile(text + "RUN exit 3\n", org=org, labels=labels).dockerfile
    )
    dead_steps = [step for step in dead_steps if not built.startswith(f"sha256:{step}")]  # (a cached step)
    # A sandbox made from the built image, and its snapshot as apps/sandboxes/services/snapshots.py takes it.
    sandbox = docker_client.api.create_container(
        built_tag, command=["true"], labels={**specs.base_labels(), "vibebox.sandbox-id": "sbx_m23fixtest"}
    )["Id"]
    snapshot = None
    try:
        get_driver().commit(
            sandbox, image=snapshot_tag, labels={**specs.base_labels(), "vibebox.snapshot-id": "snp_m23fixtest"}
        )
        snapshot = docker_client.api.inspect_image(snapshot_tag)["Id"]
        assert docker_client.api.inspect_image(snapshot)["Config"]["Labels"][BUILD_OWNER_LABEL] == failed.pk
        docker_client.api.remove_container(sandbox, force=True)
        docker_client.api.tag(built_tag, *copy_tag.split(":"))  # the built image under a tag of someone else's
        services.submission_start(failed.pk)
        services.submission_fail(failed.pk, step="build", message="The validation was interrupted.")

        report = submissions.submissions_interrupted()
        assert _exists(docker_client, snapshot_tag) and _exists(docker_client, snapshot)
        assert built_tag not in report["images_removed"] and _exists(docker_client, built_tag)  # its other tag
        assert dead_steps and not any(_exists(docker_client, step) for step in dead_steps)

        docker_client.api.remove_image(copy_tag)
        report = submissions.submissions_interrupted()
        assert built_tag in report["images_removed"] and not _exists(docker_client, built_tag)  # the pipeline's tag
        assert _exists(docker_client, snapshot_tag)  # (its parent image stays under it, untagged)
        assert submissions.submissions_interrupted()["images_removed"] == []
        assert _exists(docker_client, snapshot_tag)
    finally:
        if _container(docker_client, sandbox):
            docker_client.api.remove_container(sandbox, force=True)
        for image in (snapshot_tag, copy_tag, built_tag, *reversed(dead_steps)):
            if _exists(docker_client, image):
                docker_client.api.remove_image(image, force=True)
        if snapshot is None and _exists(docker_client, built):
            docker_client.api.remove_image(built, force=True)


def _labelled_containers(docker_client, owner: str) -> list[str]:
    rows = docker_client.api.containers(all=True, filters={"label": f"{BUILD_OWNER_LABEL}={owner}"})
    return [row["Id"] for row in rows]


def _exists(docker_client, image: str) -> bool:
    return _found(docker_client.api.inspect_image, image)


def _container(docker_client, container: str) -> bool:
    return _found(docker_client.api.inspect_container, container)


def _found(inspect, ident: str) -> bool:
    try:
        inspect(ident)
    except docker.errors.NotFound:
        return False
    return True


def test_a_failed_submissions_name_stays_its_orgs_and_a_later_submission_reuses_the_row(
    owner, outsider, actor_of_user, python_image
):
    actor = actor_of_user(owner)
    first = services.submission_create(
        actor, dockerfile=DOCKERFILE, template_yaml=yaml_for("comeback-tool", description='"The first try."')
    )
    services.submission_start(first.pk)
    services.submission_progress(first.pk, state="smoke_testing", image=python_image, image_size=1)
    version = services.submission_candidate(first.pk)
    row = version.template
    # The smoke test's sandbox row (destroyed, kept as every sandbox's) protects the Template row.
    Sandbox.objects.create(
        owner=owner,
        org=actor.org,
        name="smoke",
        template=row,
        template_version="1.0.0",
        image=python_image,
        status=Status.DESTROYED,
        cpu=1,
        memory=256 * 1024**2,
    )
    services.submission_fail(first.pk, step="smoke", message="The smoke command exited with code 1.")
    row.refresh_from_db()
    assert not row.is_active and row.description == "The first try." and not row.versions.exists()

    # Another organization cannot take the name; the same organization submits it again.
    error = _submit_error(actor_of_user(outsider), "comeback-tool")
    assert error["fields"]["name"][0]["code"] == "taken"
    second = services.submission_create(
        actor,
        dockerfile=DOCKERFILE,
        template_yaml=yaml_for("comeback-tool", description='"The second try."', tags="[again]"),
    )
    services.submission_start(second.pk)
    services.submission_progress(second.pk, state="smoke_testing", image=python_image, image_size=1)
    candidate = services.submission_candidate(second.pk)
    # The smoke sandbox is made from this submission's fields, not the failed one's.
    assert candidate.template.pk == row.pk and candidate.template.description == "The second try."
    services.submission_passed(second.pk)
    second.refresh_from_db()
    assert second.state == "published"
    template = Template.objects.get(name="comeback-tool")
    assert template.pk == row.pk and template.is_active and template.latest_version == "1.0.0"
    assert template.description == "The second try." and template.tags == ["again"]
    assert template.owner_org_id == actor.org.pk


def _submit_error(actor, name: str) -> dict:
    with pytest.raises(errors.ApplicationError) as caught:
        services.submission_create(actor, dockerfile=DOCKERFILE, template_yaml=yaml_for(name))
    return caught.value.details


def test_a_pool_never_serves_a_bare_name_create_from_an_older_version(
    owner, publish, python_image, settings, api_client, cleanup_sandbox_ids, docker_client
):
    settings.VIBEBOX_POOL_ENABLED = True
    settings.VIBEBOX_POOL_SIZES = {"pooled-tool": 1}
    settings.VIBEBOX_POOL_REFILL_AFTER_TAKE = False
    newer = f"vibebox/test-m23-pooled:{secrets.token_hex(4)}"  # the same image under a second tag
    docker_client.api.tag(python_image, *newer.split(":"))
    base = "FROM vibebox/python-3.13\nRUN true\n"
    try:
        publish(owner, "pooled-tool", "1.0.0", image=python_image, dockerfile=base)
        template = Template.objects.get(name="pooled-tool")
        pool = pools.pool_get(template)
        assert pools.pool_fill(pool) == 1
        old_member = PooledContainer.objects.get(pool=pool)
        assert old_member.image == python_image

        publish(owner, "pooled-tool", "2.0.0", image=newer, dockerfile=base)
        assert Template.objects.get(name="pooled-tool").image == newer

        def create(template_ref: str) -> dict:
            response = api_client.post("/api/v1/sandboxes", {"template": template_ref}, format="json")
            assert response.status_code == 201, response.content
            cleanup_sandbox_ids.append(response.json()["id"])
            return response.json()

        bare = create("pooled-tool")  # the newest version: never the 1.0.0 pooled container
        assert (bare["templateVersion"], bare["warm"]) == ("2.0.0", False)
        assert Sandbox.objects.get(pk=bare["id"]).image == newer
        assert PooledContainer.objects.filter(pk=old_member.pk).exists()
        pinned = create("pooled-tool@1.0.0")  # the pin takes the container of its version
        assert (pinned["templateVersion"], pinned["warm"], pinned["id"]) == ("1.0.0", True, old_member.id)

        assert pools.pool_fill(pools.pool_get(Template.objects.get(name="pooled-tool"))) >= 1  # (demand: 2)
        assert {row.image for row in PooledContainer.objects.filter(pool=pool)} == {newer}
        warm = create("pooled-tool")
        assert (warm["templateVersion"], warm["warm"]) == ("2.0.0", True)
        # The pool check drains members of an outdated image.
        PooledContainer.objects.filter(pool=pool).update(image=python_image)
        pools.pool_check(pools.pool_get(Template.objects.get(name="pooled-tool")))
        assert not PooledContainer.objects.filter(pool=pool, image=python_image).exists()
    finally:
        pools.pool_drain()
        docker_client.api.remove_image(newer)
