"""deploy/kubernetes/: the control plane's manifests (a kustomize base and a production overlay),
validated offline. No cluster or helm can run on this machine: every document is
checked against the Kubernetes API's own schemas (the `kubernetes-validate` package, strict: an
unknown field is an error) for the oldest and newest Kubernetes versions the manifests claim, the
overlay's patches are applied by a small strategic merge below, and the layout is checked against
the Procfile, deploy/compose.yaml and the hardening rules. Where kubectl is installed (it is on
this machine, with kustomize 5.5 built in), `kubectl kustomize` renders the base and the overlay
offline and the test proves its own merge gives the same objects (docs/kubernetes.md says what was
and was not run). The checks that take `layout` run on the Helm chart's renderings too
(tests/deploy/test_helm_chart.py imports them)."""

import copy
import re
import shutil
import subprocess
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from tests.deploy.procfile import ROOT, procfile

KUBERNETES = ROOT / "deploy" / "kubernetes"
BASE = KUBERNETES / "base"
PRODUCTION = KUBERNETES / "overlays" / "production"
# The oldest Kubernetes the manifests claim (preStop's `sleep` action is beta, on by default, from
# 1.30) and the newest whose schemas kubernetes-validate bundles.
VERSIONS = ("1.30.0", "1.37.0")
WORKDIR = "/opt/vibebox"  # deploy/Dockerfile's: where the Procfile's relative .venv/bin paths resolve
SECRET_SETTINGS = {
    "VIBEBOX_SECRET_KEY",
    "DJANGO_SECRET_KEY",
    "VIBEBOX_KEY_HASH_SECRET",
    "VIBEBOX_ENCRYPTION_KEY",
    "DATABASE_URL",
    "REDIS_URL",
    "VIBEBOX_METRICS_TOKEN",
    "VIBEBOX_ANTHROPIC_API_KEY",
    "VIBEBOX_EMAIL_PASSWORD",
}
SECRET_WORDS = re.compile(r"SECRET|PASSWORD|TOKEN|_KEY$|CREDENTIAL", re.IGNORECASE)


# ---- loading: the base, and the overlay applied to it ----


def _kustomization(directory: Path) -> dict:
    return yaml.safe_load((directory / "kustomization.yaml").read_text())


def _documents(path: Path) -> list[dict]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def _key(doc: dict) -> tuple[str, str]:
    return doc["kind"], doc["metadata"]["name"]


def base_documents() -> list[dict]:
    kustomization = _kustomization(BASE)
    docs = [doc for name in kustomization["resources"] for doc in _documents(BASE / name)]
    for doc in docs:  # kustomize's `namespace:` on every namespaced object
        if doc["kind"] != "Namespace":
            doc["metadata"]["namespace"] = kustomization["namespace"]
    return docs


def _merge(base, patch):
    """A strategic merge as kustomize applies these patches: maps merge key by key; lists of
    named maps (containers, env, volumes, ports...) merge by name; other lists are replaced."""
    if isinstance(base, dict) and isinstance(patch, dict):
        merged = dict(base)
        for key, value in patch.items():
            merged[key] = _merge(base[key], value) if key in base else copy.deepcopy(value)
        return merged
    if isinstance(base, list) and isinstance(patch, list) and _named(base) and _named(patch):
        merged = [copy.deepcopy(item) for item in base]
        for item in patch:
            at = [i for i, old in enumerate(merged) if old["name"] == item["name"]]
            if at:
                merged[at[0]] = _merge(merged[at[0]], item)
            else:
                merged.append(copy.deepcopy(item))
        return merged
    return copy.deepcopy(patch)


def _named(items: list) -> bool:
    return bool(items) and all(isinstance(item, dict) and "name" in item for item in items)


def _containers(doc: dict) -> list[dict]:
    spec = doc.get("spec", {})
    if doc["kind"] == "Job":
        return spec["template"]["spec"]["containers"]
    if "template" in spec:
        return spec["template"]["spec"]["containers"]
    return []


def _pod_spec(doc: dict) -> dict:
    return doc["spec"]["template"]["spec"]


def overlay_documents() -> list[dict]:
    kustomization = _kustomization(PRODUCTION)
    assert kustomization["resources"] == ["../../base"]
    docs = {_key(doc): doc for doc in base_documents()}
    for entry in kustomization["patches"]:
        for patch in _documents(PRODUCTION / entry["path"]):
            key = _key(patch)
            assert key in docs, f"{entry['path']} patches {key}, which the base does not have"
            assert patch["apiVersion"] == docs[key]["apiVersion"], entry["path"]
            docs[key] = _merge(docs[key], patch)
    for image in kustomization.get("images", []):
        for doc in docs.values():
            for container in _containers(doc):
                name, _, _tag = container["image"].partition(":")
                if name == image["name"]:
                    container["image"] = f"{image['newName']}:{image['newTag']}"
    return list(docs.values())


LAYOUTS = {"base": base_documents, "production": overlay_documents}


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def layout(request) -> tuple[str, list[dict]]:
    return request.param, LAYOUTS[request.param]()


def _by_kind(docs: list[dict], kind: str) -> dict[str, dict]:
    return {doc["metadata"]["name"]: doc for doc in docs if doc["kind"] == kind}


def _settings(docs: list[dict]) -> dict[str, str]:
    return _by_kind(docs, "ConfigMap")["vibebox-settings"]["data"]


# ---- the files themselves ----


def test_the_kustomizations_name_every_file_and_nothing_else():
    base = _kustomization(BASE)
    listed = set(base["resources"])
    on_disk = {path.name for path in BASE.glob("*.yaml")} - {"kustomization.yaml"}
    assert listed == on_disk
    production = _kustomization(PRODUCTION)
    patches = {entry["path"] for entry in production["patches"]}
    assert patches == {path.name for path in PRODUCTION.glob("*.yaml")} - {"kustomization.yaml"}
    # Only the kinds the base declares are here (no Secret, no CustomResourceDefinition); the one
    # Helm chart is helm/vibebox (tests/deploy/test_helm_chart.py runs these checks on it too).
    assert list(KUBERNETES.rglob("Chart.yaml")) == [KUBERNETES / "helm" / "vibebox" / "Chart.yaml"]
    keys = [_key(doc) for doc in base_documents()]
    assert len(keys) == len(set(keys)), "two documents with one kind and name"


def test_strict_validation_refuses_an_unknown_field():
    """The check below would mean little if it let a misspelt field through."""
    web = _by_kind(base_documents(), "Deployment")["web"]
    kubernetes_validate.validate(web, VERSIONS[0], strict=True)
    wrong = copy.deepcopy(web)
    wrong["spec"]["template"]["spec"]["containers"][0]["readinessProbes"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(wrong, VERSIONS[0], strict=True)


def assert_valid(doc: dict, version: str, where: str = "") -> None:
    """`doc` is a valid object of Kubernetes `version`, strictly (an unknown field fails); the
    Kubernetes driver's objects are checked with it too (tests/runtime/test_kubernetes_objects.py)."""
    try:
        kubernetes_validate.validate(doc, version, strict=True)
    except kubernetes_validate.ValidationError as exc:
        path = "/".join(str(part) for part in exc.path)
        pytest.fail(f"{where}{doc['kind']}/{doc['metadata']['name']} at {path}: {exc.message} ({version})")


@pytest.mark.parametrize("version", VERSIONS)
def test_every_document_is_valid_kubernetes(layout, version):
    name, docs = layout
    for doc in docs:
        assert_valid(doc, version, f"{name}: ")


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_kubectl_kustomize_renders_what_the_test_validates(name):
    """kustomize's own rendering (no cluster needed) equals the documents the tests above check:
    the small merge here is kustomize's, and `kubectl apply -k` would send these objects."""
    kubectl = shutil.which("kubectl")
    if kubectl is None:
        pytest.skip("kubectl is not installed: the merge in this file stands in for kustomize")
    directory = {"base": BASE, "production": PRODUCTION}[name]
    rendered = subprocess.run(
        [kubectl, "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    assert rendered.returncode == 0, rendered.stderr
    theirs = {_key(doc): doc for doc in yaml.safe_load_all(rendered.stdout) if doc}
    mine = {_key(doc): doc for doc in LAYOUTS[name]()}
    assert set(theirs) == set(mine)
    for key, doc in mine.items():
        assert theirs[key] == doc, f"kustomize renders {key} differently"


# ---- the processes ----


def test_every_procfile_process_is_a_workload_running_its_command(layout):
    _, docs = layout
    deployments = _by_kind(docs, "Deployment")
    for process, command in procfile().items():
        assert process in deployments, f"no Deployment runs the Procfile's {process}"
        [container] = _containers(deployments[process])
        assert container["command"] == ["sh", "-c", command], process
        assert container["workingDir"] == WORKDIR
        assert "args" not in container
    assert set(deployments) == set(procfile()), "a Deployment that is no Procfile process"


def test_no_command_uses_kubernetes_variable_expansion(layout):
    """Kubernetes replaces $(NAME) in a container's command and args itself (and $$ with $): the
    Procfile's commands must reach the shell as they are."""
    _, docs = layout
    for doc in docs:
        for container in _containers(doc):
            for text in container["command"]:
                assert "$(" not in text and "$$" not in text, (doc["metadata"]["name"], text)


def test_the_setup_job_runs_compose_s_setup_script(layout):
    _, docs = layout
    compose = yaml.safe_load((ROOT / "deploy" / "compose.yaml").read_text())
    script = compose["services"]["setup"]["command"][2].replace("$$", "$")
    job = _by_kind(docs, "Job")["vibebox-setup"]
    [container] = _containers(job)
    assert container["command"] == ["sh", "-c", script]
    assert _pod_spec(job)["restartPolicy"] == "Never"
    for step in ("migrate", "buildimages --pooled", "sandboxd", "reconcile --startup", "warmpools --fill"):
        assert f"manage.py {step}" in script


def test_beat_is_one_pod_replaced_not_rolled(layout):
    _, docs = layout
    beat = _by_kind(docs, "Deployment")["beat"]
    assert beat["spec"]["replicas"] == 1
    assert beat["spec"]["strategy"] == {"type": "Recreate"}
    assert all(
        hpa["spec"]["scaleTargetRef"]["name"] != "beat" for hpa in _by_kind(docs, "HorizontalPodAutoscaler").values()
    )


def web_pods(docs: list[dict]) -> int:
    """The fewest web pods: the autoscaler's minimum when one targets web (then the Deployment must
    not set `replicas`: every apply or upgrade would reset the autoscaler's count to it), else the
    Deployment's replicas."""
    web = _by_kind(docs, "Deployment")["web"]
    hpas = [
        h for h in _by_kind(docs, "HorizontalPodAutoscaler").values() if h["spec"]["scaleTargetRef"]["name"] == "web"
    ]
    if hpas:
        [hpa] = hpas
        assert "replicas" not in web["spec"], "web sets replicas under an autoscaler"
        return hpa["spec"]["minReplicas"]
    return web["spec"]["replicas"]


def test_web_runs_three_pods_with_healthz_probes(layout):
    """/healthz for readiness too, not /readyz (deploy/haproxy/haproxy.cfg gives the reason: /readyz
    checks what every pod shares, so all would leave the Service at once)."""
    _, docs = layout
    web = _by_kind(docs, "Deployment")["web"]
    assert web_pods(docs) == 3
    [container] = _containers(web)
    ports = {port["name"]: port["containerPort"] for port in container["ports"]}
    env = {item["name"]: item["value"] for item in container["env"]}
    assert ports["http"] == int(env["VIBEBOX_PORT"]) and env["VIBEBOX_HOST"] == "0.0.0.0"  # noqa: S104 (the pod's own address, behind the Service)
    allowed = _settings(docs)["VIBEBOX_ALLOWED_HOSTS"].split(",")
    for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz" and get["port"] == "http", probe
        host = {h["name"]: h["value"] for h in get["httpHeaders"]}["Host"]
        assert host in allowed, f"{probe} sends Host {host}, which Django would refuse"


def test_every_named_port_exists(layout):
    """Probes and Services name container ports: a name nothing declares is accepted by the
    schema and fails only in the cluster."""
    _, docs = layout
    declared = {}
    for doc in docs:
        for container in _containers(doc):
            names = {port["name"] for port in container.get("ports", [])}
            declared[doc["metadata"]["name"]] = names
            for probe in ("startupProbe", "readinessProbe", "livenessProbe"):
                handler = container.get(probe, {})
                port = (handler.get("httpGet") or handler.get("tcpSocket") or {}).get("port")
                if isinstance(port, str):
                    assert port in names, (doc["metadata"]["name"], probe, port)
    deployments = _by_kind(docs, "Deployment")
    for name, service in _by_kind(docs, "Service").items():
        targets = [d for d in deployments.values() if _selects(service["spec"]["selector"], d)]
        assert len(targets) == 1, f"Service {name} selects {len(targets)} Deployments"
        for port in service["spec"]["ports"]:
            assert port["targetPort"] in declared[targets[0]["metadata"]["name"]], (name, port)


def _selects(selector: dict, deployment: dict) -> bool:
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    return all(labels.get(key) == value for key, value in selector.items())


def test_deployments_select_their_own_pods(layout):
    _, docs = layout
    deployments = _by_kind(docs, "Deployment")
    for name, deployment in deployments.items():
        assert _selects(deployment["spec"]["selector"]["matchLabels"], deployment), name
        others = [
            n
            for n, d in deployments.items()
            if n != name and _selects(deployment["spec"]["selector"]["matchLabels"], d)
        ]
        assert not others, f"{name}'s selector also takes {others}' pods"


def test_the_disruption_budget_and_autoscaler_are_web_s(layout):
    _, docs = layout
    web = _by_kind(docs, "Deployment")["web"]
    pdb = _by_kind(docs, "PodDisruptionBudget")["web"]
    assert _selects(pdb["spec"]["selector"]["matchLabels"], web)
    assert 0 < pdb["spec"]["minAvailable"] < web_pods(docs), "a drain could never evict a web pod"
    hpa = _by_kind(docs, "HorizontalPodAutoscaler")["web"]
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment", "name": "web"}
    assert "replicas" not in web["spec"], "the autoscaler owns web's count"
    assert hpa["spec"]["minReplicas"] > pdb["spec"]["minAvailable"]
    [container] = _containers(web)
    assert "cpu" in container["resources"]["requests"], "a CPU target needs a CPU request"


def test_the_ingress_serves_the_public_and_preview_hosts(layout):
    _, docs = layout
    settings = _settings(docs)
    ingress = _by_kind(docs, "Ingress")["vibebox"]
    public = re.fullmatch(r"https://([^/:]+)", settings["VIBEBOX_PUBLIC_URL"]).group(1)
    preview = f"*.{settings['VIBEBOX_PREVIEW_DOMAIN']}"
    rules = {rule["host"]: rule for rule in ingress["spec"]["rules"]}
    assert set(rules) == {public, preview}
    assert public in settings["VIBEBOX_ALLOWED_HOSTS"].split(",")
    web_ports = {port["name"] for port in _by_kind(docs, "Service")["web"]["spec"]["ports"]}
    for rule in rules.values():
        [path] = rule["http"]["paths"]
        assert path["path"] == "/" and path["backend"]["service"]["name"] == "web"
        assert path["backend"]["service"]["port"]["name"] in web_ports
    [tls] = ingress["spec"]["tls"]
    assert set(tls["hosts"]) == {public, preview} and tls["secretName"]
    notes = ingress["metadata"]["annotations"]
    assert int(notes["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600  # idle WebSockets
    assert notes["nginx.ingress.kubernetes.io/proxy-request-buffering"] == "off"  # streamed uploads
    assert "non_idempotent" not in notes["nginx.ingress.kubernetes.io/proxy-next-upstream"]  # no POST twice


# ---- secrets and hardening ----


def test_no_secret_is_inlined(layout):
    _, docs = layout
    assert not [doc for doc in docs if doc["kind"] == "Secret"], "Secrets are the operator's, referenced by name"
    settings = _settings(docs)
    assert not SECRET_SETTINGS & set(settings), "a secret setting in the ConfigMap"
    assert not [key for key in settings if SECRET_WORDS.search(key)], "a secret-looking setting in the ConfigMap"
    # What the example environment leaves as <placeholders> is secret: none of it in the ConfigMap.
    example = (ROOT / "deploy" / "vibebox.env.example").read_text()
    placeholders = {line.split("=", 1)[0] for line in example.splitlines() if "=<" in line}
    assert placeholders and not placeholders & set(settings)
    for doc in docs:
        for container in _containers(doc):
            for item in container.get("env", []):
                assert not SECRET_WORDS.search(item["name"]) and item["name"] not in SECRET_SETTINGS, item
            refs = [source.get("secretRef", {}).get("name") for source in container["envFrom"]]
            assert "vibebox-secrets" in refs, doc["metadata"]["name"]
    for text in (path.read_text() for path in KUBERNETES.rglob("*.yaml")):
        assert not re.search(r"-----BEGIN|postgres(ql)?://[^@\s]+:[^@\s]+@", text)


def test_every_container_is_hardened(layout):
    name, docs = layout
    namespace = _by_kind(docs, "Namespace").get("vibebox")
    # The Helm chart never makes its release namespace (docs/kubernetes.md: created and labelled first).
    if not name.startswith("helm"):
        assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
    workloads = [doc for doc in docs if doc["kind"] in ("Deployment", "Job")]
    assert workloads
    for doc in workloads:
        name = doc["metadata"]["name"]
        pod = _pod_spec(doc)
        assert pod["automountServiceAccountToken"] is False, name
        for forbidden in ("hostNetwork", "hostPID", "hostIPC"):
            assert not pod.get(forbidden), (name, forbidden)
        assert not [v for v in pod.get("volumes", []) if "hostPath" in v], f"{name} mounts a host path"
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0, name
        assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}, name
        mounts_tmp = {v["name"]: v for v in pod["volumes"]}
        for container in pod["containers"] + pod.get("initContainers", []):
            context = container["securityContext"]
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["readOnlyRootFilesystem"] is True, name
            assert context.get("privileged", False) is False, name
            assert context["capabilities"] == {"drop": ["ALL"]}, name
            assert context.get("runAsNonRoot", True) is True and context.get("runAsUser", 1) != 0, name
            for kind in ("requests", "limits"):
                assert {"cpu", "memory"} <= set(container["resources"][kind]), (name, kind)
            # A read-only root needs somewhere to write: /tmp and the metrics directory.
            mounted = {m["mountPath"]: m["name"] for m in container["volumeMounts"]}
            assert "emptyDir" in mounts_tmp[mounted["/tmp"]], name
            assert _settings(docs)["PROMETHEUS_MULTIPROC_DIR"] in mounted, name
            assert _settings(docs)["VIBEBOX_DATA_DIR"] in mounted, name
            assert container["image"] == next(iter(_containers(workloads[0])))["image"], "one image for all"


def test_the_network_policies_deny_by_default(layout):
    _, docs = layout
    policies = _by_kind(docs, "NetworkPolicy")
    deny = policies["default-deny-ingress"]["spec"]
    assert deny["podSelector"] == {} and deny["policyTypes"] == ["Ingress"] and "ingress" not in deny
    web = _by_kind(docs, "Deployment")["web"]
    assert _selects(policies["web-ingress"]["spec"]["podSelector"]["matchLabels"], web)


def test_the_overlay_pins_an_image_and_shared_storage():
    docs = overlay_documents()
    images = {c["image"] for doc in docs for c in _containers(doc)}
    assert len(images) == 1
    [image] = images
    assert not image.endswith(":latest") and "/" in image
    pvc = _by_kind(docs, "PersistentVolumeClaim")["vibebox-data"]
    assert pvc["spec"]["accessModes"] == ["ReadWriteMany"] and pvc["spec"]["storageClassName"]
    # The overlay's merge kept the base's hardening (a patch replacing a list would lose it).
    [web] = _containers(_by_kind(docs, "Deployment")["web"])
    assert web["securityContext"]["readOnlyRootFilesystem"] is True and web["readinessProbe"]
    assert web["resources"]["requests"]["cpu"] == "2"
