"""Injected engine faults at each step of create and start (issue 18): the step fails for real,
the answer is a clean error with a stable code, nothing is left half-made, nothing is lost.

The engine is broken through tests/faults.py's proxy, seen only by this test process."""

import threading

import pytest
from django.conf import settings as django_settings

from apps.marketplace.catalog import built_in_templates
from apps.sandboxes import sandboxd
from apps.sandboxes.models import PooledContainer, Sandbox
from apps.sandboxes.reconcile import sandbox_reconcile
from apps.sandboxes.runtime import ContainerSpec, get_driver
from apps.sandboxes.runtime.docker import DockerDriver
from apps.sandboxes.services import pools
from tests import sessions
from tests.conftest import INSTANCE_LABEL
from tests.gitservers import FIXTURE_LABELS, GIT_NETWORK
from vibebox import exceptions as errors

# ---- the fault tool itself ----


def test_proxy_passes_through_then_refuses_resets_and_restores(engine_fault):
    driver = get_driver()
    driver.ping()
    assert "GET /_ping" in engine_fault.requests
    engine_fault.refuse()
    with pytest.raises(errors.RuntimeUnavailable):
        driver.ping()
    engine_fault.restore()
    driver.ping()
    engine_fault.reset()
    with pytest.raises(errors.RuntimeUnavailable):
        driver.ping()
    engine_fault.restore()
    driver.ping()


@pytest.mark.engine_timeout(5)
def test_proxy_hang_fires_the_driver_timeout(engine_fault, settings):
    driver = get_driver()
    driver.ping()
    engine_fault.hang()
    with pytest.raises(errors.RuntimeUnavailable):
        driver.ping()
    engine_fault.restore()
    driver.ping()


def test_proxy_fails_exactly_the_nth_matching_request(engine_fault):
    driver = get_driver()
    tripped = engine_fault.fail_on(r"^GET /_ping$", nth=2)
    driver.ping()
    assert not tripped.is_set()
    with pytest.raises(errors.RuntimeUnavailable):
        driver.ping()
    assert tripped.is_set()
    driver.ping()  # then="pass": only that one failed


# ---- helpers ----


def leftovers(docker_client) -> tuple[list[str], list[str]]:
    """This instance's sandbox containers and volumes (not pooled ones, not the git fixtures)."""
    containers = docker_client.containers.list(all=True, filters={"label": [INSTANCE_LABEL, "vibebox.pool="]})
    volumes = docker_client.volumes.list(filters={"label": [INSTANCE_LABEL, "vibebox.pool="]})
    return sorted(c.name for c in containers), sorted(v.name for v in volumes)


def run(client, sandbox_id: str, command: str) -> dict:
    response = client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": command}, format="json")
    assert response.status_code == 200, response.content
    return response.json()


@pytest.fixture
def bystander(create_sandbox, api_client, docker_client):
    """A sandbox made before the fault, with a file in its workspace: it must come through intact.
    `engine` is what this instance had on the engine then."""
    body = create_sandbox(name="bystander")
    run(api_client, body["id"], "echo kept > /workspace/kept.txt")
    body["engine"] = leftovers(docker_client)
    yield body
    assert run(api_client, body["id"], "cat /workspace/kept.txt")["stdout"] == "kept\n"


def error_of(response, status: int) -> str:
    assert response.status_code == status, response.content
    return response.json()["error"]["code"]


# ---- create, cold ----

# (With a disk limit the workspace is in the container's layer, no volume: POST /volumes/create
# is a step only without one.)
CREATE_STEPS = [
    r"^POST /containers/create\?name=sbx_",
    r"^PUT /containers/[^/]+/archive",  # sandboxd's token and container name
    r"^POST /containers/[^/]+/start$",
    r"^GET /containers/[^/]+/json$",
]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("step", CREATE_STEPS)
@pytest.mark.parametrize("when", ["before", "after"])
def test_cold_create_with_one_step_failing_leaves_nothing(
    step, when, api_client, templates, bystander, docker_client, engine_fault
):
    tripped = engine_fault.fail_on(step, when=when)
    response = api_client.post("/api/v1/sandboxes", {"template": "python-3", "name": "doomed"}, format="json")
    assert tripped.is_set(), (response.content, engine_fault.requests)
    assert error_of(response, 503) == "runtime_unavailable", engine_fault.requests
    assert list(Sandbox.objects.exclude(pk=bystander["id"]).values_list("status", flat=True)) == []
    assert leftovers(docker_client) == bystander["engine"]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("step", [CREATE_STEPS[0], r"^POST /containers/[^/]+/start$"])
def test_cold_create_with_the_engine_going_down_is_cleaned_by_reconcile(
    step, api_client, templates, bystander, docker_client, engine_fault
):
    tripped = engine_fault.fail_on(step, when="after", then="refuse")  # done, answer lost, engine gone
    response = api_client.post("/api/v1/sandboxes", {"template": "python-3", "name": "doomed"}, format="json")
    assert tripped.is_set()
    assert error_of(response, 503) == "runtime_unavailable"
    assert not Sandbox.objects.exclude(pk=bystander["id"]).exists()  # no row: the create did not happen
    engine_fault.restore()
    sandbox_reconcile()  # the container and volume left on the engine are orphans, by label
    assert leftovers(docker_client) == bystander["engine"]


@pytest.mark.engine_timeout(5)
@pytest.mark.django_db(transaction=True)
def test_cold_create_with_a_hung_engine_times_out(api_client, templates, docker_client, engine_fault):
    tripped = engine_fault.fail_on(r"^POST /containers/[^/]+/start$", then="hang")
    response = api_client.post("/api/v1/sandboxes", {"template": "python-3"}, format="json")
    assert tripped.is_set()
    assert error_of(response, 503) == "runtime_unavailable"
    assert not Sandbox.objects.exists()
    engine_fault.restore()
    sandbox_reconcile()
    assert leftovers(docker_client) == ([], [])


# ---- create, from a warm pool ----


@pytest.fixture
def warm_pool(settings, templates):
    """One ready pooled python-3 container (made before any fault)."""
    settings.VIBEBOX_POOL_ENABLED = True
    settings.VIBEBOX_POOL_SIZES = {"python-3": 1}
    settings.VIBEBOX_POOL_REFILL_AFTER_TAKE = False
    pool = pools.pool_get(templates["python-3"])
    assert pools.pool_fill(pool) == 1
    yield pool
    pools.pool_drain()


def pooled(docker_client) -> list[str]:
    """Containers with the pool's label: pooled ones, and sandboxes that took one."""
    filters = {"label": [INSTANCE_LABEL, "vibebox.pool=python-3.13"]}
    return [c.name for c in docker_client.containers.list(all=True, filters=filters)]


@pytest.mark.django_db(transaction=True)
def test_warm_create_with_a_killed_pooled_container_makes_a_working_sandbox(
    api_client, warm_pool, docker_client, cleanup_sandbox_ids
):
    (row,) = PooledContainer.objects.all()
    docker_client.containers.get(row.id).kill()  # died in the pool, before any health check saw it
    response = api_client.post("/api/v1/sandboxes", {"template": "python-3"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    cleanup_sandbox_ids.append(body["id"])
    assert body["status"] == "running" and body["warm"] is False  # made cold instead
    assert run(api_client, body["id"], "echo alive")["stdout"] == "alive\n"
    assert not PooledContainer.objects.exists()
    assert pooled(docker_client) == []  # the dead one is gone
    assert leftovers(docker_client)[0] == [body["id"]]


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("then", ["pass", "refuse"])
def test_warm_create_with_the_engine_failing_is_503_and_leaves_nothing(
    then, api_client, warm_pool, docker_client, engine_fault
):
    tripped = engine_fault.fail_on(r"^GET /containers/sbx_[^/]+/json$", then=then)
    response = api_client.post("/api/v1/sandboxes", {"template": "python-3"}, format="json")
    assert tripped.is_set(), "\n".join(engine_fault.requests)
    assert error_of(response, 503) == "runtime_unavailable"
    assert not Sandbox.objects.exists()
    engine_fault.restore()
    sandbox_reconcile()  # (with the engine gone, the taken container could not be removed at once)
    assert pooled(docker_client) == [] and leftovers(docker_client) == ([], [])


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("then", ["pass", "refuse"])
def test_pool_fill_with_the_engine_failing_leaves_nothing_half_made(
    then, settings, templates, docker_client, engine_fault
):
    settings.VIBEBOX_POOL_ENABLED = True
    settings.VIBEBOX_POOL_SIZES = {"python-3": 1}
    pool = pools.pool_get(templates["python-3"])
    try:
        tripped = engine_fault.fail_on(r"^POST /containers/sbx_[^/]+/start$", then=then)
        assert pools.pool_fill(pool) == 0
        assert tripped.is_set()
        assert not PooledContainer.objects.exists()
        engine_fault.restore()
        sandbox_reconcile()  # (with the engine gone, the created container could not be removed at once)
        assert pooled(docker_client) == []
        assert pools.pool_fill(pool) == 1  # the next fill works
    finally:
        pools.pool_drain()


# ---- create with a git clone ----


@pytest.fixture
def refusing_git_host(git, docker_client):
    """A host on the git network (`git-down`) where nothing listens: connections are refused."""
    image = next(s.image for s in built_in_templates() if s.name == "python-3.13")
    container = docker_client.containers.run(
        image,
        ["sleep", "infinity"],
        name=f"vibebox-{django_settings.VIBEBOX_INSTANCE}-git-down",
        hostname="git-down",
        detach=True,
        labels=FIXTURE_LABELS,
        network=GIT_NETWORK,
    )
    yield "http://git-down:8080/project.git"
    container.remove(force=True)


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("warm", [False, True], ids=["cold", "warm"])
def test_create_with_a_refusing_git_server_leaves_nothing(
    warm, request, refusing_git_host, api_client, templates, bystander, docker_client
):
    if warm:
        request.getfixturevalue("warm_pool")
    body = {"template": "python-3", "git": {"url": refusing_git_host}}
    response = api_client.post("/api/v1/sandboxes", body, format="json")
    assert error_of(response, 422) == "git_clone_failed"
    assert not Sandbox.objects.exclude(pk=bystander["id"]).exists()
    assert leftovers(docker_client) == bystander["engine"]
    assert pooled(docker_client) == []


@pytest.mark.django_db(transaction=True)
def test_create_with_a_refusing_git_server_and_fail_on_error_off_runs(
    refusing_git_host, api_client, templates, cleanup_sandbox_ids
):
    body = {"template": "python-3", "git": {"url": refusing_git_host, "failOnError": False}}
    response = api_client.post("/api/v1/sandboxes", body, format="json")
    assert response.status_code == 201, response.content
    cleanup_sandbox_ids.append(response.json()["id"])
    sandbox = api_client.get(f"/api/v1/sandboxes/{response.json()['id']}").json()
    assert sandbox["status"] == "running" and sandbox["statusReason"].startswith("git clone failed")


# ---- start ----


@pytest.fixture
def stopped(create_sandbox, api_client):
    """A stopped sandbox with a file in its workspace."""
    body = create_sandbox(name="sleeper")
    run(api_client, body["id"], "echo kept > /workspace/kept.txt")
    assert api_client.post(f"/api/v1/sandboxes/{body['id']}/stop").status_code == 200
    return body["id"]


def status_of(client, sandbox_id: str) -> dict:
    return client.get(f"/api/v1/sandboxes/{sandbox_id}").json()


def start_works_and_nothing_is_lost(client, sandbox_id: str) -> None:
    response = client.post(f"/api/v1/sandboxes/{sandbox_id}/start")
    assert response.status_code == 200, response.content
    assert run(client, sandbox_id, "cat /workspace/kept.txt")["stdout"] == "kept\n"


@pytest.mark.engine_timeout(5)
@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("then", ["pass", "refuse", "hang"])
def test_start_with_the_engine_failing_goes_back_to_stopped(then, api_client, stopped, engine_fault):
    tripped = engine_fault.fail_on(r"^POST /containers/sbx_[^/]+/start$", then=then)
    response = api_client.post(f"/api/v1/sandboxes/{stopped}/start")
    assert tripped.is_set()
    assert error_of(response, 503) == "runtime_unavailable"
    assert status_of(api_client, stopped)["status"] == "stopped"
    engine_fault.restore()
    start_works_and_nothing_is_lost(api_client, stopped)


@pytest.mark.django_db(transaction=True)
def test_start_done_but_its_answer_lost_is_running(api_client, stopped, docker_client, engine_fault):
    tripped = engine_fault.fail_on(r"^POST /containers/sbx_[^/]+/start$", when="after")
    response = api_client.post(f"/api/v1/sandboxes/{stopped}/start")
    assert tripped.is_set()
    # The engine started it: the row says so too, not `stopped` beside a running container.
    assert response.status_code == 200, response.content
    assert status_of(api_client, stopped)["status"] == "running"
    assert docker_client.containers.get(stopped).status == "running"
    assert run(api_client, stopped, "cat /workspace/kept.txt")["stdout"] == "kept\n"


@pytest.mark.django_db(transaction=True)
def test_start_of_a_container_removed_behind_our_back_is_error(api_client, stopped, docker_client):
    docker_client.containers.get(stopped).remove(force=True)
    response = api_client.post(f"/api/v1/sandboxes/{stopped}/start")
    assert response.status_code in (404, 409, 410, 502), response.content
    sandbox = status_of(api_client, stopped)
    assert sandbox["status"] == "error" and sandbox["statusReason"] == "container not found"
    print("start of a removed container:", response.status_code, response.json()["error"])


def _ensure_at_once(drivers: list[DockerDriver], name: str) -> list[str]:
    """Each driver ensures network `name` at the same moment; answers "ok" or the error, per driver."""
    barrier = threading.Barrier(len(drivers))
    answers: list[str] = []

    def ensure(driver: DockerDriver) -> None:
        barrier.wait()
        try:
            driver.ensure_network(name, {"vibebox.managed": "1", "vibebox.instance": django_settings.VIBEBOX_INSTANCE})
            answers.append("ok")
        except errors.ApplicationError as exc:
            answers.append(exc.message)

    threads = [threading.Thread(target=ensure, args=(driver,)) for driver in drivers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    return answers


def test_two_processes_creating_the_sandbox_network_at_once_both_get_it(docker_client):
    """The web server and the model gateway start together and both ensure the network: the
    engine refuses the second create (same name, same bridge) before it lists the first one's
    network, which the loser used to take for "network not found" (seen in about 1 round in 10).
    Each driver here is another process's (its own lock)."""
    drivers = [DockerDriver(), DockerDriver()]
    for _ in range(40):
        name = f"vibebox-{sessions.new_label('n', sessions.MAX_LABEL)}"
        try:
            assert _ensure_at_once(drivers, name) == ["ok", "ok"]
            assert [n.name for n in docker_client.networks.list(names=[name]) if n.name == name] == [name]
        finally:
            for network in docker_client.networks.list(names=[name]):
                if network.name == name:
                    drivers[0].remove_network(name)


def test_a_network_removed_behind_our_back_is_created_again_by_the_next_create(docker_client):
    """`docker network prune` while no sandbox is attached removes the sandbox network; the driver
    remembers it as ensured, so every create used to answer 502 "network … not found" until the
    process restarted. The engine notices the missing network at create or at start (version
    dependent): both are covered, a removal before the create and one between create and start."""
    driver = DockerDriver()
    name = f"vibebox-{sessions.new_label('n', sessions.MAX_LABEL)}"
    labels = {"vibebox.managed": "1", "vibebox.instance": django_settings.VIBEBOX_INSTANCE}
    image = next(s.image for s in built_in_templates() if s.name == "python-3.13")
    daemon = sandboxd.volume_for_sandboxes()
    containers = [f"{name}-1", f"{name}-2"]

    def spec(container: str) -> ContainerSpec:
        return ContainerSpec(
            name=container, image=image, labels=labels, env={}, volume=None, network=name, daemon_volume=daemon
        )

    def assert_running_on_the_network(container: str) -> None:
        network = docker_client.networks.get(name)
        assert network.attrs["Labels"] == labels
        assert network.attrs["Options"]["com.docker.network.bridge.enable_icc"] == "false"
        attrs = docker_client.containers.get(container).attrs
        assert attrs["State"]["Running"] and list(attrs["NetworkSettings"]["Networks"]) == [name]

    try:
        driver.ensure_network(name, labels)
        docker_client.networks.get(name).remove()
        driver.create(spec(containers[0]))
        assert driver.start(containers[0]).status == "running"
        assert_running_on_the_network(containers[0])

        driver.create(spec(containers[1]))
        docker_client.containers.get(containers[0]).stop(timeout=0)
        docker_client.networks.get(name).remove()
        assert driver.start(containers[1]).status == "running"
        assert_running_on_the_network(containers[1])
    finally:
        for container in containers:
            driver.remove(container)
        driver.remove_network(name)
