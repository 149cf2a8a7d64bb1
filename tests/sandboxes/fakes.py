"""Fake sandboxd containers (tests/sandboxes/fake_agent.py) for the tests of the server's client.

sandboxd is root PID 1 of every sandbox, so sandbox code cannot stand in for it; a test puts a
fake where the server will look for sandboxd instead: a container of the sandbox's image on the
sandbox's networks, with its labels (so the session's clean-up finds it), serving as the sandbox
user on sandboxd's port.
"""

from pathlib import Path

from django.conf import settings

from apps.sandboxes.runtime import sandboxd_client
from tests.waiting import wait_for

SOURCE = Path(__file__).with_name("fake_agent.py").read_text()


def in_container(docker_client, name: str, script: str) -> str:
    return docker_client.containers.get(name).exec_run(["sh", "-c", script], user="sandbox").output.decode()


def set_mode(docker_client, name: str, mode: str, *, target: str = "") -> None:
    """What the fake answers from its next request on (fake_agent.py's modes)."""
    in_container(docker_client, name, f"echo {mode} > /tmp/fake-mode; echo '{target}' > /tmp/fake-target")


def start(docker_client, *, like: str, name: str, container: str, mode: str, target: str = "") -> str:
    """A fake made like the sandbox container `like` (image, networks, labels), named `name`, that
    holds the token of `container` and answers in `mode`; answers its address once it listens."""
    model = docker_client.containers.get(like).attrs
    networks = list(model["NetworkSettings"]["Networks"])
    fake = docker_client.containers.create(
        model["Config"]["Image"],
        ["python3", "-c", SOURCE],
        name=name,
        labels=model["Config"]["Labels"],
        environment={
            "FAKE_TOKEN": sandboxd_client.token(settings.SECRET_KEY, container),
            "FAKE_CONTAINER": container,
        },
        user="sandbox",
        network=networks[0],
        cap_drop=["ALL"],
        security_opt=["no-new-privileges:true"],
        init=True,
    )
    for network in networks[1:]:
        docker_client.api.connect_container_to_network(fake.id, network)
    fake.start()
    wait_for(lambda: in_container(docker_client, name, "test -f /tmp/fake-ready && echo ready") == "ready\n")
    set_mode(docker_client, name, mode, target=target)
    fake.reload()
    return next(n["IPAddress"] for n in fake.attrs["NetworkSettings"]["Networks"].values() if n["IPAddress"])


def replace(docker_client, sandbox_id: str, mode: str) -> str:
    """The sandbox's container removed behind VibeBox's back and a fake of the same name started:
    the server finds the fake where it looks for the sandbox's sandboxd (once it looks again)."""
    holder = f"{sandbox_id}-model"
    docker_client.containers.get(sandbox_id).rename(holder)
    try:
        return start(docker_client, like=holder, name=sandbox_id, container=sandbox_id, mode=mode)
    finally:
        docker_client.containers.get(holder).remove(force=True)
