"""The Kubernetes driver's objects (apps/sandboxes/runtime/kubernetes.py), checked offline.

No cluster can run where this was written, so every object the driver would send (the sandbox's
Pod, a warm pool's Pod, the record Secret, the workspace's claim, the NetworkPolicies) is made by
the driver's own pure builders and validated against the Kubernetes API's schemas, strictly, for
the versions tests/deploy/test_kubernetes.py checks (its helper). The hardening is asserted against
runtime/hardening.py and the settings (the Docker driver reads the same ones), never against
copied constants. Nothing here talks to an API server: the methods Kubernetes cannot do are shown
to refuse before any call (a driver whose kubeconfig does not exist would fail otherwise). The
deploy component that gives the control plane what the driver needs (RBAC, the sandboxes'
namespace, the token) is rendered by `kubectl kustomize` and checked against the driver's lists."""

import base64
import inspect
import ipaddress
import json
import shutil
import subprocess

import pytest
import yaml
from django.conf import settings as django_settings

from apps.sandboxes import runtime, sandboxd
from apps.sandboxes.runtime import ContainerSpec, EgressRules, firewall, hardening, sandboxd_client
from apps.sandboxes.runtime import kubernetes as k
from apps.sandboxes.runtime.base import DAEMON_BINARY, DAEMON_MOUNT, DAEMON_USER_LABEL, RuntimeDriver
from tests.deploy.test_kubernetes import KUBERNETES, VERSIONS, assert_valid
from vibebox import exceptions as errors

NAMESPACE = "vibebox-sandboxes"
SANDBOXD_IMAGE = "registry.example.com/vibebox/sandboxd-relay:0123abcd"
NAME = "sbx_4fTqZ0aBcDeFgHiJkLmN"


def spec(**fields) -> ContainerSpec:
    """A sandbox's spec as apps/sandboxes/specs.py makes it: limits from the settings."""
    labels = {
        "vibebox.managed": "1",
        "vibebox.instance": django_settings.VIBEBOX_INSTANCE,
        "vibebox.sandbox-id": NAME,
        "vibebox.owner": "42",
        "vibebox.template": "python-3.13",
        "vibebox.pool": "",
    }
    values = dict(
        name=NAME,
        image="registry.example.com/vibebox/python-3.13:7f00",
        labels=labels,
        env={"LANG": "C.UTF-8", "PATH": "/usr/local/bin:/usr/bin:/bin"},
        volume=f"{NAME}-workspace",
        network=f"vibebox-{django_settings.VIBEBOX_INSTANCE}",
        daemon_volume="",
        user="sandbox",
        cpu=1.5,
        memory=django_settings.VIBEBOX_DEFAULT_MEMORY,
        pids_limit=django_settings.VIBEBOX_PIDS_LIMIT,
        tmpfs_size=django_settings.VIBEBOX_TMPFS_SIZE,
        cap_add=("NET_BIND_SERVICE",),
    )
    values.update(fields)
    return ContainerSpec(**values)


def pod_of(sandbox: ContainerSpec) -> dict:
    return k.sandbox_pod(sandbox, namespace=NAMESPACE, sandboxd_image=SANDBOXD_IMAGE)


def every_object() -> list[dict]:
    sandbox = spec()
    pod = pod_of(sandbox)
    record = k.record_secret(sandbox, namespace=NAMESPACE, secret="s3cret", pod=pod)
    record["metadata"]["uid"] = "0b7c7a8e-6d1e-4a55-9f7c-1d7e0b1f2a3c"  # as the API server answers it
    pool_spec = spec(
        name="sbx_pooled0123456789ab", labels={**sandbox.labels, "vibebox.owner": "", "vibebox.pool": "python-3.13"}
    )
    rules = [
        None,
        EgressRules(deny=("93.184.216.0/24", "2606:2800::/32")),
        EgressRules(closed=True, allow=("140.82.112.0/20",), dns=True),
        EgressRules(closed=True),
    ]
    return [
        k.owned_by(pod, record),
        k.warm_pool_pod(pool_spec, namespace=NAMESPACE, sandboxd_image=SANDBOXD_IMAGE),
        record,
        k.workspace_claim(sandbox, namespace=NAMESPACE, size=django_settings.VIBEBOX_KUBERNETES_WORKSPACE_SIZE),
        k.workspace_claim(sandbox, namespace=NAMESPACE, size=1024**3, storage_class="local-nvme"),
        k.network_policy(sandbox.network, sandbox.labels, namespace=NAMESPACE, control_namespace="vibebox"),
        *[
            k.owned_by(
                k.egress_policy(NAME, sandbox.labels, r, namespace=NAMESPACE, allow_private=("10.20.0.0/16",)), record
            )
            for r in rules
        ],
    ]


@pytest.mark.parametrize("version", VERSIONS)
def test_every_object_the_driver_sends_is_valid_kubernetes(version):
    for obj in every_object():
        assert_valid(obj, version, "kubernetes driver: ")


def test_every_label_is_a_valid_kubernetes_label_even_for_long_names():
    """The schemas do not check label syntax (the API server does): checked here, with the
    longest names VibeBox makes and longer."""
    long_name = "vibebox-" + "Abc_" * 40
    objects = [
        *every_object(),
        k.egress_policy(long_name, spec().labels, None, namespace=NAMESPACE),
        pod_of(spec(name=long_name, volume=f"{long_name}-workspace")),
    ]
    for obj in objects:
        for key, value in obj["metadata"]["labels"].items():
            assert k.valid_label(key, value), (obj["kind"], key, value)
        assert len(obj["metadata"]["name"]) <= 63


def test_strict_validation_refuses_a_misspelt_pod_field():
    pod = pod_of(spec())
    pod["spec"]["containers"][0]["securityContext"]["allowPrivilegeEscalations"] = False
    with pytest.raises(pytest.fail.Exception):
        assert_valid(pod, VERSIONS[0])


def test_the_pod_is_hardened_as_the_docker_driver_s_container():
    sandbox = spec()
    pod = pod_of(sandbox)["spec"]
    [container] = pod["containers"]
    context = container["securityContext"]
    # Who runs: sandboxd as the same user as on Docker, commands as the template's user.
    assert context["runAsUser"] == pod["securityContext"]["runAsUser"] == hardening.RUN_AS_UID
    assert context["runAsGroup"] == hardening.RUN_AS_GID
    assert container["command"][:4] == [DAEMON_BINARY, "serve", "--user", sandbox.user]
    # Capabilities: all dropped, sandboxd's and the template's added back, nothing else.
    assert context["capabilities"]["drop"] == ["ALL"] == list(hardening.DROP_CAPABILITIES)
    assert context["capabilities"]["add"] == hardening.capabilities(sandbox)
    assert set(context["capabilities"]["add"]) == set(sandboxd_client.CAPS) | {"NET_BIND_SERVICE"}
    assert context["allowPrivilegeEscalation"] is (not hardening.NO_NEW_PRIVILEGES) is False
    assert context["privileged"] is hardening.PRIVILEGED is False
    assert context["readOnlyRootFilesystem"] is hardening.READ_ONLY_ROOT
    assert context["seccompProfile"] == pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    # No service account token, no host namespaces or paths, nothing shared with other containers.
    assert pod["automountServiceAccountToken"] is False and pod["enableServiceLinks"] is False
    assert pod["shareProcessNamespace"] is False and pod["restartPolicy"] == "Never"
    for forbidden in ("hostNetwork", "hostPID", "hostIPC", "serviceAccountName"):
        assert forbidden not in pod
    assert not [v for v in pod["volumes"] if "hostPath" in v]
    # Limits from the spec (the settings): CPU and memory, requested as much as limited.
    limits = container["resources"]["limits"]
    assert limits == container["resources"]["requests"] == {"cpu": "1500m", "memory": str(sandbox.memory)}
    assert sandbox.memory == django_settings.VIBEBOX_DEFAULT_MEMORY
    # A Pod has no pids limit field: the spec's goes with it, and start checks the node's kubelet.
    assert pod_of(sandbox)["metadata"]["annotations"][k.PIDS_ANNOTATION] == str(django_settings.VIBEBOX_PIDS_LIMIT)
    # /tmp: memory, capped as the Docker driver's tmpfs.
    volumes = {v["name"]: v for v in pod["volumes"]}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    tmp = volumes[mounts[hardening.TMPFS_PATH]["name"]]["emptyDir"]
    assert tmp == {"medium": "Memory", "sizeLimit": str(django_settings.VIBEBOX_TMPFS_SIZE)}
    # sandboxd read-only from its own volume, its token root's only, the workspace the claim.
    assert mounts[DAEMON_MOUNT]["readOnly"] is True and mounts[k.SECRET_MOUNT]["readOnly"] is True
    assert volumes["token"]["secret"]["defaultMode"] == 0o400
    assert volumes["workspace"]["persistentVolumeClaim"]["claimName"] == k.object_name(sandbox.volume)
    assert mounts["/workspace"]["name"] == "workspace"
    # The init container that copies sandboxd is non-root, read-only, with no capability at all.
    [installer] = pod["initContainers"]
    assert installer["image"] == SANDBOXD_IMAGE and installer["command"][1] == DAEMON_BINARY
    assert installer["securityContext"]["runAsNonRoot"] is True
    assert installer["securityContext"]["readOnlyRootFilesystem"] is True
    assert installer["securityContext"]["capabilities"] == {"drop": ["ALL"]}


def test_runtime_class_and_disk_follow_the_spec():
    assert "runtimeClassName" not in pod_of(spec())["spec"]
    assert pod_of(spec(runtime="runsc"))["spec"]["runtimeClassName"] == "runsc"
    with pytest.raises(errors.DiskLimitUnsupported):
        pod_of(spec(disk=1024**3))
    assert "workspace" not in {v["name"] for v in pod_of(spec(volume=None))["spec"]["volumes"]}


def test_labels_identify_vibebox_objects_and_keep_every_value_exactly():
    sandbox = spec(user="1000:1000")  # not a valid label value: kept in the annotation only
    pod = pod_of(sandbox)
    labels = pod["metadata"]["labels"]
    assert {key: labels[key] for key in sandbox.labels} == sandbox.labels
    assert labels[k.OBJECT_LABEL] == pod["metadata"]["name"] == k.object_name(NAME)
    assert labels[k.ROLE_LABEL] == "sandbox" and DAEMON_USER_LABEL not in labels
    kept = json.loads(pod["metadata"]["annotations"][k.LABELS_ANNOTATION])
    assert kept == {**sandbox.labels, DAEMON_USER_LABEL: "1000:1000"}
    assert pod["metadata"]["annotations"][k.NAME_ANNOTATION] == NAME
    # Selectors use the valid labels that have a value (list_containers compares all of them after).
    selector = k.label_selector({**sandbox.labels, DAEMON_USER_LABEL: "1000:1000"}, "sandbox")
    assert "vibebox.owner=42" in selector and "vibebox.pool" not in selector and "1000:1000" not in selector
    assert selector.endswith(f"{k.ROLE_LABEL}=sandbox")
    for version in VERSIONS:
        assert_valid(pod, version)


def test_object_names_are_dns_labels_and_never_shared():
    names = [NAME, NAME.lower(), NAME.upper(), f"{NAME}-workspace", "x" * 200, "_", "Vibebox-Test-1"]
    objects = [k.object_name(name) for name in names]
    assert len(set(objects)) == len(names)
    for obj in objects:
        assert len(obj) <= 63 and k._LABEL_VALUE.match(obj) and obj == obj.lower() and obj[0].isalnum()
    assert k.object_name(NAME) == k.object_name(NAME)


def test_the_record_holds_sandboxd_s_token_and_the_pod():
    sandbox = spec()
    pod = pod_of(sandbox)
    record = k.record_secret(sandbox, namespace=NAMESPACE, secret="s3cret", pod=pod)
    data = {key: base64.b64decode(value) for key, value in record["data"].items()}
    assert data["token"].decode() == sandboxd_client.token("s3cret", NAME)
    assert data["container"].decode() == NAME
    assert json.loads(data["pod"]) == pod
    token = {v["name"]: v for v in pod["spec"]["volumes"]}["token"]["secret"]
    assert token["secretName"] == record["metadata"]["name"]
    assert {item["key"] for item in token["items"]} == {"token", "container"}  # never the Pod's manifest


def _selects(selector: dict, labels: dict) -> bool:
    return all(labels.get(key) == value for key, value in selector.get("matchLabels", {}).items())


def _blocks(policy: dict) -> dict[str, list[str]]:
    return {
        peer["ipBlock"]["cidr"]: peer["ipBlock"].get("except", [])
        for rule in policy["spec"]["egress"]
        for peer in rule["to"]
        if "ipBlock" in peer
    }


def _allows_dns(policy: dict) -> bool:
    return any(rule.get("ports") and rule["to"] == [k.DNS_PEER] for rule in policy["spec"]["egress"])


def test_the_default_egress_is_the_public_internet_and_dns_as_on_docker():
    sandbox = spec()
    pod = pod_of(sandbox)
    policy = k.egress_policy(NAME, sandbox.labels, None, namespace=NAMESPACE, allow_private=("10.20.0.0/16",))
    assert _selects(policy["spec"]["podSelector"], pod["metadata"]["labels"])
    assert not _selects(policy["spec"]["podSelector"], pod_of(spec(name="sbx_other"))["metadata"]["labels"])
    assert policy["spec"]["policyTypes"] == ["Egress"] and _allows_dns(policy)
    blocks = _blocks(policy)
    assert set(blocks["0.0.0.0/0"]) == set(firewall.PRIVATE_V4) - {"0.0.0.0/0"}
    assert set(blocks["::/0"]) == set(firewall.PRIVATE_V6)
    assert blocks["10.20.0.0/16"] == []  # VIBEBOX_EGRESS_ALLOW_PRIVATE's networks stay reachable


def test_a_sandbox_s_egress_rules_become_its_policy():
    labels = spec().labels
    denied = k.egress_policy(NAME, labels, EgressRules(deny=("93.184.216.0/24",)), namespace=NAMESPACE)
    assert "93.184.216.0/24" in _blocks(denied)["0.0.0.0/0"] and _allows_dns(denied)
    closed = k.egress_policy(
        NAME,
        labels,
        EgressRules(closed=True, allow=("140.82.112.0/20", "10.9.0.0/16", "192.168.1.0/24"), dns=False),
        namespace=NAMESPACE,
        allow_private=("192.168.0.0/16",),
    )
    # Closed: only the allowed networks, a private one only where the operator allows private ranges.
    assert set(_blocks(closed)) == {"140.82.112.0/20", "192.168.1.0/24"} and not _allows_dns(closed)
    shut = k.egress_policy(NAME, labels, EgressRules(closed=True), namespace=NAMESPACE)
    assert shut["spec"]["egress"] == []  # nothing out (but the control plane, by the namespace's policy)
    for cidr, inside in _blocks(denied).items():
        assert all(ipaddress.ip_network(e).subnet_of(ipaddress.ip_network(cidr)) for e in inside)


def test_the_namespace_policy_lets_only_the_control_plane_in():
    sandbox = spec()
    policy = k.network_policy(sandbox.network, sandbox.labels, namespace=NAMESPACE, control_namespace="vibebox")
    assert _selects(policy["spec"]["podSelector"], pod_of(sandbox)["metadata"]["labels"])
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    [ingress] = policy["spec"]["ingress"]
    [peer] = ingress["from"]
    assert peer["namespaceSelector"]["matchLabels"] == {"kubernetes.io/metadata.name": "vibebox"}
    assert peer["podSelector"]["matchLabels"] == {"app.kubernetes.io/name": "vibebox"}
    [egress] = policy["spec"]["egress"]
    [reached] = egress["to"]
    assert reached["podSelector"]["matchExpressions"][0]["values"] == ["gateway", "egress"]
    builds = k.network_policy(
        "b", sandbox.labels, namespace=NAMESPACE, control_namespace="vibebox", model_gateway=False
    )
    assert builds["spec"]["egress"] == []


def _unsupported_calls(driver) -> dict[str, object]:
    return {
        "pause": lambda: driver.pause(NAME),
        "unpause": lambda: driver.unpause(NAME),
        "rename": lambda: driver.rename(NAME, "other"),
        "commit": lambda: driver.commit(NAME, image="vibebox/snap:1", labels={}),
        "path_stat": lambda: driver.path_stat(NAME, "/workspace"),
        "get_archive": lambda: driver.get_archive(NAME, "/workspace"),
        "put_archive": lambda: driver.put_archive(NAME, "/", iter([b""])),
        "volume_from_image": lambda: driver.volume_from_image("v", image="i", path="/p", labels={}),
        "volume_export": lambda: driver.volume_export("v", "/tmp/x"),
        "volume_import": lambda: driver.volume_import("v", "/tmp/x", labels={}),
        "network_gateway": lambda: driver.network_gateway("n"),
        "network_subnets": lambda: driver.network_subnets("n"),
        "relay_ensure": lambda: driver.relay_ensure(None),
        "relay_remove": lambda: driver.relay_remove("r", "v"),
        "image_exists": lambda: driver.image_exists("t"),
        "image_size": lambda: driver.image_size("t"),
        "image_build": lambda: driver.image_build(context=".", tag="t", buildargs={}, labels={}, log=print),
        "image_remove": lambda: driver.image_remove("t"),
        "image_save": lambda: driver.image_save("t"),
        "image_load": lambda: driver.image_load(iter([])),
        "image_details": lambda: driver.image_details("t"),
        "image_setid_files": lambda: driver.image_setid_files("t"),
        "image_files": lambda: driver.image_files("t", ("/etc/passwd",)),
        "list_images": lambda: driver.list_images({}),
    }


def test_every_seam_method_is_implemented_or_refused_as_unsupported_before_any_call(tmp_path):
    driver = k.KubernetesDriver(namespace=NAMESPACE, kubeconfig=str(tmp_path / "absent"), sandboxd_image=SANDBOXD_IMAGE)
    seam = {name for name, _ in inspect.getmembers(RuntimeDriver, inspect.isfunction) if not name.startswith("_")}
    missing = sorted(name for name in seam if not callable(getattr(driver, name, None)))
    assert not missing, f"the Kubernetes driver lacks {missing}"
    calls = _unsupported_calls(driver)
    assert set(calls) <= seam
    for method, call in calls.items():
        with pytest.raises(errors.RuntimeUnsupported) as refused:
            call()
        assert refused.value.details["feature"] in k.UNSUPPORTED and refused.value.details["runtime"] == "kubernetes"
        assert refused.value.status == errors.ERROR_CODES["runtime_unsupported"] == 501, method
    # What is implemented talks to the API server: here, whose kubeconfig is absent, it is unavailable.
    with pytest.raises(errors.RuntimeUnavailable):
        driver.inspect(NAME)
    # Builds never happen on this runtime: nothing of one to sweep.
    assert driver.build_leftovers({}) == [] and driver.build_networks({}) == {}


def test_the_setting_selects_the_kubernetes_driver_and_nodes_are_refused(settings, tmp_path):
    runtime.get_driver.cache_clear()
    settings.VIBEBOX_RUNTIME_DRIVER = "kubernetes"
    settings.VIBEBOX_KUBECONFIG = str(tmp_path / "absent")
    settings.VIBEBOX_KUBERNETES_SANDBOXD_IMAGE = SANDBOXD_IMAGE
    try:
        driver = runtime.get_driver()
        assert isinstance(driver, k.KubernetesDriver) and driver.namespace == settings.VIBEBOX_KUBERNETES_NAMESPACE
        with pytest.raises(errors.RuntimeUnsupported):
            runtime.node_driver(runtime.NodeConnection(url="tcp://127.0.0.1:2376", ca=""), timeout=5)
        assert sandboxd.volume_for_sandboxes() == ""  # no Docker volume: the driver copies sandboxd from its image
    finally:
        runtime.get_driver.cache_clear()


# Pod Security Standards, "baseline" (kubernetes.io/docs/concepts/security/pod-security-standards):
# the capabilities a container may add. "restricted" allows NET_BIND_SERVICE alone, and no root:
# sandboxd (root, six capabilities) needs baseline (docs/kubernetes.md).
BASELINE_CAPABILITIES = {
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD",
    "NET_BIND_SERVICE", "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
}  # fmt: skip


def test_the_pod_passes_pod_security_baseline_with_every_allowed_capability():
    pod = pod_of(spec(cap_add=tuple(django_settings.VIBEBOX_ALLOWED_CAPABILITIES)))["spec"]
    assert not {"hostNetwork", "hostPID", "hostIPC", "hostUsers"} & set(pod)
    assert "sysctls" not in pod["securityContext"]
    assert pod["securityContext"]["seccompProfile"]["type"] != "Unconfined"
    for container in pod["containers"] + pod["initContainers"]:
        context = container["securityContext"]
        assert not context.get("privileged") and "windowsOptions" not in context and "procMount" not in context
        assert set(context["capabilities"].get("add", [])) <= BASELINE_CAPABILITIES
        assert not any(port.get("hostPort") for port in container.get("ports", []))
    assert not any("hostPath" in volume for volume in pod["volumes"])


RUNTIME_OVERLAY = KUBERNETES / "overlays" / "kubernetes-runtime"


@pytest.fixture(scope="module")
def runtime_layout() -> list[dict]:
    """What `kubectl apply -k deploy/kubernetes/overlays/kubernetes-runtime` would send, rendered
    offline by kubectl's kustomize (the component's JSON patches are kustomize's, not the test's)."""
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not installed: the component cannot be rendered")
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(RUNTIME_OVERLAY)], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    return [doc for doc in yaml.safe_load_all(rendered) if doc]


def _one(docs: list[dict], kind: str, name: str) -> dict:
    [doc] = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    return doc


def _grants(role: dict) -> dict[tuple[str, str], set[str]]:
    grants: dict[tuple[str, str], set[str]] = {}
    for rule in role["rules"]:
        for group in rule["apiGroups"]:
            for resource in rule["resources"]:
                grants.setdefault((group, resource), set()).update(rule["verbs"])
    return grants


def test_the_runtime_component_renders_valid_kubernetes(runtime_layout):
    for version in VERSIONS:
        for doc in runtime_layout:
            assert_valid(doc, version, "kubernetes-runtime: ")


def test_the_runtime_component_grants_exactly_what_the_driver_calls(runtime_layout):
    settings = _one(runtime_layout, "ConfigMap", "vibebox-settings")["data"]
    assert settings["VIBEBOX_RUNTIME_DRIVER"] == "kubernetes"
    namespace = _one(runtime_layout, "Namespace", settings["VIBEBOX_KUBERNETES_NAMESPACE"])
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "baseline"
    role = _one(runtime_layout, "Role", "vibebox-sandboxes")
    assert role["metadata"]["namespace"] == settings["VIBEBOX_KUBERNETES_NAMESPACE"]
    assert _grants(role) == k.NAMESPACE_PERMISSIONS
    assert _grants(_one(runtime_layout, "ClusterRole", "vibebox-sandbox-nodes")) == k.CLUSTER_PERMISSIONS
    account = _one(runtime_layout, "ServiceAccount", "vibebox")["metadata"]
    for binding in ("RoleBinding", "ClusterRoleBinding"):
        [bound] = [b for b in runtime_layout if b["kind"] == binding]
        [subject] = bound["subjects"]
        assert (subject["name"], subject["namespace"]) == (account["name"], account["namespace"])
    assert account["namespace"] == settings["VIBEBOX_KUBERNETES_CONTROL_NAMESPACE"]


def test_only_the_pods_that_drive_sandboxes_get_the_token(runtime_layout):
    drivers = {"web", "worker", "builds", "vibebox-setup"}
    workloads = [d for d in runtime_layout if d["kind"] in ("Deployment", "Job")]
    assert drivers <= {d["metadata"]["name"] for d in workloads}
    for doc in workloads:
        mounted = doc["spec"]["template"]["spec"]["automountServiceAccountToken"]
        assert mounted is (doc["metadata"]["name"] in drivers), doc["metadata"]["name"]
    for doc in workloads:  # no Docker host: its client certificate need not exist
        [tls] = [v for v in doc["spec"]["template"]["spec"]["volumes"] if v["name"] == "docker-tls"]
        assert tls["secret"]["optional"] is True, doc["metadata"]["name"]
    [setup] = _one(runtime_layout, "Job", "vibebox-setup")["spec"]["template"]["spec"]["containers"]
    script = setup["command"][2]
    assert "buildimages --no-build" in script and "manage.py sandboxd" not in script and "migrate" in script


def test_sandbox_pods_reach_the_gateway_and_the_egress_proxy(runtime_layout):
    settings = _one(runtime_layout, "ConfigMap", "vibebox-settings")["data"]
    policy = _one(runtime_layout, "NetworkPolicy", "sandbox-pods-ingress")["spec"]
    [rule] = policy["ingress"]
    [peer] = rule["from"]
    assert (
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        == (settings["VIBEBOX_KUBERNETES_NAMESPACE"])
    )
    # The driver's namespace policy lets sandboxes out to exactly these pods.
    sandboxes = k.network_policy(
        "n", {}, namespace="x", control_namespace=settings["VIBEBOX_KUBERNETES_CONTROL_NAMESPACE"]
    )
    [reached] = sandboxes["spec"]["egress"][0]["to"]
    assert reached["podSelector"]["matchExpressions"] == policy["podSelector"]["matchExpressions"]
