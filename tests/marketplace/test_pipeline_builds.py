"""The validation pipeline's slower paths, each a real build (`templates` marker: make
test-templates, not make test): a failing build step, every policy rule, a smoke test that fails
and one whose ports must answer, and malicious Dockerfiles that try to reach the engine's socket,
the host's ports, a private network, fill the disk or run forever: each is contained, fails at its
step with a clear message, and leaves no container, network or image behind.

Traffic goes only to this test's own listener on the host and to a container on a network the
test creates itself."""

import base64
import contextlib
import secrets
import socket
import threading

import docker
import pytest

from apps.marketplace.models import Submission, Template
from apps.orgs.services import personal_org_ensure
from apps.sandboxes.models import Sandbox, Status
from apps.sandboxes.runtime import get_driver
from apps.sandboxes.submissions import image_tag, submission_validate
from apps.sandboxes.tasks import validate_submission
from tests.marketplace.conftest import tar_of
from tests.marketplace.pipeline_helpers import SMALL_DOCKERFILE, assert_nothing_left, make_submission, spec_for
from vibebox.units import format_size

pytestmark = [pytest.mark.templates, pytest.mark.django_db(transaction=True)]

TRIXIE = "debian:trixie"
GATEWAY_SCRIPT = (
    "gw=$(awk '$2==\"00000000\" {print $3; exit}' /proc/net/route); "
    'host=$(printf "%d.%d.%d.%d" 0x${gw:6:2} 0x${gw:4:2} 0x${gw:2:2} 0x${gw:0:2}); '
)


def validate(owner, tmp_path, dockerfile: str, spec: dict, **extra):
    submission = make_submission(owner, tmp_path, dockerfile=dockerfile, spec=spec, **extra)
    state = submission_validate(submission.pk)
    submission.refresh_from_db()
    assert submission.state == state
    return submission


def test_a_failing_step_fails_the_build_and_leaves_no_step_image(templates, owner, tmp_path):
    dockerfile = SMALL_DOCKERFILE + "RUN echo about to fail && exit 3\n"
    submission = validate(owner, tmp_path, dockerfile, spec_for("fails-build"))
    assert (submission.state, submission.failed_step) == ("failed", "build")
    assert "returned a non-zero code: 3" in submission.message
    assert "about to fail" in submission.build_log
    assert_nothing_left(submission)


def test_policy_rules_each_say_what_is_wrong(templates, owner, tmp_path):
    slug = personal_org_ensure(user=owner).slug
    dockerfile = (
        f"FROM {TRIXIE}\n"
        f'LABEL org.opencontainers.image.title="fine" {slug}.note="fine" vibebox.template="spoofed" other.key="no"\n'
        "VOLUME /data\n"
        "EXPOSE 80 8080\n"
        "RUN echo 'toor:x:0:0::/root:/bin/sh' >> /etc/passwd\n"  # an alias of uid 0
        "USER toor\n"
    )
    submission = validate(owner, tmp_path, dockerfile, spec_for("breaks-policy"))
    assert (submission.state, submission.failed_step) == ("failed", "policy")
    message = submission.message
    assert "final user (toor) is root (uid 0)" in message
    assert "VOLUME is not allowed (/data)" in message
    assert "EXPOSE of ports below 1024 is not allowed (80/tcp)" in message and "8080" not in message
    assert "not allowed: other.key." in message  # vibebox.template is ours: set back by the build's labels
    assert "org.opencontainers" in message and f"{slug}.note" not in message.split("not allowed:")[1]
    assert_nothing_left(submission)


def test_policy_refuses_a_spoofed_vibebox_label_and_a_size_over_the_limit(templates, owner, tmp_path, settings):
    settings.VIBEBOX_TEMPLATE_MAX_SIZE = 64 * 1024**2  # the base alone is about 80 MB
    dockerfile = SMALL_DOCKERFILE + 'LABEL vibebox.sandboxd="1" vibebox.extra="x"\n'
    submission = validate(owner, tmp_path, dockerfile, spec_for("spoofs-labels"))
    assert (submission.state, submission.failed_step) == ("failed", "policy")
    assert "vibebox.extra, vibebox.sandboxd" in submission.message
    assert f"above the limit of {format_size(64 * 1024**2)}." in submission.message, submission.message
    assert_nothing_left(submission)


def test_setuid_files_added_outside_the_allow_list_fail_the_policy(templates, owner, tmp_path, settings):
    settings.VIBEBOX_TEMPLATE_SETUID_ALLOW = ["/usr/local/bin/allowed"]
    dockerfile = SMALL_DOCKERFILE.replace("USER app\n", "") + (
        "RUN cp /bin/true /usr/local/bin/sneaky && chmod u+s /usr/local/bin/sneaky"
        " && cp /bin/true /usr/local/bin/group && chmod g+s /usr/local/bin/group"
        " && cp /bin/true /usr/local/bin/allowed && chmod u+s /usr/local/bin/allowed\n"
        "USER app\n"
    )
    submission = validate(owner, tmp_path, dockerfile, spec_for("adds-setuid"))
    assert (submission.state, submission.failed_step) == ("failed", "policy")
    assert "/usr/local/bin/group, /usr/local/bin/sneaky." in submission.message
    assert "allowed" not in submission.message.split(":", 1)[1]
    assert "/usr/bin/passwd" not in submission.message  # the base image's own
    assert_nothing_left(submission)


def test_a_failing_smoke_command_fails_the_smoke_step_and_its_sandbox_is_destroyed(templates, owner, tmp_path):
    spec = spec_for("fails-smoke", smoke="echo about to fail; exit 7")
    submission = validate(owner, tmp_path, SMALL_DOCKERFILE, spec)
    assert (submission.state, submission.failed_step) == ("failed", "smoke")
    assert submission.message == "The smoke command exited with code 7."
    assert "about to fail" in submission.smoke_output
    template = Template.objects.get(name="fails-smoke")
    assert not template.is_active and not template.versions.exists()  # the candidate was dropped
    assert [s.status for s in Sandbox.objects.filter(template=template)] == [Status.DESTROYED]
    assert_nothing_left(submission)


def test_a_smoke_command_that_runs_too_long_is_killed(templates, owner, tmp_path, settings):
    settings.VIBEBOX_TEMPLATE_SMOKE_TIMEOUT = 3
    submission = validate(owner, tmp_path, SMALL_DOCKERFILE, spec_for("slow-smoke", smoke="sleep 60"))
    assert (submission.state, submission.failed_step) == ("failed", "smoke")
    assert "did not finish within 3 s" in submission.message
    assert_nothing_left(submission)


def test_declared_ports_must_answer_after_start(templates, owner, tmp_path, settings):
    settings.VIBEBOX_TEMPLATE_SMOKE_TIMEOUT = 20
    dockerfile = "FROM vibebox/python-3.13\nRUN echo '<h1>hi</h1>' > /tmp/index.html\n"
    spec = spec_for(
        "serves-port",
        smoke="python3 --version",
        start="cd /tmp && python3 -m http.server 8000",
        ports=[8000],
        user="sandbox",
        workdir="/workspace",
    )
    submission = validate(owner, tmp_path, dockerfile, spec, visibility="public")
    tag = image_tag(submission)
    try:
        assert (submission.state, submission.message) == ("awaiting_review", "")  # public: a staff review next
        assert "ports answering: 8000" in submission.smoke_output
        assert_nothing_left(submission)
    finally:
        get_driver().image_remove(tag)

    settings.VIBEBOX_TEMPLATE_SMOKE_TIMEOUT = 4
    spec = {**spec, "name": "silent-port", "ports": [8000, 8001]}
    submission = validate(owner, tmp_path, dockerfile, spec)
    assert (submission.state, submission.failed_step) == ("failed", "smoke")
    assert submission.message == "Port 8001 did not answer within 4 s."
    assert_nothing_left(submission)


# ---- malicious Dockerfiles ----


def test_the_engine_socket_is_not_in_the_build(templates, owner, tmp_path):
    dockerfile = (
        f"FROM {TRIXIE}\n"
        'SHELL ["/bin/bash", "-c"]\n'
        "RUN for s in /var/run/docker.sock /run/docker.sock; do [ -e $s ] && echo FOUND $s && exit 0; done;"
        " echo no-socket; exit 1\n"
    )
    submission = validate(owner, tmp_path, dockerfile, spec_for("wants-socket"))
    assert (submission.state, submission.failed_step) == ("failed", "build")
    lines = submission.build_log.splitlines()
    assert "no-socket" in lines and not [line for line in lines if line.startswith("FOUND")]
    assert "returned a non-zero code: 1" in submission.message
    assert_nothing_left(submission)


@contextlib.contextmanager
def host_listener():
    """A TCP listener on every host address (this test's own): yields (port, connections seen)."""
    seen: list = []
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("0.0.0.0", 0))  # noqa: S104 - the build network (its gateway) is made during the test
    server.listen(5)
    server.settimeout(0.5)
    stop = threading.Event()

    def accept():
        while not stop.is_set():
            with contextlib.suppress(TimeoutError, OSError):
                connection, address = server.accept()
                seen.append(address)
                connection.close()

    thread = threading.Thread(target=accept, daemon=True)
    thread.start()
    try:
        yield server.getsockname()[1], seen
    finally:
        stop.set()
        thread.join(timeout=5)
        server.close()


def test_the_host_is_not_reachable_from_a_build_step(templates, owner, tmp_path):
    with host_listener() as (port, seen):
        dockerfile = (
            f"FROM {TRIXIE}\n"
            'SHELL ["/bin/bash", "-c"]\n'
            f"RUN {GATEWAY_SCRIPT} echo trying $host:{port};"
            f' if timeout 5 bash -c "echo hi > /dev/tcp/$host/{port}"; then echo REACHED-HOST; exit 0; fi;'
            " echo blocked; exit 1\n"
        )
        submission = validate(owner, tmp_path, dockerfile, spec_for("wants-host"))
    assert (submission.state, submission.failed_step) == ("failed", "build")
    lines = submission.build_log.splitlines()
    assert "blocked" in lines and "REACHED-HOST" not in lines
    assert any(line.startswith("trying 10.") or line.startswith("trying 172.") for line in lines)
    assert seen == []
    assert_nothing_left(submission)


def test_a_private_network_is_not_reachable_from_a_build_step(templates, owner, tmp_path, settings):
    client = docker.from_env()
    name = f"vibebox-{settings.VIBEBOX_INSTANCE}-priv"
    labels = {"vibebox.test-instance": settings.VIBEBOX_INSTANCE}
    network = client.networks.create(name, driver="bridge", labels=labels)
    target = None
    try:
        target = client.containers.run(
            templates["python-3.13"].image,
            ["python3", "-m", "http.server", "8080"],
            name=f"{name}-{secrets.token_hex(3)}",
            network=name,
            labels=labels,
            detach=True,
        )
        target.reload()
        address = target.attrs["NetworkSettings"]["Networks"][name]["IPAddress"]
        assert address
        dockerfile = (
            f"FROM {TRIXIE}\n"
            'SHELL ["/bin/bash", "-c"]\n'
            f'RUN if timeout 5 bash -c "echo hi > /dev/tcp/{address}/8080"; then echo REACHED-PRIVATE; exit 0; fi;'
            " echo blocked; exit 1\n"
        )
        submission = validate(owner, tmp_path, dockerfile, spec_for("wants-private"))
        assert (submission.state, submission.failed_step) == ("failed", "build")
        lines = submission.build_log.splitlines()
        assert "blocked" in lines and "REACHED-PRIVATE" not in lines
        assert b"GET" not in target.logs() and "code 400" not in target.logs().decode()
        assert_nothing_left(submission)
    finally:
        if target is not None:
            target.remove(force=True)
        network.remove()
        client.close()


def test_a_build_that_fills_the_disk_is_stopped(templates, owner, tmp_path, settings):
    settings.VIBEBOX_TEMPLATE_MAX_SIZE = 200 * 1024**2
    dockerfile = (
        f"FROM {TRIXIE}\n"
        'SHELL ["/bin/bash", "-c"]\n'
        "RUN i=0; while true; do dd if=/dev/zero of=/fill-$i bs=1M count=16 status=none; i=$((i+1)); done\n"
    )
    submission = validate(owner, tmp_path, dockerfile, spec_for("fills-disk"))
    assert (submission.state, submission.failed_step) == ("failed", "build")
    assert submission.message == "The build wrote more than the size limit (200 MiB): stopped."
    assert_nothing_left(submission)


def test_a_build_that_runs_forever_is_stopped(templates, owner, tmp_path, settings):
    settings.VIBEBOX_TEMPLATE_BUILD_TIMEOUT = 6
    dockerfile = f"FROM {TRIXIE}\nRUN echo started && sleep infinity\n"
    submission = validate(owner, tmp_path, dockerfile, spec_for("runs-forever"))
    assert (submission.state, submission.failed_step) == ("failed", "build")
    assert submission.message == "The build did not finish within its time limit (6 s): stopped."
    assert "started" in submission.build_log
    assert submission.finished_at is not None
    assert_nothing_left(submission)


def test_the_whole_flow_through_the_api(api_client, templates, owner, tmp_path, settings, cleanup_sandbox_ids):
    """Submitted over the API (JSON, with a context), validated by the pipeline (the task's code),
    published, then created by name@version through the API and run."""
    settings.VIBEBOX_TEMPLATE_SMOKE_TIMEOUT = 30
    context = base64.b64encode(tar_of({"hello.py": b"print('hello from the template')\n"})).decode()
    template_yaml = (
        'name: flow-tool\nversion: "1.2.0"\ndescription: a flow test\n'
        'smoke: "python3 /opt/flow/hello.py"\nports: [8000]\n'
        'start: "python3 -m http.server 8000"\n'
    )
    dockerfile = "FROM vibebox/python-3.13\nCOPY hello.py /opt/flow/hello.py\n"
    response = api_client.post(
        "/api/v1/marketplace/submissions",
        {"dockerfile": dockerfile, "templateYaml": template_yaml, "context": context},
        format="json",
    )
    assert response.status_code == 202, response.json()
    submission_id = response.json()["id"]
    assert validate_submission(submission_id) == "published"  # the Celery task's body, run here
    detail = api_client.get(f"/api/v1/marketplace/submissions/{submission_id}").json()
    tag = detail.get("image") or image_tag(Submission.objects.get(pk=submission_id))
    try:
        assert detail["state"] == "published" and "hello from the template" in detail["smokeOutput"]
        created = api_client.post("/api/v1/sandboxes", {"template": "flow-tool@1.2.0"}, format="json")
        assert created.status_code == 201, created.json()
        sandbox_id = created.json()["id"]
        cleanup_sandbox_ids.append(sandbox_id)
        assert created.json()["templateVersion"] == "1.2.0"
        ran = api_client.post(
            f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": "python3 /opt/flow/hello.py"}, format="json"
        )
        assert ran.status_code == 200 and "hello from the template" in ran.json()["stdout"], ran.json()
    finally:
        get_driver().image_remove(tag)
