"""The Kubernetes driver: sandboxes as Pods, the only module that imports `kubernetes`.

Selected by VIBEBOX_RUNTIME_DRIVER=kubernetes (docs/kubernetes.md). The objects of one sandbox, all
in one namespace, named after the sandbox (object_name: Kubernetes names are lower-case DNS labels,
VibeBox's are not) and labelled with VibeBox's labels:

- a Secret, the sandbox's *record*: sandboxd's token and container name (mounted read-only, root
  only) and the Pod's manifest. It outlives a stop (no Pod) and owns the Pod and the egress policy,
  which are garbage-collected with it;
- a PersistentVolumeClaim for /workspace (ContainerSpec.volume), kept or removed as on Docker;
- the Pod, made by `start` and deleted by `stop` (Kubernetes has no stopped Pod): sandboxd is its
  command, copied from VIBEBOX_KUBERNETES_SANDBOXD_IMAGE by an init container into an emptyDir
  mounted read-only at DAEMON_MOUNT; hardened as runtime/hardening.py says;
- a NetworkPolicy for its egress (EgressRules, or the default: the public internet and DNS), and
  one per namespace (ensure_network) letting only the control plane's pods in.

Commands, terminals, watches and files go to sandboxd at the Pod's IP (sandboxd_calls), never
through the API server's exec. What Kubernetes cannot do raises RuntimeUnsupported (UNSUPPORTED).
Every object is built by a pure function below (no API call), so tests validate them offline
against the API's schemas (tests/runtime/test_kubernetes_objects.py).

Never run against a live cluster where it was written: tests/runtime/test_driver_contract.py runs
against one wherever VIBEBOX_TEST_KUBECONFIG is set.
"""

import base64
import contextlib
import datetime
import hashlib
import ipaddress
import json
import logging
import math
import re
import threading
import time
from collections.abc import Iterator

import urllib3
from django.conf import settings
from kubernetes import client as k8s
from kubernetes import config as k8s_config
from kubernetes.client.exceptions import ApiException
from kubernetes.config.config_exception import ConfigException
from kubernetes.utils import parse_quantity

from vibebox import exceptions as errors

from . import firewall, hardening, sandboxd_client
from .base import (
    DAEMON_BINARY,
    DAEMON_MOUNT,
    DAEMON_USER_LABEL,
    ContainerInfo,
    ContainerSpec,
    ContainerStats,
    EgressRules,
    EngineInfo,
    MeterReading,
    NodeConnection,
    NodeEngine,
)
from .sandboxd_calls import SandboxdCalls

logger = logging.getLogger(__name__)

RUNTIME = "kubernetes"
CONTAINER = "sandbox"  # the Pod's one container
INSTALLER = "sandboxd-install"  # its init container
OBJECT_LABEL = "vibebox.object"  # the Kubernetes name of the sandbox's objects (selects its Pod)
ROLE_LABEL = "vibebox.role"  # sandbox (record, Pod, egress policy), workspace (PVC), network (namespace policy)
NAME_ANNOTATION = "vibebox.name"  # VibeBox's name, as it was given
LABELS_ANNOTATION = "vibebox.labels"  # every VibeBox label, exactly (not all are valid Kubernetes labels)
STARTED_ANNOTATION = "vibebox.started"  # on the record: a Pod was started once (no Pod: "exited", not "created")
PIDS_ANNOTATION = "vibebox.pids-limit"  # on the record: the spec's pids limit, checked against the node's
SECRET_MOUNT = "/run/vibebox-secret"  # noqa: S105 (a path); the record's token and container name (sandboxd's --token-file...)
RUN_DIR = sandboxd_client.DIRECTORY  # sandboxd's log FIFOs (--log-dir), a small memory emptyDir
INSTALL_MOUNT = "/install"  # the init container's view of the emptyDir sandboxd is copied into
DAEMON_SIZE = "64Mi"  # the emptyDir holding sandboxd's binary
RUN_SIZE = "1Mi"
INSTALLER_LIMITS = {"cpu": "100m", "memory": "32Mi"}  # a cp of one binary
READY_POLL = 0.2  # seconds between looks at a starting or stopping Pod
IMAGE_ERRORS = {"ErrImagePull", "ImagePullBackOff", "InvalidImageName", "ErrImageNeverPull"}
START_ERRORS = {"CreateContainerConfigError", "CreateContainerError", "RunContainerError"}
# Where the control plane's pods are (deploy/kubernetes/: every VibeBox pod carries this label), and
# which of them sandboxes may reach: the model gateway and the egress proxy.
CONTROL_PLANE_LABELS = {"app.kubernetes.io/name": "vibebox"}
CONTROL_PLANE_REACHED = ("gateway", "egress")
DNS_PEER = {
    "namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": "kube-system"}},
    "podSelector": {"matchLabels": {"k8s-app": "kube-dns"}},
}

# The API calls this driver makes, as RBAC rules: (API group, resource) -> verbs, in the sandboxes'
# namespace and cluster-wide (deploy/kubernetes/components/kubernetes-runtime/rbac.yaml grants
# exactly these; tests/runtime/test_kubernetes_objects.py compares).
NAMESPACE_PERMISSIONS = {
    ("", "secrets"): {"create", "get", "list", "patch", "delete"},  # records (patch: the started mark)
    ("", "pods"): {"create", "get", "list", "delete"},
    ("", "persistentvolumeclaims"): {"create", "get", "list", "delete"},
    ("", "pods/log"): {"get"},
    ("networking.k8s.io", "networkpolicies"): {"create", "get", "list", "update", "delete"},
}
CLUSTER_PERMISSIONS = {
    ("", "nodes"): {"list"},  # node_engine
    ("", "nodes/proxy"): {"get"},  # the kubelet's stats/summary and configz
}

# What this driver cannot do on Kubernetes: feature -> why (RuntimeUnsupported's details.feature;
# docs/kubernetes.md lists them). Each method below that raises names one.
UNSUPPORTED = {
    "pause": "Kubernetes cannot freeze a Pod's processes (there is no pause; stop keeps the workspace)",
    "rename": "Kubernetes objects cannot be renamed",
    "commit": "Kubernetes has no API to commit a container's filesystem to an image (snapshots)",
    "images": "images are built and pushed to a registry outside VibeBox on Kubernetes",
    "archive": "Kubernetes has no archive API into a Pod (files of stopped sandboxes, snapshots' workspaces)",
    "volume_files": "a workspace's files are not read or written outside its Pod on Kubernetes (backups)",
    "network_address": "sandboxes reach the control plane by its Services on Kubernetes, not a bridge's gateway",
    "nodes": "registered nodes are Docker engines; the Kubernetes runtime schedules onto the cluster's nodes",
}


def unsupported(feature: str) -> errors.ApplicationError:
    return errors.RuntimeUnsupported(
        f"Not on the Kubernetes runtime: {UNSUPPORTED[feature]}.", details={"feature": feature, "runtime": RUNTIME}
    )


# ---- names and labels ----

_LABEL_VALUE = re.compile(r"^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$")
_LABEL_KEY = re.compile(
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$"
)


def object_name(name: str) -> str:
    """A VibeBox name (`sbx_4fTq...`, `<id>-workspace`) as a Kubernetes object's: a DNS label (lower
    case, at most 55 characters, so `<it>-egress` is a label value too) that stays recognisable and
    never takes another name's (a digest of the name)."""
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")[:38].strip("-") or "x"
    return f"{slug}-{hashlib.sha256(name.encode()).hexdigest()[:16]}"


def valid_label(key: str, value: str) -> bool:
    name = key.rsplit("/", 1)[-1]
    return bool(_LABEL_KEY.match(key)) and len(name) <= 63 and len(value) <= 63 and bool(_LABEL_VALUE.match(value))


def kubernetes_labels(labels: dict[str, str]) -> dict[str, str]:
    """The labels that are valid as Kubernetes labels (selectors use them); all of them stay
    exactly in LABELS_ANNOTATION."""
    return {key: value for key, value in labels.items() if valid_label(key, value)}


def label_selector(labels: dict[str, str], role: str) -> str:
    """A selector for objects of `role` carrying `labels` (those that are valid Kubernetes labels
    with a value; callers compare every label exactly afterwards)."""
    wanted = {key: value for key, value in kubernetes_labels(labels).items() if value}
    return ",".join(f"{key}={value}" for key, value in {**wanted, ROLE_LABEL: role}.items())


def _metadata(name: str, labels: dict[str, str], *, namespace: str, role: str, obj: str | None = None) -> dict:
    obj = obj or object_name(name)
    return {
        "name": obj,
        "namespace": namespace,
        "labels": {**kubernetes_labels(labels), OBJECT_LABEL: obj, ROLE_LABEL: role},
        "annotations": {NAME_ANNOTATION: name, LABELS_ANNOTATION: json.dumps(labels, sort_keys=True)},
    }


def _quantity_cpu(cores: float) -> str:
    return f"{max(1, round(cores * 1000))}m"


# ---- the objects (pure: no API call; tests validate them against the API's schemas) ----


def daemon_user(spec: ContainerSpec) -> str:
    """The user sandboxd runs commands as. The Docker driver falls back to the image's USER; the
    image's configuration is not readable here without pulling it, so an empty one is root's:
    templates name their user (template.yaml `user`; the built-in ones do)."""
    return spec.user


def sandbox_labels(spec: ContainerSpec) -> dict[str, str]:
    """The sandbox's VibeBox labels, with the one saying sandboxd is its PID 1 (ContainerInfo.has_daemon)."""
    return {**spec.labels, DAEMON_USER_LABEL: daemon_user(spec)}


def sandbox_pod(spec: ContainerSpec, *, namespace: str, sandboxd_image: str) -> dict:
    """The sandbox's Pod, hardened as the Docker driver's container (runtime/hardening.py): sandboxd
    as root PID 1 with only its capabilities and the template's, no privilege escalation, the
    runtime's default seccomp profile, CPU and memory limits (requests equal: never overcommitted,
    no swap), /tmp a size-capped memory volume, no service account token, no host namespaces."""
    if spec.disk:
        raise errors.DiskLimitUnsupported()  # engine_info says so: a create never asks
    user = daemon_user(spec)
    command = [DAEMON_BINARY, "serve", *(("--user", user) if user else ())]
    command += ["--token-file", f"{SECRET_MOUNT}/token", "--container-file", f"{SECRET_MOUNT}/container"]
    command += ["--log-dir", RUN_DIR]
    limits = {"cpu": _quantity_cpu(spec.cpu), "memory": str(spec.memory)}
    mounts = [
        {"name": "sandboxd", "mountPath": DAEMON_MOUNT, "readOnly": True},
        {"name": "token", "mountPath": SECRET_MOUNT, "readOnly": True},
        {"name": "run", "mountPath": RUN_DIR},
        {"name": "tmp", "mountPath": hardening.TMPFS_PATH},
    ]
    volumes = [
        {"name": "sandboxd", "emptyDir": {"sizeLimit": DAEMON_SIZE}},
        {
            "name": "token",
            "secret": {
                "secretName": object_name(spec.name),
                "defaultMode": 0o400,  # root's only: the sandbox user cannot read the token
                "items": [{"key": "token", "path": "token"}, {"key": "container", "path": "container"}],
            },
        },
        {"name": "run", "emptyDir": {"medium": "Memory", "sizeLimit": RUN_SIZE}},
        {"name": "tmp", "emptyDir": {"medium": "Memory", "sizeLimit": str(spec.tmpfs_size)}},
    ]
    if spec.volume:
        mounts.insert(0, {"name": "workspace", "mountPath": "/workspace"})
        volumes.insert(0, {"name": "workspace", "persistentVolumeClaim": {"claimName": object_name(spec.volume)}})
    seccomp = {"type": hardening.SECCOMP}
    pod_spec = {
        "restartPolicy": "Never",  # sandboxd exiting ends the sandbox, as on Docker (no restart policy)
        "automountServiceAccountToken": False,
        "enableServiceLinks": False,  # no environment variables naming the namespace's Services
        "shareProcessNamespace": False,
        "hostname": spec.hostname,
        "terminationGracePeriodSeconds": 10,
        "securityContext": {
            "runAsUser": hardening.RUN_AS_UID,
            "runAsGroup": hardening.RUN_AS_GID,
            "runAsNonRoot": hardening.RUN_AS_UID != 0,
            "seccompProfile": seccomp,
        },
        "initContainers": [
            {
                "name": INSTALLER,
                "image": sandboxd_image,
                "command": ["cp", DAEMON_BINARY, f"{INSTALL_MOUNT}/sandboxd"],
                "volumeMounts": [{"name": "sandboxd", "mountPath": INSTALL_MOUNT}],
                "resources": {"limits": dict(INSTALLER_LIMITS), "requests": dict(INSTALLER_LIMITS)},
                "securityContext": {
                    "runAsUser": 65534,
                    "runAsGroup": 65534,
                    "runAsNonRoot": True,
                    "readOnlyRootFilesystem": True,
                    "allowPrivilegeEscalation": False,
                    "privileged": False,
                    "capabilities": {"drop": list(hardening.DROP_CAPABILITIES)},
                    "seccompProfile": seccomp,
                },
            }
        ],
        "containers": [
            {
                "name": CONTAINER,
                "image": spec.image,
                "command": command,
                "workingDir": spec.workdir,
                "env": [{"name": key, "value": value} for key, value in sorted(spec.env.items())],
                "ports": [{"name": "sandboxd", "containerPort": sandboxd_client.PORT, "protocol": "TCP"}],
                "readinessProbe": {  # Ready: sandboxd listens (start waits for it)
                    "tcpSocket": {"port": sandboxd_client.PORT},
                    "periodSeconds": 1,
                    "failureThreshold": 3,
                },
                "resources": {"limits": dict(limits), "requests": dict(limits)},
                "securityContext": {
                    "runAsUser": hardening.RUN_AS_UID,
                    "runAsGroup": hardening.RUN_AS_GID,
                    "runAsNonRoot": hardening.RUN_AS_UID != 0,
                    "readOnlyRootFilesystem": hardening.READ_ONLY_ROOT,
                    "allowPrivilegeEscalation": not hardening.NO_NEW_PRIVILEGES,
                    "privileged": hardening.PRIVILEGED,
                    "capabilities": {"drop": list(hardening.DROP_CAPABILITIES), "add": hardening.capabilities(spec)},
                    "seccompProfile": seccomp,
                },
                "volumeMounts": mounts,
                "terminationMessagePolicy": "FallbackToLogsOnError",
            }
        ],
        "volumes": volumes,
    }
    if spec.runtime and spec.runtime != "runc":  # the operator's RuntimeClass of that name (gVisor's runsc...)
        pod_spec["runtimeClassName"] = spec.runtime
    metadata = _metadata(spec.name, sandbox_labels(spec), namespace=namespace, role="sandbox")
    metadata["annotations"][PIDS_ANNOTATION] = str(spec.pids_limit)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": metadata, "spec": pod_spec}


def warm_pool_pod(spec: ContainerSpec, *, namespace: str, sandboxd_image: str) -> dict:
    """A warm pool's pre-created Pod: a sandbox's, as on Docker (services/pools.py makes the spec
    with `vibebox.pool=<template>` and no owner); a create takes it by its database row, and its
    name never changes."""
    if not spec.labels.get("vibebox.pool"):
        raise ValueError("a warm pool's spec has a vibebox.pool label")
    return sandbox_pod(spec, namespace=namespace, sandboxd_image=sandboxd_image)


def record_secret(spec: ContainerSpec, *, namespace: str, secret: str, pod: dict) -> dict:
    """The sandbox's record: sandboxd's token (derived from the server's secret, as on Docker) and
    container name, and the Pod to make at each start."""
    data = {
        "token": sandboxd_client.token(secret, spec.name).encode(),
        "container": spec.name.encode(),
        "pod": json.dumps(pod, sort_keys=True).encode(),
    }
    metadata = _metadata(spec.name, sandbox_labels(spec), namespace=namespace, role="sandbox")
    metadata["annotations"][PIDS_ANNOTATION] = str(spec.pids_limit)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "type": "Opaque",
        "metadata": metadata,
        "data": {key: base64.b64encode(value).decode() for key, value in data.items()},
    }


def workspace_claim(spec: ContainerSpec, *, namespace: str, size: int, storage_class: str = "") -> dict:
    """/workspace's claim: ReadWriteOnce (one Pod), `size` bytes."""
    assert spec.volume
    claim = {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": _metadata(spec.volume, spec.labels, namespace=namespace, role="workspace"),
        "spec": {"accessModes": ["ReadWriteOnce"], "resources": {"requests": {"storage": str(size)}}},
    }
    if storage_class:
        claim["spec"]["storageClassName"] = storage_class
    return claim


def _peer(namespace: str, components: tuple[str, ...] = ()) -> dict:
    """The control plane's pods (all of them, or those of `components`)."""
    selector: dict = {"matchLabels": dict(CONTROL_PLANE_LABELS)}
    if components:
        selector["matchExpressions"] = [
            {"key": "app.kubernetes.io/component", "operator": "In", "values": list(components)}
        ]
    return {"namespaceSelector": {"matchLabels": {"kubernetes.io/metadata.name": namespace}}, "podSelector": selector}


def network_policy(
    name: str, labels: dict[str, str], *, namespace: str, control_namespace: str, model_gateway: bool = True
) -> dict:
    """The namespace's policy for every sandbox of the network (ensure_network): ingress only from
    the control plane's pods (sandboxd's port, the preview ports), egress to the model gateway
    and the egress proxy (unless `model_gateway` is False). Each sandbox's own egress policy adds
    the internet (policies add up; nothing else lets a sandbox out)."""
    selector = {**kubernetes_labels(labels), ROLE_LABEL: "sandbox"}
    spec: dict = {
        "podSelector": {"matchLabels": selector},
        "policyTypes": ["Ingress", "Egress"],
        "ingress": [{"from": [_peer(control_namespace)]}],
        "egress": [{"to": [_peer(control_namespace, CONTROL_PLANE_REACHED)]}] if model_gateway else [],
    }
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(name, labels, namespace=namespace, role="network"),
        "spec": spec,
    }


def _networks(cidrs) -> list:
    return [ipaddress.ip_network(cidr, strict=False) for cidr in cidrs]


def _blocks(cidrs: list, excluded: list, allowed: list = ()) -> list[dict]:
    """ipBlocks for `cidrs` without `excluded` (a CIDR inside an excluded one is left out, unless
    inside an `allowed` one; excluded ones inside it become its `except`)."""
    blocks = []
    for net in cidrs:
        same = [e for e in excluded if e.version == net.version]
        if any(net.subnet_of(e) for e in same) and not any(
            a.version == net.version and net.subnet_of(a) for a in allowed
        ):
            continue
        block: dict = {"cidr": str(net)}
        inside = sorted({str(e) for e in same if e != net and e.subnet_of(net)})
        if inside:
            block["except"] = inside
        blocks.append({"ipBlock": block})
    return blocks


def egress_policy(
    name: str, labels: dict[str, str], rules: EgressRules | None, *, namespace: str, allow_private=()
) -> dict:
    """One sandbox's egress, as runtime/firewall.py enforces it on Docker: the public internet
    (every address but firewall.PRIVATE_V4/V6, plus the operator's VIBEBOX_EGRESS_ALLOW_PRIVATE)
    and DNS; with `rules`, without its `deny` networks, or when `closed` only its `allow`
    networks (and DNS with `dns`)."""
    private = _networks(firewall.PRIVATE_V4 + firewall.PRIVATE_V6)
    allowed = _networks(allow_private)
    rules = rules or EgressRules()
    deny = _networks(rules.deny)
    dns = not rules.closed or rules.dns
    if rules.closed:
        blocks = _blocks(_networks(rules.allow), deny + private, allowed)
    else:
        blocks = _blocks(_networks(["0.0.0.0/0", "::/0"]), deny + private) + _blocks(allowed, deny)
    egress = []
    if blocks:
        egress.append({"to": blocks})
    if dns:
        egress.append({"to": [DNS_PEER], "ports": [{"protocol": p, "port": 53} for p in ("UDP", "TCP")]})
    obj = object_name(name)
    return {
        "apiVersion": "networking.k8s.io/v1",
        "kind": "NetworkPolicy",
        "metadata": _metadata(name, labels, namespace=namespace, role="sandbox", obj=f"{obj}-egress"),
        "spec": {"podSelector": {"matchLabels": {OBJECT_LABEL: obj}}, "policyTypes": ["Egress"], "egress": egress},
    }


def owned_by(body: dict, record: dict) -> dict:
    """`body` garbage-collected with the sandbox's record."""
    reference = {"apiVersion": "v1", "kind": "Secret", "name": record["metadata"]["name"]}
    reference["uid"] = record["metadata"]["uid"]
    return {**body, "metadata": {**body["metadata"], "ownerReferences": [reference]}}


# ---- reading what the API answers ----


def _labels_of(obj: dict) -> dict[str, str]:
    annotations = (obj.get("metadata") or {}).get("annotations") or {}
    try:
        labels = json.loads(annotations.get(LABELS_ANNOTATION) or "{}")
    except ValueError:
        labels = {}
    return labels if isinstance(labels, dict) else {}


def _container_status(pod: dict) -> dict:
    for status in (pod.get("status") or {}).get("containerStatuses") or []:
        if status.get("name") == CONTAINER:
            return status
    return {}


def container_info(name: str, record: dict | None, pod: dict | None) -> ContainerInfo:
    """What inspect answers, from the record and the Pod (either may be missing)."""
    source = record or pod or {}
    meta = source.get("metadata") or {}
    info = dict(id=meta.get("uid", ""), name=name, labels=_labels_of(source))
    if pod is None:
        started = (meta.get("annotations") or {}).get(STARTED_ANNOTATION)
        return ContainerInfo(status="exited" if started else "created", **info)
    state = _container_status(pod).get("state") or {}
    terminated = state.get("terminated") or {}
    phase = (pod.get("status") or {}).get("phase")
    if (pod.get("metadata") or {}).get("deletionTimestamp"):
        status = "removing"
    elif terminated or phase in ("Succeeded", "Failed"):
        status = "exited"
    elif "running" in state:
        status = "running"
    elif phase == "Unknown":
        status = "dead"
    else:
        status = "created"
    return ContainerInfo(
        status=status,
        exit_code=terminated.get("exitCode"),
        oom_killed=terminated.get("reason") == "OOMKilled",
        started_at=(state.get("running") or {}).get("startedAt") or terminated.get("startedAt"),
        **info,
    )


def _timestamped(line: str) -> tuple[float, str]:
    """A log line of the API's `timestamps=true` ("2026-12-05T08:00:00.123456789Z text")."""
    stamp, _, text = line.partition(" ")
    match = re.match(r"^(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d+)?Z$", stamp)
    if not match:
        return time.time(), line
    moment = datetime.datetime.fromisoformat(match.group(1) + (match.group(2) or "")[:7]).replace(tzinfo=datetime.UTC)
    return moment.timestamp(), text


class _PodLogs:
    """The Pod's log as (unix time, line); close() lets go of the API server's stream."""

    def __init__(self, response, since: float | None):
        self._response, self._since = response, since

    def __iter__(self) -> Iterator[tuple[float, str]]:
        if self._response is None:
            return
        pending = b""
        try:
            for chunk in self._response.stream(64 * 1024):
                pending += chunk
                *lines, pending = pending.split(b"\n")
                for raw in lines:
                    moment, text = _timestamped(raw.decode("utf-8", "replace"))
                    if self._since is None or moment >= self._since:
                        yield moment, text
        except (urllib3.exceptions.HTTPError, OSError) as exc:
            raise errors.RuntimeFailure(f"the Pod's log broke off: {exc}"[:300]) from None
        finally:
            self.close()

    def close(self) -> None:
        if self._response is not None:
            self._response.release_conn()


# ---- the driver ----


class KubernetesDriver(SandboxdCalls):
    def __init__(
        self,
        *,
        namespace: str,
        kubeconfig: str = "",
        context: str = "",
        timeout: int = 120,
        secret: str = "",
        sandboxd_image: str = "",
        control_namespace: str = "vibebox",
        storage_class: str = "",
        workspace_size: int = 10 * 1024**3,
        require_pids_limit: bool = True,
        allow_private: tuple[str, ...] = (),
    ):
        self.namespace = namespace
        self._kubeconfig, self._context = kubeconfig, context
        self._timeout = timeout
        self._secret = secret
        self._sandboxd_image = sandboxd_image
        self._control_namespace = control_namespace
        self._storage_class, self._workspace_size = storage_class, workspace_size
        self._require_pids_limit = require_pids_limit
        self._allow_private = tuple(allow_private)
        self._api_client: k8s.ApiClient | None = None
        self._lock = threading.Lock()
        self._daemons: dict[str, str] = {}  # sandbox name -> its Pod's IP
        self._node_pids: dict[str, int | None] = {}  # node -> its kubelet's podPidsLimit
        self._version: str | None = None

    # ---- connection and error translation ----

    @property
    def api_client(self) -> "k8s.ApiClient":
        if self._api_client is None:
            with self._lock, self._engine():
                if self._api_client is None:
                    configuration = k8s.Configuration()
                    if self._kubeconfig:
                        k8s_config.load_kube_config(
                            config_file=self._kubeconfig,
                            context=self._context or None,
                            client_configuration=configuration,
                        )
                    else:
                        k8s_config.load_incluster_config(client_configuration=configuration)
                    self._api_client = k8s.ApiClient(configuration)
        return self._api_client

    @property
    def core(self) -> "k8s.CoreV1Api":
        return k8s.CoreV1Api(self.api_client)

    @property
    def networking(self) -> "k8s.NetworkingV1Api":
        return k8s.NetworkingV1Api(self.api_client)

    def close(self) -> None:
        with self._lock:
            if self._api_client is not None:
                self._api_client.close()
                self._api_client = None

    @contextlib.contextmanager
    def _engine(self):
        try:
            yield
        except errors.ApplicationError:
            raise
        except ApiException as exc:
            message = exc.reason or ""
            with contextlib.suppress(ValueError, TypeError, AttributeError):
                message = json.loads(exc.body).get("message") or message
            if not exc.status or exc.status in (502, 503, 504):
                raise errors.RuntimeUnavailable(details={"reason": f"{exc.status}: {message}"[:300]}) from None
            raise errors.RuntimeFailure(
                f"The Kubernetes API answered {exc.status}: {message}"[:500],
                details={"reason": "kubernetes", "status": exc.status},
            ) from None
        except (urllib3.exceptions.HTTPError, OSError, ConfigException) as exc:
            raise errors.RuntimeUnavailable(details={"reason": str(exc)[:300]}) from None

    def _call(self, method, *args, **kwargs):
        """An API call answering plain JSON (dicts, as the builders make them); None for a 404."""
        try:
            response = method(*args, _preload_content=False, _request_timeout=self._timeout, **kwargs)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return json.loads(response.data or b"null")

    def _create(self, method, body: dict) -> dict | None:
        """Creates `body`; None when it already exists (a retried create found it)."""
        try:
            return self._call(method, self.namespace, body)
        except ApiException as exc:
            if exc.status == 409:
                return None
            raise

    def _apply_policy(self, body: dict) -> None:
        """The NetworkPolicy as `body` says: created, or the existing one replaced (at the
        resourceVersion read: a concurrent change makes this read and replace again)."""
        name = body["metadata"]["name"]
        for _ in range(5):
            if self._create(self.networking.create_namespaced_network_policy, body) is not None:
                return
            current = self._call(self.networking.read_namespaced_network_policy, name, self.namespace)
            if current is None:
                continue  # deleted in between: create again
            version = current["metadata"]["resourceVersion"]
            replaced = {**body, "metadata": {**body["metadata"], "resourceVersion": version}}
            try:
                self._call(self.networking.replace_namespaced_network_policy, name, self.namespace, replaced)
                return
            except ApiException as exc:
                if exc.status != 409:
                    raise
        raise errors.RuntimeFailure(f"The NetworkPolicy {name} kept changing under this update.")

    def _delete(self, method, name: str, *, grace: int | None = None) -> None:
        options = {"propagationPolicy": "Background"}
        if grace is not None:
            options["gracePeriodSeconds"] = grace
        self._call(method, name, self.namespace, body=options)

    def ping(self) -> None:
        self._kubernetes_version()

    def _kubernetes_version(self) -> str:
        with self._engine():
            data = self._call(k8s.VersionApi(self.api_client).get_code)
        self._version = str((data or {}).get("gitVersion", ""))
        return self._version

    def engine_info(self) -> EngineInfo:
        """No disk limits: ephemeral-storage limits evict a Pod, they do not stop a write."""
        version = self._version or self._kubernetes_version()
        return EngineInfo(version=version, storage_driver=RUNTIME, supports_disk_limit=False)

    def node_engine(self) -> NodeEngine:
        """The cluster as one engine: its version, the sum of its nodes' allocatable memory and CPUs."""
        version = self._kubernetes_version()
        with self._engine():
            nodes = (self._call(self.core.list_node) or {}).get("items") or []
        allocatable = [(n.get("status") or {}).get("allocatable") or {} for n in nodes]
        info = ((nodes[0].get("status") or {}).get("nodeInfo") or {}) if nodes else {}
        return NodeEngine(
            version=version,
            api_version=version,
            memory=int(sum(parse_quantity(a.get("memory", "0")) for a in allocatable)),
            cpus=int(sum(parse_quantity(a.get("cpu", "0")) for a in allocatable)),
            os=str(info.get("osImage", "")),
            arch=str(info.get("architecture", "")),
            storage_driver=RUNTIME,
        )

    # ---- sandboxes ----

    def _record(self, name: str) -> dict | None:
        return self._call(self.core.read_namespaced_secret, object_name(name), self.namespace)

    def _pod(self, name: str) -> dict | None:
        return self._call(self.core.read_namespaced_pod, object_name(name), self.namespace)

    def create(self, spec: ContainerSpec) -> ContainerInfo:
        """The record, the workspace's claim and the egress policy; the Pod comes at start. A
        retried create finds what the first one made."""
        if not self._sandboxd_image:
            raise errors.RuntimeFailure(
                "VIBEBOX_KUBERNETES_SANDBOXD_IMAGE is not set.", details={"reason": "no_sandboxd_image"}
            )
        pod = sandbox_pod(spec, namespace=self.namespace, sandboxd_image=self._sandboxd_image)
        record = record_secret(spec, namespace=self.namespace, secret=self._secret, pod=pod)
        with self._engine():
            made = self._create(self.core.create_namespaced_secret, record) or self._record(spec.name)
            if made is None:
                raise errors.RuntimeFailure("The sandbox's record vanished as it was made.")
            if spec.volume:
                claim = workspace_claim(
                    spec, namespace=self.namespace, size=self._workspace_size, storage_class=self._storage_class
                )
                self._create(self.core.create_namespaced_persistent_volume_claim, claim)
            policy = egress_policy(
                spec.name, spec.labels, None, namespace=self.namespace, allow_private=self._allow_private
            )
            self._create(self.networking.create_namespaced_network_policy, owned_by(policy, made))
        return container_info(spec.name, made, None)

    def _wait_gone(self, name: str, deadline: float) -> None:
        while self._pod(name) is not None:
            if time.monotonic() > deadline:
                raise errors.RuntimeUnavailable(details={"reason": "the sandbox's Pod is not gone yet"})
            time.sleep(READY_POLL)

    def start(self, name: str) -> ContainerInfo:
        """Makes the Pod from the record and waits until sandboxd listens (the Pod is Ready)."""
        deadline = time.monotonic() + self._timeout
        with self._engine():
            record = self._record(name)
            if record is None:
                raise errors.SandboxNotFound("The sandbox's container is gone.")
            pod = self._pod(name)
            if pod is not None and container_info(name, record, pod).status in ("exited", "dead", "removing"):
                if not (pod.get("metadata") or {}).get("deletionTimestamp"):
                    self._delete(self.core.delete_namespaced_pod, object_name(name), grace=0)
                self._wait_gone(name, deadline)
                pod = None
            if pod is None:
                body = json.loads(base64.b64decode(record["data"]["pod"]))
                self._create(self.core.create_namespaced_pod, owned_by(body, record))
            pod = self._wait_ready(name, deadline)
            annotations = (record.get("metadata") or {}).get("annotations") or {}
            self._check_pids(name, pod, int(annotations.get(PIDS_ANNOTATION) or 0))
            if STARTED_ANNOTATION not in annotations:
                patch = {"metadata": {"annotations": {STARTED_ANNOTATION: "1"}}}
                self._call(self.core.patch_namespaced_secret, object_name(name), self.namespace, patch)
                record["metadata"].setdefault("annotations", {})[STARTED_ANNOTATION] = "1"
        self._daemons[name] = pod["status"]["podIP"]
        return container_info(name, record, pod)

    def _wait_ready(self, name: str, deadline: float) -> dict:
        while True:
            pod = self._pod(name)
            if pod is None:
                raise errors.RuntimeFailure("The sandbox's Pod vanished while it started.")
            status = pod.get("status") or {}
            container = _container_status(pod)
            waiting = (container.get("state") or {}).get("waiting") or {}
            if container.get("ready") and status.get("podIP"):
                return pod
            if waiting.get("reason") in IMAGE_ERRORS:
                self._delete(self.core.delete_namespaced_pod, object_name(name), grace=0)
                raise errors.TemplateUnavailable(details={"image": container.get("image", "")})
            if waiting.get("reason") in START_ERRORS or status.get("phase") in ("Succeeded", "Failed"):
                reason = waiting.get("message") or waiting.get("reason") or status.get("phase")
                raise errors.RuntimeFailure(f"The sandbox's Pod did not start: {reason}"[:500])
            if time.monotonic() > deadline:
                self._delete(self.core.delete_namespaced_pod, object_name(name), grace=0)
                conditions = {c.get("type"): c for c in status.get("conditions") or []}
                if (conditions.get("PodScheduled") or {}).get("reason") == "Unschedulable":
                    raise errors.NoCapacity(details={"reason": conditions["PodScheduled"].get("message", "")[:300]})
                raise errors.RuntimeUnavailable(details={"reason": "the sandbox's Pod did not become ready in time"})
            time.sleep(READY_POLL)

    def _node_pids_limit(self, node: str) -> int | None:
        """The node's kubelet's podPidsLimit (its /configz), None when unset."""
        if node not in self._node_pids:
            data = self._call(self.core.connect_get_node_proxy_with_path, node, "configz") or {}
            limit = (data.get("kubeletconfig") or {}).get("podPidsLimit")
            self._node_pids[node] = int(limit) if isinstance(limit, int) and limit > 0 else None
        return self._node_pids[node]

    def _check_pids(self, name: str, pod: dict, wanted: int) -> None:
        """A Pod has no pids limit of its own: the node's kubelet must cap every Pod at no more than
        the sandbox's (else the Pod is removed and the start refused)."""
        if not self._require_pids_limit or not wanted:
            return
        node = (pod.get("spec") or {}).get("nodeName", "")
        limit = self._node_pids_limit(node)
        if limit is None or limit > wanted:
            self._delete(self.core.delete_namespaced_pod, object_name(name), grace=0)
            raise errors.RuntimeFailure(
                f"Node {node}'s kubelet does not limit a Pod's processes to {wanted} (podPidsLimit: {limit}).",
                details={"reason": "pids_limit_unenforced"},
            )

    def stop(self, name: str, timeout: int) -> ContainerInfo:
        """Deletes the Pod (SIGTERM to sandboxd, SIGKILL after `timeout`); the record and the
        workspace stay, as a stopped container's do."""
        self._daemons.pop(name, None)
        with self._engine():
            record = self._record(name)
            if record is None:
                raise errors.SandboxNotFound("The sandbox's container is gone.")
            self._delete(self.core.delete_namespaced_pod, object_name(name), grace=max(0, int(timeout)))
            self._wait_gone(name, time.monotonic() + timeout + self._timeout)
        return container_info(name, record, None)

    def restart(self, name: str, timeout: int) -> ContainerInfo:
        self.stop(name, timeout)
        return self.start(name)

    def remove(self, name: str, *, volume: str | None = None) -> None:
        """The Pod, the egress policy and the record; the workspace's claim too when named."""
        self._daemons.pop(name, None)
        obj = object_name(name)
        with self._engine():
            self._delete(self.core.delete_namespaced_pod, obj, grace=0)
            self._delete(self.networking.delete_namespaced_network_policy, f"{obj}-egress")
            self._delete(self.core.delete_namespaced_secret, obj)
        if volume:
            self.remove_volume(volume)

    def rename(self, name: str, new_name: str) -> None:
        raise unsupported("rename")

    def inspect(self, name: str) -> ContainerInfo | None:
        with self._engine():
            record, pod = self._record(name), self._pod(name)
        if record is None and pod is None:
            self._daemons.pop(name, None)
            return None
        return container_info(name, record, pod)

    def list_containers(self, labels: dict[str, str]) -> list[ContainerInfo]:
        """Sandboxes whose labels include `labels`: records and Pods (a Pod without a record is
        listed too: reconcile removes such orphans)."""
        selector = label_selector(labels, "sandbox")
        with self._engine():
            records = self._call(self.core.list_namespaced_secret, self.namespace, label_selector=selector)
            pods = self._call(self.core.list_namespaced_pod, self.namespace, label_selector=selector)
        found: dict[str, list] = {}
        for index, item in enumerate([(records or {}).get("items") or [], (pods or {}).get("items") or []]):
            for obj in item:
                name = ((obj.get("metadata") or {}).get("annotations") or {}).get(NAME_ANNOTATION)
                if name:
                    found.setdefault(name, [None, None])[index] = obj
        infos = [container_info(name, record, pod) for name, (record, pod) in sorted(found.items())]
        return [info for info in infos if all(info.labels.get(k) == v for k, v in labels.items())]

    def pause(self, name: str) -> None:
        raise unsupported("pause")

    def unpause(self, name: str) -> None:
        raise unsupported("pause")

    # ---- egress (NetworkPolicies) ----

    def egress_rules_set(
        self, name: str, network: str, rules: EgressRules | None, *, keep_previous: bool = False
    ) -> list[str]:
        """The sandbox's egress policy replaced (None: the default); answers its Pod's address."""
        with self._engine():
            record = self._record(name)
            if record is None:
                raise errors.SandboxNotFound("The sandbox's container is gone.")
            policy = egress_policy(
                name, _labels_of(record), rules, namespace=self.namespace, allow_private=self._allow_private
            )
            self._apply_policy(owned_by(policy, record))
            pod = self._pod(name)
        address = ((pod or {}).get("status") or {}).get("podIP")
        return [address] if address else []

    def egress_available(self) -> bool:
        """Sandboxes can have egress rules of their own: each has its NetworkPolicy (enforced by
        the cluster's CNI, which the API cannot tell: docs/kubernetes.md)."""
        return True

    def egress_rules_remove(self, name: str, network: str) -> None:
        with contextlib.suppress(errors.SandboxNotFound):
            self.egress_rules_set(name, network, None)

    def egress_rules_replace_all(self, network: str, wanted: "list[tuple[str, EgressRules]]") -> None:
        """Exactly these sandboxes' rules (the reconcile pass): theirs set, every other sandbox's
        policy back to the default where it is not."""
        for name, rules in wanted:
            with contextlib.suppress(errors.SandboxNotFound):
                self.egress_rules_set(name, network, rules)
        kept = {name for name, _ in wanted}
        with self._engine():
            data = self._call(
                self.networking.list_namespaced_network_policy, self.namespace, label_selector=f"{ROLE_LABEL}=sandbox"
            )
        for policy in (data or {}).get("items") or []:
            name = ((policy.get("metadata") or {}).get("annotations") or {}).get(NAME_ANNOTATION)
            if not name or name in kept:
                continue
            default = egress_policy(
                name, _labels_of(policy), None, namespace=self.namespace, allow_private=self._allow_private
            )
            if policy.get("spec") != default["spec"]:
                self.egress_rules_remove(name, network)

    # ---- stats (the kubelet's summary API, through the API server's node proxy) ----

    def _summary(self, name: str) -> tuple[dict, dict]:
        with self._engine():
            pod = self._pod(name)
            if pod is None:
                raise errors.SandboxNotFound("The sandbox's container is gone.")
            node = (pod.get("spec") or {}).get("nodeName")
            if not node:
                raise errors.SandboxNotRunning(details={"status": "created"})
            data = self._call(self.core.connect_get_node_proxy_with_path, node, "stats/summary") or {}
        obj = object_name(name)
        for entry in data.get("pods") or []:
            ref = entry.get("podRef") or {}
            if ref.get("name") == obj and ref.get("namespace") == self.namespace:
                return pod, entry
        raise errors.RuntimeFailure("The node's kubelet has no stats of the sandbox's Pod yet.")

    def stats(self, name: str) -> ContainerStats:
        pod, entry = self._summary(name)
        limits = (((pod.get("spec") or {}).get("containers") or [{}])[0].get("resources") or {}).get("limits") or {}
        cpu, memory = entry.get("cpu") or {}, entry.get("memory") or {}
        nanocores = cpu.get("usageNanoCores")
        node = (pod.get("spec") or {}).get("nodeName", "")
        return ContainerStats(
            cpu_percent=round(nanocores / 1e7, 2) if isinstance(nanocores, int) else None,
            online_cpus=max(1, math.ceil(parse_quantity(limits.get("cpu", "1")))),
            memory_usage=int(memory.get("workingSetBytes") or 0),
            memory_limit=int(parse_quantity(limits.get("memory", "0"))),
            pids=int((entry.get("process_stats") or {}).get("process_count") or 0),
            pids_limit=self._node_pids_limit(node) if node else None,
        )

    def meter(self, name: str) -> MeterReading:
        _, entry = self._summary(name)
        network = entry.get("network") or {}
        interfaces = network.get("interfaces") or [network]
        return MeterReading(
            cpu_ns=int((entry.get("cpu") or {}).get("usageCoreNanoSeconds") or 0),
            memory_bytes=int((entry.get("memory") or {}).get("workingSetBytes") or 0),
            net_rx_bytes=sum(int(i.get("rxBytes") or 0) for i in interfaces),
            net_tx_bytes=sum(int(i.get("txBytes") or 0) for i in interfaces),
        )

    # ---- sandboxd (SandboxdCalls) ----

    def _daemon(self, name: str) -> str:
        """The Pod's IP, where its sandboxd listens (the control plane runs in the cluster)."""
        address = self._daemons.get(name)
        if address is None:
            with self._engine():
                pod = self._pod(name)
                record = self._record(name) if pod is None else None
            if pod is None:
                status = "exited" if record is not None else "missing"
                raise errors.SandboxNotRunning("The sandbox's container is not running.", details={"status": status})
            info = container_info(name, None, pod)
            if info.status != "running":
                raise errors.SandboxNotRunning(
                    "The sandbox's container is not running.", details={"status": info.status}
                )
            if not info.has_daemon:
                raise errors.SandboxOutdated()
            address = (pod.get("status") or {}).get("podIP")
            if not address:
                raise errors.RuntimeFailure(
                    "The sandbox has no address on its network.", details={"reason": "sandboxd_unreachable"}
                )
            self._daemons[name] = address
        return address

    def container_address(self, name: str) -> str:
        self._daemons.pop(name, None)
        return self._daemon(name)

    def container_reach(self, name: str) -> str:
        """A preview dials the Pod's IP itself: the control plane runs in the cluster (no relay)."""
        return self.container_address(name)

    def logs(self, name: str, *, stream: str, since: float | None, tail: int | None, follow: bool):
        """The Pod's log. Kubernetes keeps stdout and stderr in one log: both are `stdout` here
        (`stderr` is empty), and a stopped sandbox's log went with its Pod."""
        with self._engine():
            pod = self._pod(name)
            if pod is None:
                if self._record(name) is None:
                    raise errors.SandboxNotFound("The sandbox's container is gone.")
                return _PodLogs(None, since)
            if stream != "stdout":
                return _PodLogs(None, since)
            kwargs: dict = {"container": CONTAINER, "timestamps": True, "follow": follow}
            if tail is not None:
                kwargs["tail_lines"] = tail
            if since:
                kwargs["since_seconds"] = max(1, math.ceil(time.time() - since))
            response = self.core.read_namespaced_pod_log(
                object_name(name),
                self.namespace,
                _preload_content=False,
                _request_timeout=None if follow else self._timeout,
                **kwargs,
            )
        return _PodLogs(response, since)

    # ---- files through the engine: none on Kubernetes ----

    def path_stat(self, name: str, path: str):
        raise unsupported("archive")

    def get_archive(self, name: str, path: str):
        raise unsupported("archive")

    def put_archive(self, name: str, path: str, data) -> None:
        raise unsupported("archive")

    # ---- volumes (PersistentVolumeClaims) ----

    def list_volumes(self, labels: dict[str, str]) -> list[str]:
        selector = label_selector(labels, "workspace")
        with self._engine():
            data = self._call(
                self.core.list_namespaced_persistent_volume_claim, self.namespace, label_selector=selector
            )
        names = []
        for claim in (data or {}).get("items") or []:
            if all(_labels_of(claim).get(k) == v for k, v in labels.items()):
                names.append(((claim.get("metadata") or {}).get("annotations") or {}).get(NAME_ANNOTATION, ""))
        return sorted(name for name in names if name)

    def remove_volume(self, name: str) -> None:
        with self._engine():
            self._delete(self.core.delete_namespaced_persistent_volume_claim, object_name(name))

    def volume_exists(self, volume: str) -> bool:
        with self._engine():
            claim = self._call(self.core.read_namespaced_persistent_volume_claim, object_name(volume), self.namespace)
        return claim is not None and not (claim.get("metadata") or {}).get("deletionTimestamp")

    def volume_from_image(self, volume: str, *, image: str, path: str, labels: dict[str, str]) -> None:
        raise unsupported("volume_files")

    def volume_export(self, volume: str, target) -> int:
        raise unsupported("volume_files")

    def volume_import(self, volume: str, source, *, labels: dict[str, str], replace: bool = False) -> None:
        raise unsupported("volume_files")

    # ---- networks (the namespace's NetworkPolicy) ----

    def ensure_network(
        self, name: str, labels: dict[str, str], *, model_gateway: bool = True, isolate: bool = True
    ) -> str:
        body = network_policy(
            name,
            labels,
            namespace=self.namespace,
            control_namespace=self._control_namespace,
            model_gateway=model_gateway,
        )
        with self._engine():
            self._apply_policy(body)
        return name

    def remove_network(self, name: str) -> None:
        with self._engine():
            self._delete(self.networking.delete_namespaced_network_policy, object_name(name))

    def network_gateway(self, name: str) -> str:
        raise unsupported("network_address")

    def network_subnets(self, name: str) -> list[str]:
        raise unsupported("network_address")

    def relay_ensure(self, spec, *, replace: bool = False) -> str:
        raise unsupported("nodes")

    def relay_remove(self, name: str, volume: str) -> None:
        raise unsupported("nodes")

    # No image is built on this runtime, so no build leaves anything behind.
    def build_networks(self, labels: dict[str, str]) -> dict[str, str]:
        return {}

    def build_network_remove(self, name: str) -> None:
        return None

    def build_leftovers(self, labels: dict[str, str]) -> list:
        return []

    def build_leftovers_remove(self, leftovers: list) -> list[str]:
        return []

    # ---- images: in a registry, outside VibeBox ----

    def image_exists(self, tag: str) -> bool:
        raise unsupported("images")

    def image_size(self, tag: str) -> int | None:
        raise unsupported("images")

    def image_build(self, **kwargs) -> None:
        raise unsupported("images")

    def image_remove(self, tag: str) -> None:
        raise unsupported("images")

    def image_save(self, tag: str):
        raise unsupported("images")

    def image_load(self, chunks) -> list[str]:
        raise unsupported("images")

    def image_details(self, tag: str):
        raise unsupported("images")

    def image_setid_files(self, tag: str) -> dict[str, str]:
        raise unsupported("images")

    def image_files(self, tag: str, paths: tuple[str, ...]) -> dict[str, bytes | None]:
        raise unsupported("images")

    def list_images(self, labels: dict[str, str]) -> list:
        raise unsupported("images")

    def commit(self, name: str, *, image: str, labels: dict[str, str]) -> int:
        raise unsupported("commit")


def driver_from_settings(node: NodeConnection | None = None) -> KubernetesDriver:
    """The driver VIBEBOX_KUBERNETES_* describe (runtime.get_driver)."""
    if node is not None:
        raise unsupported("nodes")
    return KubernetesDriver(
        namespace=settings.VIBEBOX_KUBERNETES_NAMESPACE,
        kubeconfig=settings.VIBEBOX_KUBECONFIG,
        context=settings.VIBEBOX_KUBERNETES_CONTEXT,
        timeout=settings.VIBEBOX_DOCKER_TIMEOUT,
        secret=settings.SECRET_KEY,
        sandboxd_image=settings.VIBEBOX_KUBERNETES_SANDBOXD_IMAGE,
        control_namespace=settings.VIBEBOX_KUBERNETES_CONTROL_NAMESPACE,
        storage_class=settings.VIBEBOX_KUBERNETES_STORAGE_CLASS,
        workspace_size=settings.VIBEBOX_KUBERNETES_WORKSPACE_SIZE,
        require_pids_limit=settings.VIBEBOX_KUBERNETES_REQUIRE_PIDS_LIMIT,
        allow_private=tuple(settings.VIBEBOX_EGRESS_ALLOW_PRIVATE),
    )
