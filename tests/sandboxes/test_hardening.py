"""Every hardening setting, checked on a real container (DESIGN.md §3)."""

import os
import socket
import subprocess
import sys
import threading

import pytest
from django.conf import settings as django_settings

from apps.sandboxes import sandboxd
from apps.sandboxes.runtime import DAEMON_BINARY, DAEMON_MOUNT, firewall, get_driver, sandboxd_client
from tests.waiting import wait_for


@pytest.fixture
def sandbox(create_sandbox, docker_client):
    body = create_sandbox(template="node-20")
    return docker_client.containers.get(body["id"])


def test_labels_name_and_workspace_volume(sandbox, owner):
    labels = sandbox.labels
    assert labels["vibebox.managed"] == "1"
    assert labels["vibebox.instance"] == django_settings.VIBEBOX_INSTANCE
    assert labels["vibebox.sandbox-id"] == sandbox.name
    assert labels["vibebox.owner"] == str(owner.pk)
    assert labels["vibebox.template"] == "node-20"
    assert "vibebox.pool" in labels
    mounts = sorted((m["Destination"], m["Type"], m.get("Name"), m["RW"]) for m in sandbox.attrs["Mounts"])
    # sandboxd, read-only (docs/sandboxd.md)
    assert mounts[0][0] == DAEMON_MOUNT and mounts[0][1:] == ("volume", sandboxd.volume_for_sandboxes(), False)
    if get_driver().engine_info().supports_disk_limit:
        # /workspace lives in the size-limited writable layer (docs/operations.md, Disk limits)
        assert mounts[1:] == [] and sandbox.attrs["HostConfig"]["StorageOpt"]["size"]
    else:
        assert mounts[1:] == [("/workspace", "volume", f"{sandbox.name}-workspace", True)]


def test_host_config_is_hardened(sandbox):
    host = sandbox.attrs["HostConfig"]
    assert host["CapDrop"] == ["ALL"]
    # sandboxd's, as root (PID 1); the commands it runs as the sandbox user have none of them
    assert sorted(host["CapAdd"]) == sorted(sandboxd_client.CAPS)
    assert "no-new-privileges:true" in host["SecurityOpt"]
    assert not any("seccomp=unconfined" in opt or "apparmor=unconfined" in opt for opt in host["SecurityOpt"])
    assert host["Privileged"] is False
    assert host["Init"] is False  # sandboxd is PID 1 and reaps
    assert sandbox.attrs["Config"]["User"] == "0:0"
    assert sandbox.attrs["Config"]["Cmd"] == [DAEMON_BINARY, "serve", "--user", "sandbox"]
    assert host["PidsLimit"] == 512
    assert host["Memory"] > 0 and host["MemorySwap"] == host["Memory"]
    assert host["NanoCpus"] == 1_000_000_000
    assert host["Tmpfs"]["/tmp"].startswith("rw,nosuid,nodev,size=")
    assert host["LogConfig"] == {"Type": "local", "Config": {"max-file": "3", "max-size": "10m"}}
    assert host["Binds"] in (None, [])  # no host paths
    assert host["NetworkMode"] == f"vibebox-{django_settings.VIBEBOX_INSTANCE}"
    assert host["IpcMode"] == "private"
    assert host["Runtime"] == "runc"
    assert not any("docker.sock" in (m.get("Source") or "") for m in sandbox.attrs["Mounts"])


def test_process_runs_unprivileged_under_seccomp(sandbox, api_client):
    """A command (run by sandboxd, as root itself) runs as the sandbox user with no capability."""
    script = "id -u; grep -E '^(Seccomp|NoNewPrivs|CapEff):' /proc/self/status"
    body = api_client.post(f"/api/v1/sandboxes/{sandbox.name}/exec", {"command": script}, format="json").json()
    lines = body["stdout"].split("\n")
    assert lines[0] == "1000"
    status = dict(line.split(":\t") for line in lines[1:] if line)
    assert status["Seccomp"].strip() == "2"  # filter mode: Docker's default profile
    assert status["NoNewPrivs"].strip() == "1"
    assert int(status["CapEff"], 16) == 0
    assert sandbox.exec_run(["sh", "-c", "ls /var/run/docker.sock"]).exit_code != 0


def test_pids_limit_stops_a_fork_bomb(create_sandbox, docker_client):
    # 600 background processes against a limit of 512. Their output goes to /dev/null, not to the
    # pipe: else `tail` waits for the last of them to exit (30 s) before pkill can end them.
    body = create_sandbox()
    container = docker_client.containers.get(body["id"])
    bomb = "for i in $(seq 600); do sleep 30 >/dev/null 2>&1 & done 2>&1 | tail -1; pkill sleep"
    result = container.exec_run(["sh", "-c", bomb])
    assert b"fork" in result.output.lower() or b"resource temporarily unavailable" in result.output.lower()


def test_sandboxes_cannot_reach_each_other(create_sandbox, docker_client):
    server = docker_client.containers.get(create_sandbox()["id"])
    client = docker_client.containers.get(create_sandbox()["id"])
    server.exec_run(["python3", "-m", "http.server", "8000"], detach=True)
    server_ip = server.attrs["NetworkSettings"]["Networks"][f"vibebox-{django_settings.VIBEBOX_INSTANCE}"]["IPAddress"]
    probe = "import urllib.request,sys; urllib.request.urlopen(sys.argv[1], timeout=3)"
    # the server answers from inside its own container (once it has started listening)...
    wait_for(
        lambda: server.exec_run(["python3", "-c", probe, "http://127.0.0.1:8000/"]).exit_code == 0,
        what="the server in the sandbox to answer",
    )
    # ...but not to another sandbox on the same network (inter-container traffic is off)
    assert client.exec_run(["python3", "-c", probe, f"http://{server_ip}:8000/"]).exit_code != 0


def test_sandboxes_cannot_reach_the_hosts_ports(create_sandbox, docker_client):
    container = docker_client.containers.get(create_sandbox()["id"])
    network = docker_client.networks.get(f"vibebox-{django_settings.VIBEBOX_INSTANCE}")
    gateway = network.attrs["IPAM"]["Config"][0]["Gateway"]
    bridge = network.attrs["Options"]["com.docker.network.bridge.name"]
    chain = [line for line in firewall.rules(bridge) if line.startswith(f"-A {firewall.chain_name(bridge)} ")]
    assert chain[-1].endswith("-j DROP")
    # The exceptions: the model gateway's port on the gateway's own address (issue 17, item 14), and
    # the egress proxy's there too (issue 25).
    exceptions = [line for line in chain if "--dport" in line]
    assert exceptions == [
        f"-A {firewall.chain_name(bridge)} -d {gateway}/32 -p tcp -m tcp --dport {port} -j RETURN"
        for port in (django_settings.VIBEBOX_GATEWAY_PORT, django_settings.VIBEBOX_EGRESS_PROXY_PORT)
    ]

    # A listener on all host interfaces, standing in for VibeBox's own server.
    listener = socket.socket()
    listener.bind(("0.0.0.0", 0))  # noqa: S104
    listener.listen()
    port = listener.getsockname()[1]
    accepted = []
    thread = threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True)
    thread.start()
    probe = "import socket,sys; socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=3)"
    result = container.exec_run(["python3", "-c", probe, gateway, str(port)])
    listener.close()
    assert result.exit_code != 0
    assert not accepted


def test_firewall_rules_stay_in_order_when_processes_set_them_at_once(settings):
    """The web server and the model gateway both set a bridge's rules at startup."""
    bridge, gateway = "vbx-race-test", "198.51.100.1"  # a bridge that does not exist; documentation address
    workers = [threading.Thread(target=firewall.isolate_bridge, args=(bridge, gateway)) for _ in range(6)]
    try:
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        lines = firewall.rules(bridge)
        chain = [line for line in lines if line.startswith(f"-A {firewall.chain_name(bridge)} ")]
        assert (
            len(chain) == 4
            and "RELATED,ESTABLISHED" in chain[0]
            and f"-d {gateway}/32 -p tcp -m tcp --dport {settings.VIBEBOX_GATEWAY_PORT} -j RETURN" in chain[1]
            and f"-d {gateway}/32 -p tcp -m tcp --dport {settings.VIBEBOX_EGRESS_PROXY_PORT} -j RETURN" in chain[2]
        )
        assert chain[3].endswith("-j DROP")
        egress = [line for line in lines if line.startswith(f"-A {firewall.egress_chain_name(bridge)} ")]
        assert "RELATED,ESTABLISHED" in egress[0] and egress[-1].startswith(
            f"-A {firewall.egress_chain_name(bridge)} -d"
        )
        resolvers = [address for address in firewall.host_resolvers() if address.version == 4]
        assert len(egress) == 1 + 2 * len(resolvers) + len(firewall.PRIVATE_V4)
        assert len([line for line in lines if line.startswith(("-A INPUT", "-A DOCKER-USER", "-A FORWARD"))]) == 2
    finally:
        firewall.remove_bridge_rules(bridge)
    assert firewall.rules(bridge) == [] and firewall.rules(bridge, ipv6=True) == []


@pytest.mark.parametrize("caps", ["CHOWN,NET_RAW", "cap_net_admin", "ALL"])
def test_capabilities_that_forge_addresses_are_refused_at_startup(caps):
    """The egress proxy, the firewall and nodes' back links tell sandboxes apart by address: an
    operator cannot let templates add what would forge one (vibebox/settings.py)."""
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "vibebox.settings", "VIBEBOX_ALLOWED_CAPABILITIES": caps}
    done = subprocess.run(
        [sys.executable, "manage.py", "check"], cwd=django_settings.BASE_DIR, env=env, capture_output=True, text=True
    )
    assert done.returncode != 0 and "VIBEBOX_ALLOWED_CAPABILITIES may not include" in done.stderr, done.stderr[-2000:]
