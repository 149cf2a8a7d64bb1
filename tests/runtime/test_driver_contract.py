"""The runtime seam's contract (apps/sandboxes/runtime/base.py), held by every driver through the
seam alone: create, start, inspect and list by labels, commands, files, pause and resume (or the
documented refusal), stop and start with the workspace kept, remove with the workspace.

- Docker: always, against the real local engine (two sandboxes in all, a few seconds).
- Kubernetes: only where VIBEBOX_TEST_KUBECONFIG names a kubeconfig (it never ran where it was
  written: no cluster can run there). The fixture makes the namespace `vibebox-test-<instance>`
  and deletes it, with everything in it, at the end. It needs VIBEBOX_TEST_KUBERNETES_IMAGE (a
  template's image the cluster can pull, with a `sandbox` user: python-3.13's pushed to a
  registry) and VIBEBOX_TEST_KUBERNETES_SANDBOXD_IMAGE (sandboxd-relay's, pushed likewise).
  docs/kubernetes.md, "Running the contract suite against a cluster".
"""

import io
import os
import secrets
import tarfile

import pytest
from django.conf import settings as django_settings

from apps.marketplace.catalog import built_in_templates
from apps.sandboxes import sandboxd
from apps.sandboxes.runtime import ContainerSpec, ExecRequest, get_driver
from apps.sandboxes.specs import base_labels, network_name
from vibebox import exceptions as errors

PYTHON = "python-3.13"
KUBECONFIG = os.environ.get("VIBEBOX_TEST_KUBECONFIG", "")


def _kubernetes_driver():
    from kubernetes.client import CoreV1Api

    from apps.sandboxes.runtime.kubernetes import KubernetesDriver

    missing = [
        v for v in ("VIBEBOX_TEST_KUBERNETES_IMAGE", "VIBEBOX_TEST_KUBERNETES_SANDBOXD_IMAGE") if not os.environ.get(v)
    ]
    if missing:
        pytest.fail(f"VIBEBOX_TEST_KUBECONFIG is set but {', '.join(missing)} is not (docs/kubernetes.md)")
    namespace = f"vibebox-test-{django_settings.VIBEBOX_INSTANCE}".lower().replace("_", "-")
    driver = KubernetesDriver(
        namespace=namespace,
        kubeconfig=KUBECONFIG,
        context=os.environ.get("VIBEBOX_TEST_KUBERNETES_CONTEXT", ""),
        timeout=300,  # a first pull of the template's image
        secret=django_settings.SECRET_KEY,
        sandboxd_image=os.environ["VIBEBOX_TEST_KUBERNETES_SANDBOXD_IMAGE"],
        storage_class=os.environ.get("VIBEBOX_TEST_KUBERNETES_STORAGE_CLASS", ""),
        workspace_size=1024**3,
        require_pids_limit=os.environ.get("VIBEBOX_TEST_KUBERNETES_PIDS_CHECK", "1") != "0",
    )
    core = CoreV1Api(driver.api_client)
    core.create_namespace({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": namespace}})
    return driver, os.environ["VIBEBOX_TEST_KUBERNETES_IMAGE"], lambda: core.delete_namespace(namespace)


@pytest.fixture(
    scope="module",
    params=[
        "docker",
        pytest.param(
            "kubernetes",
            marks=pytest.mark.skipif(
                not KUBECONFIG, reason="no cluster: VIBEBOX_TEST_KUBECONFIG is not set (docs/kubernetes.md)"
            ),
        ),
    ],
)
def engine(request, built_images):
    """(kind, driver, image, sandboxd's volume) for the module; the Kubernetes namespace goes at the end."""
    if request.param == "docker":
        template = next(s for s in built_in_templates() if s.name == PYTHON)
        yield "docker", get_driver(), template.image, sandboxd.build(log=lambda line: None)
        return
    driver, image, cleanup = _kubernetes_driver()
    try:
        yield "kubernetes", driver, image, ""
    finally:
        cleanup()
        driver.close()


def _spec(engine, name: str) -> ContainerSpec:
    _, _, image, daemon_volume = engine
    labels = {
        **base_labels(),
        "vibebox.sandbox-id": name,
        "vibebox.owner": "",
        "vibebox.template": PYTHON,
        "vibebox.pool": "",
    }
    return ContainerSpec(
        name=name,
        image=image,
        labels=labels,
        env={"TEMPLATE_VAR": "from-the-template"},
        volume=f"{name}-workspace",
        network=network_name(),
        user="sandbox",
        daemon_volume=daemon_volume,
        memory=512 * 1024**2,
        pids_limit=django_settings.VIBEBOX_PIDS_LIMIT,
        tmpfs_size=64 * 1024**2,
    )


def _name() -> str:
    return f"vibebox-{django_settings.VIBEBOX_INSTANCE}-contract-{secrets.token_hex(4)}"


@pytest.fixture(scope="module")
def sandbox(engine):
    """(driver, name) of a started sandbox, removed with its workspace at the end."""
    _, driver, _, _ = engine
    name = _name()
    spec = _spec(engine, name)
    driver.ensure_network(spec.network, base_labels())
    try:
        driver.create(spec)
        driver.start(name)
        yield driver, name
    finally:
        driver.remove(name, volume=spec.volume)


def run(driver, name: str, script: str, **fields):
    request = ExecRequest(
        argv=("/bin/sh", "-c", script), exec_id=f"c{secrets.token_hex(6)}", **{"timeout": 30, **fields}
    )
    return driver.exec(name, request)


def test_a_started_sandbox_is_listed_by_its_labels_and_runs_sandboxd(sandbox):
    driver, name = sandbox
    info = driver.inspect(name)
    assert info.status == "running" and info.name == name and info.has_daemon
    assert info.labels["vibebox.sandbox-id"] == name
    listed = driver.list_containers({**base_labels(), "vibebox.sandbox-id": name})
    assert [(i.name, i.status) for i in listed] == [(name, "running")]
    assert driver.list_containers({**base_labels(), "vibebox.sandbox-id": name + "x"}) == []
    assert driver.container_address(name)


def test_exec_reports_exit_codes_keeps_streams_apart_caps_them_and_kills_at_the_timeout(sandbox):
    driver, name = sandbox
    result = run(driver, name, 'echo "$TEMPLATE_VAR as $(id -un)"; echo oops >&2; exit 3')
    assert result.exit_code == 3 and not result.timed_out
    assert result.stdout == b"from-the-template as sandbox\n" and result.stderr == b"oops\n"
    capped = run(driver, name, "head -c 5000 /dev/zero", output_limit=1000)
    assert capped.truncated and len(capped.stdout) == 1000 and capped.stdout_bytes == 5000
    slow = run(driver, name, "sleep 60 & sleep 60; echo never", timeout=1)
    assert slow.timed_out and b"never" not in slow.stdout
    assert b"sleep" not in run(driver, name, "ps -eo args").stdout  # the whole group was killed
    missing = driver.exec(name, ExecRequest(argv=("/no/such/program",), exec_id="c-missing", timeout=10))
    assert missing.exit_code == 127


def test_files_write_read_list_move_tar_and_delete_through_sandboxd(sandbox):
    driver, name = sandbox
    data = os.urandom(100_000)
    info = driver.file_write(name, "/workspace/d/f.bin", io.BytesIO(data), len(data), mode=0o640, timeout=30)
    assert (info.size, info.mode, info.type) == (len(data), 0o640, "file")
    header, stream = driver.file_read(name, "/workspace/d/f.bin", timeout=30)
    assert header.size == len(data) and b"".join(stream) == data
    driver.file_mkdir(name, "/workspace/e")
    driver.file_move(name, "/workspace/d/f.bin", "/workspace/e/g.bin")
    entries, truncated = driver.file_list(name, "/workspace/e")
    assert [(e.name, e.size) for e in entries] == [("g.bin", len(data))] and not truncated
    with tarfile.open(fileobj=io.BytesIO(b"".join(driver.tar_out(name, "/workspace/e", timeout=30)))) as tar:
        assert tar.extractfile("e/g.bin").read() == data
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        member = tarfile.TarInfo("t/a.txt")
        member.size = 1
        tar.addfile(member, io.BytesIO(b"A"))
    assert driver.tar_in(name, "/workspace", io.BytesIO(archive.getvalue()), len(archive.getvalue()), timeout=30) >= 1
    assert driver.file_stat(name, "/workspace/t/a.txt").size == 1
    driver.file_delete(name, "/workspace/e", recursive=True)
    with pytest.raises(errors.FileNotFound):
        driver.file_stat(name, "/workspace/e")
    with pytest.raises(errors.PathNotWritable):  # / is root's
        driver.file_write(name, "/evil", io.BytesIO(b"x"), 1, timeout=30)


def test_pause_and_resume_work_or_are_refused_as_unsupported(sandbox):
    driver, name = sandbox
    try:
        driver.pause(name)
    except errors.RuntimeUnsupported as exc:
        assert exc.details == {"feature": "pause", "runtime": "kubernetes"}
        assert run(driver, name, "true").exit_code == 0  # nothing changed
        return
    try:
        assert driver.inspect(name).status == "paused"
        with pytest.raises(errors.SandboxPaused):
            run(driver, name, "true")
    finally:
        driver.unpause(name)
    assert driver.inspect(name).status == "running" and run(driver, name, "true").exit_code == 0


def test_the_workspace_survives_stop_and_start_and_goes_with_remove(engine):
    kind, driver, _, _ = engine
    name = _name()
    spec = _spec(engine, name)
    driver.ensure_network(spec.network, base_labels())
    try:
        assert driver.create(spec).status == "created"
        driver.start(name)
        assert run(driver, name, "echo kept > /workspace/note && echo lost > /tmp/note").exit_code == 0
        assert driver.stop(name, timeout=2).status == "exited"
        assert driver.inspect(name).status == "exited"
        with pytest.raises(errors.SandboxNotRunning):
            run(driver, name, "true")
        assert driver.start(name).status == "running"
        again = run(driver, name, "cat /workspace/note; cat /tmp/note 2>/dev/null || echo gone")
        assert again.stdout == b"kept\ngone\n"  # the workspace stays, the tmpfs does not
        try:
            driver.commit(name, image=f"vibebox-test/contract:{name}", labels=base_labels())
        except errors.RuntimeUnsupported as exc:
            assert kind == "kubernetes" and exc.details["feature"] == "commit"
        else:
            driver.image_remove(f"vibebox-test/contract:{name}")
    finally:
        driver.remove(name, volume=spec.volume)
    assert driver.inspect(name) is None
    assert driver.list_containers({**base_labels(), "vibebox.sandbox-id": name}) == []
    assert not driver.volume_exists(spec.volume)
