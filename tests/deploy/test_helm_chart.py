"""deploy/kubernetes/helm/vibebox: the Helm chart, rendered and validated offline.

There is no helm binary here, so the chart is rendered by deploy/kubernetes/helm/render: a TEST
renderer that implements helm's engine over Helm's own function library (Sprig v3) and YAML library
(sigs.k8s.io/yaml), as Debian packages them, built offline from the project's Debian base image
(once, then cached in the engine under a digest of its source, the base image and the extra CA).
It is not helm: where helm exists, `helm lint` and `helm template` are the real checks
(docs/kubernetes.md, "Helm chart").

Every rendered document is parsed as YAML (a template whose indentation breaks fails here) and
validated strictly for the oldest and newest Kubernetes the manifests claim, with the helper of
tests/deploy/test_kubernetes.py. The property checks of the kustomize layouts (hardening, probes,
processes, ports, selectors, secrets, policies) and of the kubernetes-runtime component
(tests/runtime/test_kubernetes_objects.py) are imported, not copied, so one list of checks runs on
both: pytest collects them here with this module's `layout` and `runtime_layout`. Helm names
objects `<release fullname>-<component>`; `kustomize_names` maps them back to the kustomize names
those checks use. Never applied to a cluster, and never rendered by helm itself here."""

import copy
import functools
import io
import json
import re
import shutil
import subprocess
import tarfile

import pytest
import yaml

from apps.sandboxes.runtime import get_driver
from tests.conftest import TEST_LABELS
from tests.deploy import helm_render
from tests.deploy.test_kubernetes import (  # noqa: F401 (the shared checks: collected here with this module's `layout`)
    KUBERNETES,
    VERSIONS,
    _by_kind,
    _containers,
    assert_valid,
    overlay_documents,
    test_beat_is_one_pod_replaced_not_rolled,
    test_deployments_select_their_own_pods,
    test_every_container_is_hardened,
    test_every_document_is_valid_kubernetes,
    test_every_named_port_exists,
    test_every_procfile_process_is_a_workload_running_its_command,
    test_no_command_uses_kubernetes_variable_expansion,
    test_no_secret_is_inlined,
    test_the_disruption_budget_and_autoscaler_are_web_s,
    test_the_ingress_serves_the_public_and_preview_hosts,
    test_the_network_policies_deny_by_default,
    test_the_setup_job_runs_compose_s_setup_script,
    test_web_runs_three_pods_with_healthz_probes,
)
from tests.runtime.test_kubernetes_objects import (  # noqa: F401 (the component's checks, with `runtime_layout`)
    RUNTIME_OVERLAY,
    test_only_the_pods_that_drive_sandboxes_get_the_token,
    test_sandbox_pods_reach_the_gateway_and_the_egress_proxy,
    test_the_runtime_component_grants_exactly_what_the_driver_calls,
    test_the_runtime_component_renders_valid_kubernetes,
)

HELM = KUBERNETES / "helm"
CHART = HELM / "vibebox"
# The kustomize name of each object the chart names `<fullname><suffix>`.
KUSTOMIZE_NAMES = {
    "": "vibebox",
    "-settings": "vibebox-settings",
    "-data": "vibebox-data",
    "-setup": "vibebox-setup",
    "-setup-settings": "vibebox-setup-settings",
    "-sandboxes": "vibebox-sandboxes",
    "-sandbox-nodes": "vibebox-sandbox-nodes",
    **{
        f"-{name}": name
        for name in (
            *("web", "worker", "builds", "webhooks", "beat", "gateway", "egress"),
            *("default-deny-ingress", "web-ingress", "sandbox-services-ingress", "sandbox-pods-ingress"),
        )
    },
}
# Keys only Helm's objects carry; and any key under helm.sh/ (the chart label, hook and
# resource-policy annotations).
HELM_ONLY_LABELS = {
    "app.kubernetes.io/instance",
    "app.kubernetes.io/version",
    "app.kubernetes.io/managed-by",
    "checksum/settings",
}


# ---- the renderer ----


class RenderError(Exception):
    pass


@pytest.fixture(scope="session")
def renderer() -> str:
    """The renderer's image (tests/deploy/helm_render.py): nothing to do when `make test` built it."""
    lines: list[str] = []
    try:
        return helm_render.build(log=lines.append)
    except Exception as exc:
        pytest.fail(f"the chart's test renderer did not build: {exc}\n" + "\n".join(lines))


def render_text(
    image: str, values: dict | None = None, *, name: str = "vibebox", namespace: str = "vibebox", sets: tuple = ()
) -> tuple[str, str]:
    """`helm template <name> CHART -n <namespace> -f <values> [--set ...]` by the test renderer (`sets`:
    each a --set argument, or "--set-string <argument>"): its stdout
    (the manifests) and stderr (NOTES.txt); RenderError with its message when the chart fails to
    render. Each distinct input is rendered once per session."""
    return _render(image, json.dumps(values or {}, sort_keys=True), name, namespace, sets)


@functools.cache
def _render(image: str, values: str, name: str, namespace: str, sets: tuple) -> tuple[str, str]:
    """The chart and the values go into the renderer's container by the engine's API (no mount)."""
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w") as tar:
        tar.add(CHART, arcname="in/chart/vibebox")
        data = values.encode()  # JSON is YAML
        info = tarfile.TarInfo("in/values.yaml")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    args = ["-name", name, "-namespace", namespace, "-f", "/in/values.yaml", "-notes"]
    # An item "--set-string a=b" is passed as it is; any other item is a --set.
    args += [item.replace(" ", "=", 1) if item.startswith("--set-string ") else f"--set={item}" for item in sets]
    args += ["/in/chart/vibebox"]
    container = get_driver().client.containers.create(image, args, labels=TEST_LABELS, network_disabled=True)
    try:
        container.put_archive("/", archive.getvalue())
        container.start()
        status = container.wait(timeout=60)["StatusCode"]
        out = container.logs(stdout=True, stderr=False).decode()
        err = container.logs(stdout=False, stderr=True).decode()
    finally:
        container.remove(force=True)
    if status != 0:
        raise RenderError(err.strip())
    return out, err


def render(image: str, values: dict | None = None, **kwargs) -> list[dict]:
    out, _ = render_text(image, values, **kwargs)
    return [doc for doc in yaml.safe_load_all(out) if doc]


def fullname(release: str, values: dict | None = None) -> str:
    """values.yaml's helper vibebox.fullname, for the names below."""
    values = values or {}
    if values.get("fullnameOverride"):
        return values["fullnameOverride"]
    name = values.get("nameOverride") or "vibebox"
    return release if name in release else f"{release}-{name}"


def kustomize_names(docs: list[dict], full: str) -> list[dict]:
    """The documents with every string that is `<fullname><suffix>` (names, references) replaced by
    the kustomize name KUSTOMIZE_NAMES gives it: what the shared checks look objects up by."""
    names = {full + suffix: name for suffix, name in KUSTOMIZE_NAMES.items()}

    def walk(value):
        if isinstance(value, dict):
            return {key: walk(item) for key, item in value.items()}
        if isinstance(value, list):
            return [walk(item) for item in value]
        return names.get(value, value) if isinstance(value, str) else value

    return [walk(doc) for doc in docs]


# Two renderings for the shared checks: the defaults (release vibebox), and another release name.
LAYOUTS = {
    "helm": ("vibebox", {}),
    "helm-release-edge": ("edge", {}),
}


@pytest.fixture(scope="module", params=sorted(LAYOUTS))
def layout(request, renderer) -> tuple[str, list[dict]]:
    release, values = LAYOUTS[request.param]
    return request.param, kustomize_names(render(renderer, values, name=release), fullname(release, values))


RUNTIME_VALUES = {"runtime": {"kubernetes": {"enabled": True}}}


@pytest.fixture(scope="module")
def runtime_layout(renderer) -> list[dict]:
    return kustomize_names(render(renderer, RUNTIME_VALUES), "vibebox")


# ---- the chart is the kustomize production overlay (and the component) ----


SETUP_HOOK = {
    "helm.sh/hook": "post-install,pre-upgrade",
    "helm.sh/hook-delete-policy": "before-hook-creation",
}


def _normalized(docs: list[dict], full: str) -> dict[tuple[str, str], dict]:
    """Documents without what only Helm adds (its labels, the settings' checksum annotation, the
    hook and resource-policy annotations), keyed by kind and kustomize name; the settings that name
    the web Service by its name. The setup hook's copy of the settings is set aside once shown to be
    the release's settings, and the Job's reference to it is mapped back to vibebox-settings."""

    def strip(value):
        if isinstance(value, dict):
            out = {
                key: strip(item)
                for key, item in value.items()
                if key not in HELM_ONLY_LABELS and not key.startswith("helm.sh/")
            }
            return {key: item for key, item in out.items() if not (key == "annotations" and item == {})}
        if isinstance(value, list):
            return [strip(item) for item in value]
        return value

    keyed = {(doc["kind"], doc["metadata"]["name"]): strip(doc) for doc in kustomize_names(docs, full)}
    hook_settings = keyed.pop(("ConfigMap", "vibebox-setup-settings"))
    assert hook_settings["data"] == keyed[("ConfigMap", "vibebox-settings")]["data"]
    [container] = _containers(keyed[("Job", "vibebox-setup")])
    for source in container["envFrom"]:
        if source.get("configMapRef", {}).get("name") == "vibebox-setup-settings":
            source["configMapRef"]["name"] = "vibebox-settings"
    settings = keyed.get(("ConfigMap", "vibebox-settings"), {}).get("data", {})
    if settings:
        assert settings["VIBEBOX_MCP_API_URL"] == f"http://{full}-web"
        assert settings["VIBEBOX_ALLOWED_HOSTS"].endswith(f",localhost,{full}-web")
        settings["VIBEBOX_MCP_API_URL"] = "http://web"
        settings["VIBEBOX_ALLOWED_HOSTS"] = settings["VIBEBOX_ALLOWED_HOSTS"].replace(f",{full}-web", ",web")
    return keyed


def _kustomize_side(docs: list[dict]) -> dict[tuple[str, str], dict]:
    """kustomize's objects keyed as _normalized's, less what the chart leaves out on purpose: the
    setup Job's ttlSecondsAfterFinished (the chart's Job is a hook, kept until the next release's)
    and the namespace `vibebox` (helm's release namespace is made before the release: the chart
    never makes it)."""
    keyed = {(doc["kind"], doc["metadata"]["name"]): copy.deepcopy(doc) for doc in docs}
    del keyed[("Job", "vibebox-setup")]["spec"]["ttlSecondsAfterFinished"]
    del keyed[("Namespace", "vibebox")]
    return keyed


def _assert_same_objects(helm: dict, kustomize: dict) -> None:
    assert set(helm) == set(kustomize)
    for key, doc in kustomize.items():
        assert helm[key] == doc, f"the chart renders {key} differently from kustomize"


def test_the_default_values_render_the_production_overlay_s_objects(renderer):
    """Field for field, the chart with its defaults is the kustomize production overlay
    (tests/deploy/test_kubernetes.py proves that overlay is what `kubectl kustomize` renders), less
    Helm's labels and what _kustomize_side takes out (the release's namespace exists before helm
    installs into it), whatever the release's name."""
    helm = _normalized(render(renderer, name="edge"), "edge-vibebox")
    _assert_same_objects(helm, _kustomize_side(overlay_documents()))


def test_runtime_kubernetes_renders_the_kubernetes_runtime_overlay_s_objects(renderer):
    if not shutil.which("kubectl"):
        pytest.skip("kubectl is not installed: the kubernetes-runtime overlay cannot be rendered")
    rendered = subprocess.run(
        ["kubectl", "kustomize", str(RUNTIME_OVERLAY)], check=True, capture_output=True, text=True, timeout=60
    ).stdout
    rendered = [doc for doc in yaml.safe_load_all(rendered) if doc]
    helm = _normalized(render(renderer, RUNTIME_VALUES), "vibebox")
    _assert_same_objects(helm, _kustomize_side(rendered))


@pytest.mark.parametrize("values", [{}, RUNTIME_VALUES], ids=["docker", "kubernetes-runtime"])
def test_the_setup_job_is_a_hook_run_before_the_deployments_roll(renderer, values):
    """A Job's pod template is immutable and every release changes it (image, checksum, chart
    label): as a hook, helm deletes the previous Job and makes a new one each release, before an
    upgrade's Deployments roll (pre-upgrade) and after a first install's objects (post-install:
    the ServiceAccount, the data claim and the RBAC it needs are release objects, not hooks). Its
    settings are a hook copy made just before it (lower weight): at pre-upgrade the release's
    ConfigMap still holds the previous release's settings."""
    docs = render(renderer, values)
    job = _by_kind(docs, "Job")["vibebox-setup"]
    annotations = job["metadata"]["annotations"]
    assert {key: annotations[key] for key in SETUP_HOOK} == SETUP_HOOK
    assert "ttlSecondsAfterFinished" not in job["spec"], "kept for its logs until the next release's"
    [container] = _containers(job)
    [source] = [s["configMapRef"]["name"] for s in container["envFrom"] if "configMapRef" in s]
    assert source == "vibebox-setup-settings"
    configmaps = _by_kind(docs, "ConfigMap")
    copy_annotations = configmaps[source]["metadata"]["annotations"]
    assert {key: copy_annotations[key] for key in SETUP_HOOK} == SETUP_HOOK
    assert int(copy_annotations["helm.sh/hook-weight"]) < int(annotations["helm.sh/hook-weight"])
    assert configmaps[source]["data"] == configmaps["vibebox-settings"]["data"]
    # Everything else is a release object (the Job needs the ServiceAccount, the claim, the RBAC).
    hooks = [doc["metadata"]["name"] for doc in docs if "helm.sh/hook" in doc["metadata"].get("annotations", {})]
    assert sorted(hooks) == ["vibebox-setup", "vibebox-setup-settings"]
    pod = job["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] in _by_kind(docs, "ServiceAccount")
    [data] = [v for v in pod["volumes"] if v["name"] == "data"]
    assert data["persistentVolumeClaim"]["claimName"] in _by_kind(docs, "PersistentVolumeClaim")


def test_the_chart_never_makes_its_release_namespace(renderer):
    """Helm stores the release in its namespace before making anything: a Namespace object of the
    release would clash with --create-namespace and be deleted (with the operator's Secrets) by
    helm uninstall. The only Namespace is the sandboxes' (with the kubernetes runtime). The old
    `namespace.create` value is gone: setting it changes nothing."""
    for values in ({}, RUNTIME_VALUES, {"namespace": {"create": True}}):
        docs = render(renderer, values, namespace="vb-prod")
        namespaces = [doc["metadata"]["name"] for doc in docs if doc["kind"] == "Namespace"]
        assert namespaces == (["vibebox-sandboxes"] if values is RUNTIME_VALUES else [])
        assert {doc["metadata"].get("namespace", "vb-prod") for doc in docs} <= {"vb-prod", "vibebox-sandboxes"}
    assert not (CHART / "templates" / "namespace.yaml").exists()


def test_uninstall_keeps_the_data_and_the_sandboxes(renderer):
    """helm uninstall deletes a release's objects unless helm.sh/resource-policy is keep: the data
    claim (VIBEBOX_DATA_DIR) and the sandboxes' namespace (every sandbox) are kept."""
    docs = render(renderer, RUNTIME_VALUES)
    kept = {
        (doc["kind"], doc["metadata"]["name"])
        for doc in docs
        if doc["metadata"].get("annotations", {}).get("helm.sh/resource-policy") == "keep"
    }
    assert kept == {("PersistentVolumeClaim", "vibebox-data"), ("Namespace", "vibebox-sandboxes")}


# ---- other values ----

VALUE_SETS = {
    "service-port": {"web": {"service": {"port": 8080}}},
    "single-web": {"web": {"autoscaling": {"enabled": False}, "replicaCount": 1}},
    "runtime-service-account": {**RUNTIME_VALUES, "serviceAccount": {"create": False, "name": "vibebox-driver"}},
    "ingress-tls": {
        "ingress": {
            "className": "nginx-internal",
            "tls": [{"secretName": "api-tls", "hosts": ["eu-1.vibebox.example.com"]}, {"secretName": "preview-tls"}],
        }
    },
    "existing-secret": {"existingSecret": "prod-vibebox", "dockerTLS": {"existingSecret": "prod-docker-client"}},
    "autoscaling-off": {
        "web": {"autoscaling": {"enabled": False}, "replicaCount": 5, "podDisruptionBudget": {"enabled": False}}
    },
    "scheduling": {
        "fullnameOverride": "vb",
        "image": {"repository": "registry.internal/vibebox", "tag": "2027.1.0", "pullPolicy": "Always"},
        "imagePullSecrets": [{"name": "registry"}],
        "nodeSelector": {"kubernetes.io/arch": "amd64"},
        "tolerations": [{"key": "dedicated", "operator": "Equal", "value": "vibebox", "effect": "NoSchedule"}],
        "affinity": {
            "nodeAffinity": {
                "requiredDuringSchedulingIgnoredDuringExecution": {
                    "nodeSelectorTerms": [{"matchExpressions": [{"key": "pool", "operator": "In", "values": ["cp"]}]}]
                }
            }
        },
        "persistence": {"existingClaim": "shared-data"},
        "ingress": {"enabled": False},
        "networkPolicy": {"enabled": False},
        "podAnnotations": {"example.com/team": "platform"},
    },
}


@pytest.fixture(scope="module")
def value_sets(renderer) -> dict[str, list[dict]]:
    return {name: render(renderer, values) for name, values in VALUE_SETS.items()}


@pytest.mark.parametrize("version", VERSIONS)
def test_every_value_set_renders_valid_kubernetes(value_sets, version):
    for name, docs in value_sets.items():
        assert docs
        for doc in docs:
            assert_valid(doc, version, f"helm {name}: ")


def _workloads(docs: list[dict]) -> list[dict]:
    return [doc for doc in docs if doc["kind"] in ("Deployment", "Job")]


def test_ingress_tls_values(value_sets):
    [ingress] = [doc for doc in value_sets["ingress-tls"] if doc["kind"] == "Ingress"]
    assert ingress["spec"]["ingressClassName"] == "nginx-internal"
    hosts = [rule["host"] for rule in ingress["spec"]["rules"]]
    assert hosts == ["eu-1.vibebox.example.com", "*.preview.eu-1.example.com"]
    assert ingress["spec"]["tls"] == [
        {"secretName": "api-tls", "hosts": ["eu-1.vibebox.example.com"]},
        {"secretName": "preview-tls", "hosts": hosts},  # no hosts: every host of the rules
    ]


def test_existing_secret_values(value_sets):
    docs = value_sets["existing-secret"]
    assert not [doc for doc in docs if doc["kind"] == "Secret"]
    for doc in _workloads(docs):
        [container] = _containers(doc)
        assert [source.get("secretRef", {}).get("name") for source in container["envFrom"]][1] == "prod-vibebox"
        [tls] = [v for v in doc["spec"]["template"]["spec"]["volumes"] if v["name"] == "docker-tls"]
        assert tls["secret"]["secretName"] == "prod-docker-client"


def test_autoscaling_off_values(value_sets):
    docs = value_sets["autoscaling-off"]
    assert not [doc for doc in docs if doc["kind"] in ("HorizontalPodAutoscaler", "PodDisruptionBudget")]
    assert _by_kind(docs, "Deployment")["vibebox-web"]["spec"]["replicas"] == 5


def test_the_mcp_api_url_follows_the_web_service_s_port(value_sets):
    docs = value_sets["service-port"]
    [port] = _by_kind(docs, "Service")["vibebox-web"]["spec"]["ports"]
    assert port["port"] == 8080
    assert _by_kind(docs, "ConfigMap")["vibebox-settings"]["data"]["VIBEBOX_MCP_API_URL"] == "http://vibebox-web:8080"


def test_the_disruption_budget_is_rendered_only_when_it_can_be_met(renderer, value_sets):
    """minAvailable 2 over one web pod would block every node drain: no budget then. It is there
    when web's fewest pods (the autoscaler's minimum, or replicaCount) exceed minAvailable."""
    single = value_sets["single-web"]
    assert not _by_kind(single, "PodDisruptionBudget")
    assert _by_kind(single, "Deployment")["vibebox-web"]["spec"]["replicas"] == 1
    cases = {
        (False, 3, 3): True,  # (autoscaling, replicaCount, minReplicas): budget?
        (False, 2, 3): False,
        (True, 1, 3): True,
        (True, 5, 2): False,
    }
    for (autoscaling, replicas, minimum), expected in cases.items():
        web = {"autoscaling": {"enabled": autoscaling, "minReplicas": minimum}, "replicaCount": replicas}
        docs = render(renderer, {"web": web})
        budgets = _by_kind(docs, "PodDisruptionBudget")
        assert bool(budgets) is expected, (autoscaling, replicas, minimum)
        if budgets:
            assert budgets["vibebox-web"]["spec"]["minAvailable"] == 2
            for doc in budgets.values():
                assert_valid(doc, VERSIONS[0])


def test_the_docker_client_certificate_is_optional_with_the_kubernetes_runtime(renderer):
    """No Docker host with the kubernetes runtime: its pods start without the Secret."""
    for values, optional in (({}, None), (RUNTIME_VALUES, True)):
        for doc in _workloads(render(renderer, values)):
            [tls] = [v for v in doc["spec"]["template"]["spec"]["volumes"] if v["name"] == "docker-tls"]
            assert tls["secret"].get("optional") is optional, doc["metadata"]["name"]


def test_scheduling_image_and_naming_values(value_sets):
    docs = value_sets["scheduling"]
    values = VALUE_SETS["scheduling"]
    assert {doc["metadata"]["name"] for doc in docs if doc["kind"] == "Deployment"} == {
        f"vb-{name}" for name in ("web", "worker", "builds", "webhooks", "beat", "gateway", "egress")
    }
    kinds = {doc["kind"] for doc in docs}
    assert not kinds & {"Ingress", "NetworkPolicy", "PersistentVolumeClaim"}
    for doc in _workloads(docs):
        pod = doc["spec"]["template"]["spec"]
        assert pod["nodeSelector"] == values["nodeSelector"] and pod["tolerations"] == values["tolerations"]
        assert pod["affinity"] == values["affinity"] and pod["imagePullSecrets"] == [{"name": "registry"}]
        [container] = pod["containers"]
        assert container["image"] == "registry.internal/vibebox:2027.1.0" and container["imagePullPolicy"] == "Always"
        [data] = [v for v in pod["volumes"] if v["name"] == "data"]
        assert data["persistentVolumeClaim"]["claimName"] == "shared-data"
        assert doc["spec"]["template"]["metadata"]["annotations"]["example.com/team"] == "platform"
        settings = "vb-setup-settings" if doc["kind"] == "Job" else "vb-settings"
        assert [s["configMapRef"]["name"] for s in container["envFrom"] if "configMapRef" in s] == [settings]


def test_set_overrides_values_with_typed_scalars(renderer):
    """`--set` wins over -f, with helm's strvals typing of scalars (true/false/null in any case,
    integers not starting with 0; 0755 stays a string), commas between assignments, backslash
    escapes in keys; `--set-string` keeps a string."""
    docs = render(
        renderer,
        VALUE_SETS["existing-secret"],
        sets=(
            "web.autoscaling.enabled=FALSE,web.replicaCount=4",
            "existingSecret=from-set",
            "image.tag=0755",
            r"podAnnotations.example\.com/team=platform\,infra",
            "--set-string settings.VIBEBOX_WEB_WORKERS=8",
        ),
    )
    assert not [doc for doc in docs if doc["kind"] == "HorizontalPodAutoscaler"]
    web = _by_kind(docs, "Deployment")["vibebox-web"]
    assert web["spec"]["replicas"] == 4
    [container] = _containers(web)
    assert {"secretRef": {"name": "from-set"}} in container["envFrom"]
    assert container["image"].endswith(":0755")
    assert web["spec"]["template"]["metadata"]["annotations"]["example.com/team"] == "platform,infra"
    assert _by_kind(docs, "ConfigMap")["vibebox-settings"]["data"]["VIBEBOX_WEB_WORKERS"] == "8"
    # What the test renderer does not implement fails rather than differ from helm.
    for unsupported in ("ingress.tls[0].secretName=x", "imagePullSecrets={a,b}"):
        with pytest.raises(RenderError, match="not implemented by the test renderer"):
            render(renderer, sets=(unsupported,))


def test_a_settings_change_rolls_the_pods(renderer):
    """checksum/settings: a changed ConfigMap changes every pod template (envFrom is read at start)."""

    def checksums(docs):
        return {doc["metadata"]["annotations"]["checksum/settings"] for doc in _workloads_templates(docs)}

    default = checksums(render(renderer))
    changed = checksums(render(renderer, {"settings": {"VIBEBOX_WEB_WORKERS": "8"}}))
    assert len(default) == 1 and len(changed) == 1 and default != changed


def _workloads_templates(docs: list[dict]) -> list[dict]:
    return [doc["spec"]["template"] for doc in _workloads(docs)]


# ---- failures: clear, and caught ----


def test_a_missing_required_value_fails_with_its_message(renderer):
    with pytest.raises(RenderError, match=r"existingSecret: name the Secret holding VIBEBOX_SECRET_KEY"):
        render(renderer, {"existingSecret": ""})


def test_a_secret_in_the_settings_fails_the_render(renderer):
    with pytest.raises(RenderError, match=r"settings\.DATABASE_URL looks secret"):
        render(renderer, {"settings": {"DATABASE_URL": "postgres://vibebox@db/vibebox"}})


def test_the_runtime_s_rbac_is_never_bound_to_the_default_service_account(renderer):
    """serviceAccount.create false with the kubernetes runtime needs a named ServiceAccount: the
    namespace's `default` would get nodes/proxy (exec in any Pod) for every pod using it."""
    unnamed = {**RUNTIME_VALUES, "serviceAccount": {"create": False}}
    with pytest.raises(RenderError, match=r"serviceAccount\.name: with serviceAccount\.create false"):
        render(renderer, unnamed)
    named = render(renderer, VALUE_SETS["runtime-service-account"])
    assert not [doc for doc in named if doc["kind"] == "ServiceAccount"]
    for binding in ("RoleBinding", "ClusterRoleBinding"):
        [bound] = [doc for doc in named if doc["kind"] == binding]
        assert bound["subjects"] == [{"kind": "ServiceAccount", "name": "vibebox-driver", "namespace": "vibebox"}]
    for doc in _workloads(named):
        assert doc["spec"]["template"]["spec"]["serviceAccountName"] == "vibebox-driver"
    # Without the runtime nothing is bound: the default ServiceAccount (no token mounted) is fine.
    plain = render(renderer, {"serviceAccount": {"create": False}})
    assert {doc["spec"]["template"]["spec"]["serviceAccountName"] for doc in _workloads(plain)} == {"default"}


def _selects_pod(selector: dict, labels: dict) -> bool:
    """A label selector (matchLabels and `In` matchExpressions) against a pod's labels."""
    if any(labels.get(key) != value for key, value in selector.get("matchLabels", {}).items()):
        return False
    for expression in selector.get("matchExpressions", []):
        assert expression["operator"] == "In", expression
        if labels.get(expression["key"]) not in expression["values"]:
            return False
    return True


def test_two_releases_in_one_namespace_keep_apart(renderer):
    """Two releases with the kubernetes runtime in one namespace: each one's policies select its own
    pods only (by app.kubernetes.io/instance), and each has its own sandboxes' namespace, which its
    settings, RBAC and policies name."""
    releases = {
        "blue": render(renderer, RUNTIME_VALUES, name="blue"),
        "green": render(
            renderer, {"runtime": {"kubernetes": {"enabled": True, "namespace": "green-sandboxes"}}}, name="green"
        ),
    }
    pods = {
        release: {doc["metadata"]["name"]: doc["spec"]["template"]["metadata"]["labels"] for doc in _workloads(docs)}
        for release, docs in releases.items()
    }
    for release, docs in releases.items():
        for doc in docs:
            assert_valid(doc, VERSIONS[0], f"helm {release}: ")
        for policy in _by_kind(docs, "NetworkPolicy").values():
            selector = policy["spec"]["podSelector"]
            if not selector:
                continue  # default-deny-ingress: every pod of the namespace, denying only
            for other, labels in pods.items():
                chosen = {name for name, pod in labels.items() if _selects_pod(selector, pod)}
                assert chosen if other == release else not chosen, (policy["metadata"]["name"], other, chosen)
    namespaces = {}
    for release, docs in releases.items():
        [namespace] = [doc["metadata"]["name"] for doc in docs if doc["kind"] == "Namespace"]
        namespaces[release] = namespace
        settings = _by_kind(docs, "ConfigMap")[f"{release}-vibebox-settings"]["data"]
        assert settings["VIBEBOX_KUBERNETES_NAMESPACE"] == namespace
        assert _by_kind(docs, "Role")[f"{release}-vibebox-sandboxes"]["metadata"]["namespace"] == namespace
        [rule] = _by_kind(docs, "NetworkPolicy")[f"{release}-vibebox-sandbox-pods-ingress"]["spec"]["ingress"]
        assert rule["from"][0]["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"] == namespace
    assert namespaces == {"blue": "vibebox-sandboxes", "green": "green-sandboxes"}


def test_name_override_with_the_runtime_fails(renderer):
    """The driver's sandbox policies let in the control plane by app.kubernetes.io/name: vibebox."""
    with pytest.raises(RenderError, match=r"nameOverride: keep it empty with runtime\.kubernetes\.enabled"):
        render(renderer, {**RUNTIME_VALUES, "nameOverride": "sandboxes-cp"})
    assert render(renderer, {"nameOverride": "cp"})  # fine without the runtime


@pytest.mark.parametrize(
    ("value", "read", "quoted"),
    [(5368709120, "5.36870912e+09", "5368709120"), (True, "true", "true"), (0.5, "0.5", "0.5")],
    ids=["big", "bool", "fraction"],
)
def test_an_unquoted_setting_fails_the_render(renderer, value, read, quoted):
    """helm reads an unquoted number in values as a float64 (toString gives 5.36870912e+09, which
    VibeBox would not parse): every setting must be a string, and the message names the key and
    the quoted value to write."""
    message = f'settings.VIBEBOX_MAX_DISK is {read}, not a string: quote it (VIBEBOX_MAX_DISK: "{quoted}")'
    with pytest.raises(RenderError, match=re.escape(message)):
        render(renderer, {"settings": {"VIBEBOX_MAX_DISK": value}})
    # --set types 4 as an integer too (helm's strvals): refused the same way; --set-string is a string.
    with pytest.raises(RenderError, match=re.escape("settings.VIBEBOX_WEB_WORKERS is 4, not a string")):
        render(renderer, sets=("settings.VIBEBOX_WEB_WORKERS=4",))


def test_a_value_that_breaks_the_indentation_is_caught(renderer):
    """A value spliced in unquoted (the ingress class) with a newline and an indented line: the
    stream no longer parses, and the test's YAML parse is what catches it."""
    with pytest.raises(yaml.YAMLError):
        render(renderer, {"ingress": {"className": "nginx\n    extra: [broken"}})


def test_notes_are_not_in_the_manifests(renderer):
    out, notes = render_text(renderer, RUNTIME_VALUES)
    assert "NOTES.txt" not in out and "is installed as" not in out
    assert "job/vibebox-setup" in notes and "vibebox-sandboxes" in notes
    assert "helm uninstall keeps the data claim vibebox-data and the sandboxes' namespace vibebox-sandboxes" in notes
    assert "# Source: vibebox/templates/web.yaml" in out
