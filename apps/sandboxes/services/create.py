"""Writes for sandboxes: create, update, destroy, on top of the runtime driver (start, stop,
restart, pause and resume are in lifecycle.py).

Intent first: a sandbox row is written (`creating`) before its container exists, and the
container is named after the row's id, so a retry can never make a duplicate and the
reconciler can always tell what a container belongs to.
"""

import datetime as dt
import json
import logging
import re
import time

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.services import record
from apps.keys.services import acting_org, api_keys_revoke_for_sandbox
from apps.marketplace.models import BuildState, Template
from apps.marketplace.selectors import (
    published_versions,
    split_pin,
    template_find,
    template_list,
    template_suggestions,
    version_resolve,
)
from apps.marketplace.services import template_use_record
from apps.orgs.labels import check_labels, labels_merge
from apps.orgs.network import restricted, validate_network
from vibebox import exceptions as errors
from vibebox import logs, metrics, tracing
from vibebox.units import format_size

from .. import events, quotas, selectors, signals, states
from ..models import GitHook, Sandbox, Status
from ..runtime import driver_for
from ..specs import base_labels, default_disk, disk_limits_on, network_name, sandbox_spec
from . import git, network, placement, pools, snapshots
from .env import prepare_env
from .lifecycle import announce_leaving, template_services_start
from .shipping import snapshot_image_ship

logger = logging.getLogger(__name__)

NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")
METADATA_KEY_RE = re.compile(r"^[A-Za-z0-9_.:/-]{1,64}$")
METADATA_VALUE_MAX = 1024
UNSET = object()


# ---- validation shared by create and update ----


def validate_name(name: str) -> str:
    if not NAME_RE.match(name) or name.startswith("sbx_"):
        raise errors.ValidationFailed(
            "name: 1-63 letters, digits, '-', '_' or '.', starting with a letter or digit, not 'sbx_'.",
            details={"fields": {"name": [{"message": "invalid name", "code": "invalid"}]}},
        )
    return name


def validate_metadata(metadata) -> dict[str, str]:
    if not isinstance(metadata, dict) or not all(isinstance(v, str) for v in metadata.values()):
        raise errors.InvalidMetadata()
    bad_keys = [k for k in metadata if not METADATA_KEY_RE.match(k)]
    if bad_keys:
        raise errors.InvalidMetadata("Metadata keys: 1-64 of letters, digits and _.:/-", details={"keys": bad_keys})
    size = len(json.dumps(metadata).encode())
    if (
        len(metadata) > settings.VIBEBOX_METADATA_MAX_KEYS
        or size > settings.VIBEBOX_METADATA_MAX_BYTES
        or any(len(v) > METADATA_VALUE_MAX for v in metadata.values())
    ):
        raise errors.MetadataTooLarge(
            details={
                "maxKeys": settings.VIBEBOX_METADATA_MAX_KEYS,
                "maxBytes": settings.VIBEBOX_METADATA_MAX_BYTES,
                "maxValueLength": METADATA_VALUE_MAX,
            }
        )
    return metadata


def _resources(resources: dict | None) -> tuple[float, int, int | None]:
    resources = resources or {}
    cpu = resources.get("cpu") or settings.VIBEBOX_DEFAULT_CPU
    memory = resources.get("memory") or settings.VIBEBOX_DEFAULT_MEMORY
    asked = resources.get("disk")
    # Where the engine cannot enforce a disk limit, the default is left off (with a warning in the
    # log, once); an explicit one is refused below.
    disk = asked or default_disk()
    problems = {}
    if not 0.01 <= cpu <= settings.VIBEBOX_MAX_CPU:
        problems["cpu"] = f"between 0.01 and {settings.VIBEBOX_MAX_CPU}"
    if not settings.VIBEBOX_MIN_MEMORY <= memory <= settings.VIBEBOX_MAX_MEMORY:
        problems["memory"] = (
            f"between {format_size(settings.VIBEBOX_MIN_MEMORY)} and {format_size(settings.VIBEBOX_MAX_MEMORY)}"
        )
    if disk and settings.VIBEBOX_MAX_DISK and disk > settings.VIBEBOX_MAX_DISK:
        problems["disk"] = f"at most {format_size(settings.VIBEBOX_MAX_DISK)}"
    if problems:
        raise errors.InvalidResources(
            "Resources out of range: " + "; ".join(f"{k} {v}" for k, v in problems.items()), details=problems
        )
    if asked and not disk_limits_on():
        raise errors.DiskLimitUnsupported(
            details={"hint": "the engine's data root needs btrfs, zfs, or overlay2 on xfs with pquota"}
        )
    return float(cpu), int(memory), int(disk) if disk else None


def _expiry(timeout: float | None, ephemeral: bool) -> tuple[int | None, dt.datetime | None]:
    if not timeout and ephemeral:
        timeout = min(settings.VIBEBOX_EPHEMERAL_DEFAULT_TIMEOUT, settings.VIBEBOX_EPHEMERAL_MAX_TIMEOUT)
    if not timeout:
        return None, None
    if ephemeral and timeout > settings.VIBEBOX_EPHEMERAL_MAX_TIMEOUT:
        limit = int(settings.VIBEBOX_EPHEMERAL_MAX_TIMEOUT)
        raise errors.EphemeralTimeoutTooLong(
            f"An ephemeral sandbox lives at most {limit} seconds; ask for less, or create it not ephemeral.",
            details={"max": limit, "requested": int(timeout)},
        )
    if timeout > settings.VIBEBOX_MAX_TIMEOUT:
        raise errors.InvalidDuration(
            f"timeout is above the maximum of {int(settings.VIBEBOX_MAX_TIMEOUT)} seconds.",
            details={"max": int(settings.VIBEBOX_MAX_TIMEOUT)},
        )
    seconds = max(1, int(timeout))
    return seconds, timezone.now() + dt.timedelta(seconds=seconds)


def _ephemeral_resources(cpu: float, memory: int) -> None:
    """An ephemeral sandbox's CPU and memory under VIBEBOX_EPHEMERAL_MAX_CPU / _MEMORY (0: the
    general maximum, checked by _resources)."""
    too_much = {}
    if settings.VIBEBOX_EPHEMERAL_MAX_CPU and cpu > settings.VIBEBOX_EPHEMERAL_MAX_CPU:
        too_much["cpu"] = {"max": settings.VIBEBOX_EPHEMERAL_MAX_CPU, "requested": cpu}
    if settings.VIBEBOX_EPHEMERAL_MAX_MEMORY and memory > settings.VIBEBOX_EPHEMERAL_MAX_MEMORY:
        too_much["memory"] = {"max": settings.VIBEBOX_EPHEMERAL_MAX_MEMORY, "requested": memory}
    if too_much:
        shown = {
            "cpu": lambda v: f"{v:g} CPU",
            "memory": lambda v: format_size(v),
        }
        raise errors.EphemeralResourcesTooLarge(
            "Ephemeral sandboxes get at most "
            + " and ".join(shown[k](v["max"]) for k, v in too_much.items())
            + " on this server.",
            details=too_much,
        )


def _ephemeral_count(org) -> None:
    """At most VIBEBOX_EPHEMERAL_MAX_PER_ORG live ephemeral sandboxes per organization (called
    under the organization's lock, quotas.lock_org, so two creates cannot both take the last)."""
    limit = settings.VIBEBOX_EPHEMERAL_MAX_PER_ORG
    if not limit:
        return
    live = Sandbox.objects.filter(org=org, ephemeral=True, status__in=states.ALIVE).count()
    if live >= limit:
        raise errors.EphemeralLimitReached(
            f"The organization has {live} live ephemeral sandboxes, the most this server allows "
            "(VIBEBOX_EPHEMERAL_MAX_PER_ORG); destroy one first.",
            details={"limit": limit, "live": live},
        )


TEMPLATE_POLL_INTERVAL = 1.0


def _template(ref: str, *, org=None, wait: bool = False) -> tuple[Template, str, str]:
    """The template a create names (`name` or `name@version`, visible to `org`), its version
    ("" for built-ins) and the image to start. A pin of a yanked version is 400
    template_version_yanked; of an unknown one 400 unknown_template_version (details.versions)."""
    name, pin = split_pin(ref)
    template = template_find(name, org=org)
    if template is None:
        known = sorted(  # every name a create accepts, aliases too
            {n for t in template_list(org) for n in [t.name, *(t.aliases or [])]}
        )
        suggestions = template_suggestions(name, org=org)
        hint = f" Did you mean {', '.join(suggestions)}?" if suggestions else ""
        raise errors.UnknownTemplate(
            f"Unknown template {name!r}.{hint}",
            details={"template": name, "available": known, "suggestions": suggestions},
        )
    version, image = "", ""
    if pin or template.owner_org_id is not None:  # a marketplace template has versions
        version, image = _template_version(template, pin, org=org)
    elif not template.image:
        template = _wait_for_image(template, wait=wait)
    if template.runtime not in settings.VIBEBOX_ALLOWED_RUNTIMES:
        raise errors.TemplateUnavailable(f"Template {name!r} needs runtime {template.runtime!r}, not allowed here.")
    if set(template.cap_add) - set(settings.VIBEBOX_ALLOWED_CAPABILITIES):
        raise errors.TemplateUnavailable(f"Template {name!r} asks for capabilities this server does not allow.")
    return template, version, image or template.image


def _template_version(template: Template, pin: str, *, org=None) -> tuple[str, str]:
    """(version, image) of a marketplace template: the pinned published version (of another
    organization's public template: a reviewed one), or its latest."""
    if not pin and template.latest_version:
        return template.latest_version, template.image
    if not pin:  # every version was yanked
        raise errors.TemplateVersionYanked(
            f"Every version of {template.name} was yanked.",
            details={"template": template.name, "version": "", "latest": "", "versions": []},
        )
    if template.owner_org_id is None:
        raise errors.UnknownTemplateVersion(
            f"{template.name} is a built-in template: it has no versions to pin.",
            details={"template": template.name, "version": pin, "versions": []},
        )
    row = version_resolve(template, pin, org=org)
    if row is None:
        versions = published_versions(template, org=org)
        raise errors.UnknownTemplateVersion(
            f"{template.name} has no version {pin!r}; published: {', '.join(versions) or 'none'}.",
            details={"template": template.name, "version": pin, "versions": versions},
        )
    if row.yanked:
        raise errors.TemplateVersionYanked(
            f"{template.name}@{pin} was yanked{': ' + row.yank_reason if row.yank_reason else ''}; "
            f"the latest is {template.latest_version or 'none'}.",
            details={
                "template": template.name,
                "version": pin,
                "reason": row.yank_reason,
                "latest": template.latest_version,
                "versions": published_versions(template, org=org),
            },
        )
    return row.version, row.image


def _wait_for_image(template: Template, *, wait: bool) -> Template:
    """A template whose first image is not built yet: 503 template_building (with Retry-After),
    or, when the caller asked to wait, the template once built (up to VIBEBOX_TEMPLATE_WAIT)."""
    deadline = time.monotonic() + (settings.VIBEBOX_TEMPLATE_WAIT if wait else 0)
    while True:
        template.refresh_from_db()
        if template.image and template.build_state == BuildState.READY:
            return template
        if template.build_state == BuildState.FAILED:
            raise errors.TemplateUnavailable(
                f"Building template {template.name!r} failed: {template.build_message}"[:1000],
                details={"template": template.name, "buildState": template.build_state},
            )
        if time.monotonic() >= deadline:
            retry_after = int(settings.VIBEBOX_TEMPLATE_RETRY_AFTER)
            raise errors.TemplateBuilding(
                f"Template {template.name!r} is still being built ({template.build_state}); "
                f'retry in {retry_after}s or send "wait": true.',
                details={
                    "template": template.name,
                    "buildState": template.build_state,
                    "progress": template.build_progress or {},
                    "retryAfter": retry_after,
                },
                headers={"Retry-After": str(retry_after)},
            )
        time.sleep(TEMPLATE_POLL_INTERVAL)


# ---- engine-side names ----


def _remove_quietly(sandbox: Sandbox) -> None:
    driver_for(sandbox).egress_rules_remove(sandbox.container_name, network_name())
    try:
        driver_for(sandbox).remove(sandbox.container_name, volume=sandbox.volume_name)
    except errors.ApplicationError as exc:  # the reconciler removes it later by label
        logger.warning("could not remove container of %s: %s", sandbox.id, exc.message)


# ---- lifecycle ----


def sandbox_create_from(*, actor, owner, api_key, data: dict) -> Sandbox:
    """A sandbox from the create body's validated fields (api.serializers.SandboxCreateSerializer):
    REST's and GraphQL's. `data["snapshot"]` is a snapshot id the actor may read."""
    return sandbox_create(
        owner=owner,
        org=actor.org,
        api_key=api_key,
        template=data.get("template"),
        snapshot=selectors.snapshot_get(actor=actor, snapshot_id=data["snapshot"]) if data.get("snapshot") else None,
        name=data.get("name"),
        auto_start=data["autoStart"],
        ephemeral=data["ephemeral"],
        timeout=data.get("timeout"),
        env=data.get("env"),
        metadata=data.get("metadata"),
        resources=data.get("resources"),
        git_spec=data.get("git"),
        auto_pause=data.get("autoPause"),
        auto_resume=data["autoResume"],
        pause_stops_timeout=data["pauseStopsTimeout"],
        wait=data["wait"],
        network_policy=data.get("network"),
        node_labels=data.get("nodeLabels"),
    )


@tracing.traced("sandbox.create")
def sandbox_create(
    *,
    owner,
    template: str,
    org=None,
    name: str | None = None,
    auto_start: bool = True,
    ephemeral: bool = False,
    timeout: float | None = None,
    env: dict | None = None,
    metadata: dict | None = None,
    resources: dict | None = None,
    git_spec=None,
    api_key=None,
    auto_pause: float | None = None,
    auto_resume: bool = False,
    pause_stops_timeout: bool = False,
    snapshot=None,
    wait: bool = False,
    template_version=None,
    network_policy: dict | None = None,
    node_labels: dict | None = None,
) -> Sandbox:
    """Creates and (unless auto_start is false) starts a sandbox; with `git_spec`, the sandbox
    is `running` only once the repository is cloned, and a failed clone undoes the create. It
    belongs to `org` (default: the one `api_key` acts in, else the owner's personal one). A
    template whose image is still building answers 503 template_building unless `wait`.
    `template_version` (internal: the marketplace pipeline's smoke test) is a TemplateVersion,
    maybe a candidate of an inactive template: the sandbox runs its image, never from a pool.
    `network_policy`: the create's egress policy keys (services/network.py), over the template's
    and the organization's. `node_labels`: only an engine with all of them takes it, and with those
    its template, its organization and its snapshot require (merged, kept on the sandbox; one key
    asked with two values: 400 node_labels_conflict; no engine with them: 400 no_matching_node:
    docs/nodes.md, "Placement")."""
    started = time.perf_counter()
    org = org or acting_org(user=owner, key=api_key)
    if template_version is not None:
        tmpl, version, image = template_version.template, template_version.version, template_version.image
    else:
        tmpl, version, image = _template(snapshot.template.name if snapshot else template, org=org, wait=wait)
    if snapshot and template and split_pin(template)[0] not in [tmpl.name, *(tmpl.aliases or [])]:
        raise errors.ValidationFailed(
            "The snapshot is of another template.", details={"fields": {"template": [f"the snapshot's is {tmpl.name}"]}}
        )
    if name is not None:
        validate_name(name)
    env = prepare_env(env or {})
    metadata = validate_metadata(metadata or {})
    cpu, memory, disk = _resources(resources)
    if ephemeral:
        _ephemeral_resources(cpu, memory)
    timeout_seconds, expires_at = _expiry(timeout, ephemeral)
    clone = git.parse_spec(git_spec) if git_spec is not None else None
    if template_version is not None:
        # A submission's smoke test runs where its candidate image was built, the local engine,
        # whatever labels the template or its organization require of the sandboxes made from it.
        labels = {}
    else:
        labels = labels_merge(
            ("request", check_labels(node_labels) if node_labels else None),
            ("template", tmpl.node_labels),
            ("organization", getattr(org, "node_labels", None)),
            ("snapshot", snapshot.node_labels if snapshot else None),
        )
    requested = validate_network(network_policy, partial=True) if network_policy is not None else None
    policy = network.network_resolve(org=org, template=tmpl, requested=requested)
    if restricted(policy) and not network.firewall_available():
        raise errors.EgressUnavailable()
    if snapshot:
        snapshots.check_usable(snapshot)  # 409 snapshot_unusable before anything is made
    # Pooled containers have the default disk (container_spec): a create asking for that one fits.
    poolable = not (snapshot or template_version) and pools.poolable(
        auto_start=auto_start, disk=None if disk == default_disk() else disk
    )
    pool = pools.pool_for(tmpl, cpu=cpu, memory=memory) if poolable else None
    warm = pool is not None
    # The engines that may take it (engine calls, cached; with no node registered one query): before
    # the transaction, which then only counts and picks (docs/nodes.md, "Placement").
    engines = placement.placement_candidates(
        image=snapshot.image if snapshot else image, snapshot=snapshot, policy=policy, disk=disk, labels=labels or None
    )

    try:
        with transaction.atomic():
            # Serialises this owner's and this organization's creates (and the organization's
            # starts and resumes), so the quota checks cannot be raced.
            get_user_model().objects.select_for_update().filter(pk=owner.pk).first()
            quotas.lock_org(org.pk if org else None)
            live = Sandbox.objects.filter(owner=owner, status__in=states.ALIVE)
            quotas.check_sandbox(owner, cpu=cpu, memory=memory, disk=disk)
            if ephemeral:
                _ephemeral_count(org)
            starts = bool(auto_start)  # (a pooled container: auto_start too)
            quotas.request_work(
                org_id=org.pk if org else None,
                action="create",
                user=owner,
                running=1 if starts else 0,
                cpu=cpu if starts else 0,
                memory=memory if starts else 0,
                disk=disk or 0,
            )
            if name is not None and live.filter(name=name).exists():
                raise errors.SandboxNameTaken(details={"name": name})
            node = placement.node_pick(engines, memory=memory, cpu=cpu)  # the chosen node's row locked until commit
            sandbox = Sandbox(
                owner=owner,
                org=org,
                api_key=api_key,
                template=tmpl,
                template_version=version,
                image=snapshot.image if snapshot else image,
                ephemeral=ephemeral,
                timeout_seconds=timeout_seconds,
                expires_at=expires_at,
                cpu=cpu,
                memory=memory,
                disk=disk,
                env=env,
                metadata=metadata,
                network=policy,
                auto_pause_seconds=_auto_pause(auto_pause),
                auto_resume=auto_resume,
                pause_stops_timeout=pause_stops_timeout,
                node=node,  # None: the local engine
                node_labels=labels,
            )
            # Only a container of the very image this create resolved (the template's newest version
            # for a bare name, the pinned one's for a pin): a pooled container of an older version
            # (warmed before a publish the pool has not caught up with) never serves it.
            # From the picked engine's pool only (placement first: a warm hit never overrides it).
            pooled = pools.pool_claim(pool, image=image, node=node) if warm else None
            if pooled is not None:  # a started container, ready: it becomes this sandbox
                sandbox.id, sandbox.warm, sandbox.container_id = pooled.id, True, pooled.container_id
                sandbox.status = Status.CREATING if clone else Status.RUNNING
                sandbox.started_at = timezone.now()
            sandbox.name = name or f"{tmpl.name}-{sandbox.id[4:12].lower()}"
            sandbox.save(force_insert=True)
            logs.note(sandbox_id=sandbox.id)  # the request's log lines name it from here on
            if template_version is None:  # a smoke test's sandbox is not a use
                template_use_record(template=tmpl, version=version, org=sandbox.org, user=owner)
    except IntegrityError:
        raise errors.SandboxNameTaken(details={"name": name}) from None
    if warm:
        transaction.on_commit(lambda: pools.refill_soon(pool, node))
    if sandbox.warm and not _pooled_alive(sandbox):
        # It died in the pool since its last health check: a cold container takes its place.
        _remove_quietly(sandbox)
        fields = {"warm": False, "container_id": "", "started_at": None, "status": Status.CREATING}
        Sandbox.objects.filter(pk=sandbox.pk).update(**fields)
        for field, value in fields.items():
            setattr(sandbox, field, value)
    if sandbox.warm and not clone:
        try:
            network.network_apply(sandbox)  # its egress policy, before anything of the sandbox's runs
        except BaseException:
            _remove_quietly(sandbox)
            Sandbox.objects.filter(pk=sandbox.pk).delete()
            raise
        template_services_start(sandbox)
        _publish_created(sandbox)
        _announce_created(sandbox)
        _observe_create(sandbox, started)
        return sandbox

    driver = driver_for(sandbox)
    try:
        if not sandbox.warm:
            driver.ensure_network(network_name(), base_labels())
            if snapshot and sandbox.node_id != snapshot.node_id:  # its engine was full or draining
                snapshot_image_ship(snapshot=snapshot, node=sandbox.node)
            info = driver.create(sandbox_spec(sandbox))
            if auto_start or clone or snapshot:
                info = driver.start(sandbox.container_name)
        if auto_start or clone or snapshot or sandbox.warm:
            network.network_apply(sandbox)  # its egress policy, before anything of the sandbox's runs
        if snapshot:
            snapshots.restore_workspace(sandbox, snapshot)
        if auto_start or sandbox.warm:
            template_services_start(sandbox)
        if clone:
            _initial_clone(sandbox, clone)
        if (clone or snapshot) and not auto_start:
            info = driver.stop(sandbox.container_name, settings.VIBEBOX_STOP_TIMEOUT)
            network.network_release(sandbox)
    except BaseException:
        # Nothing half-made: no container, no volume, no row.
        _remove_quietly(sandbox)
        Sandbox.objects.filter(pk=sandbox.pk).delete()
        raise
    if sandbox.warm:
        with transaction.atomic():
            states.move(sandbox, {Status.CREATING}, Status.RUNNING)
            _publish_created(sandbox)
        _announce_created(sandbox)
        _observe_create(sandbox, started)
        return sandbox

    now = timezone.now()
    fields = {"container_id": info.id}
    if auto_start:
        fields["started_at"] = now
    with transaction.atomic():  # the move, its entries and its webhook deliveries together
        moved = states.move(sandbox, {Status.CREATING}, Status.RUNNING if auto_start else Status.STOPPED, **fields)
        if moved:
            _publish_created(sandbox)
    if not moved:
        # Destroyed while we were creating it: the destroy may have run before the container
        # existed, so make sure it is gone.
        _remove_quietly(sandbox)
    else:
        _announce_created(sandbox)
        _observe_create(sandbox, started)
    return sandbox


def _announce_created(sandbox: Sandbox) -> None:
    """Higher apps finish the create (agents: Claude Code when the template auto-starts it). If
    one refuses, the sandbox is destroyed and its error is the create's answer."""
    if sandbox.status != Status.RUNNING:
        return
    try:
        signals.sandbox_created.send(sender=Sandbox, sandbox=sandbox, api_key=sandbox.api_key)
    except BaseException:
        try:
            sandbox_destroy(sandbox=sandbox)
        except errors.ApplicationError as exc:  # the reconcile pass finishes it
            logger.warning("could not undo the create of %s: %s", sandbox.id, exc.message)
        raise


def _observe_create(sandbox: Sandbox, started: float) -> None:
    """vibebox_sandbox_create_seconds: the create's whole time, warm (a pool's container) or cold."""
    source = "warm" if sandbox.warm else "cold"
    metrics.SANDBOX_CREATE_SECONDS.labels(sandbox.template.name, source).observe(time.perf_counter() - started)


def _pooled_alive(sandbox: Sandbox) -> bool:
    """Whether the pooled container a create took is still running (one inspect). If the engine
    cannot tell, the create fails like a cold one: no row, the container removed if possible."""
    try:
        info = driver_for(sandbox).inspect(sandbox.container_name)
    except BaseException:
        _remove_quietly(sandbox)
        Sandbox.objects.filter(pk=sandbox.pk).delete()
        raise
    return info is not None and info.status == "running"


def _publish_created(sandbox: Sandbox) -> None:
    data = {"template": sandbox.template.name, "name": sandbox.name, "warm": sandbox.warm}
    record(
        "sandbox.created",
        target=sandbox,
        changes={
            **data,
            "image": sandbox.image,
            "resources": {"cpu": sandbox.cpu, "memory": sandbox.memory, "disk": sandbox.disk},
            "ephemeral": sandbox.ephemeral,
            "timeout": sandbox.timeout_seconds,
            "env": sorted(sandbox.env),  # names only
            "network": sandbox.network,
            **({"nodeLabels": sandbox.node_labels} if sandbox.node_labels else {}),
        },
    )
    events.publish(sandbox=sandbox, type="sandbox.created", data=data)
    if sandbox.status == Status.RUNNING:
        events.publish(sandbox=sandbox, type="sandbox.started")


def _initial_clone(sandbox: Sandbox, spec: dict) -> None:
    try:
        git.git_clone(
            sandbox=sandbox,
            url=spec["url"],
            branch=spec.get("branch"),
            path=spec.get("path"),
            depth=spec.get("depth"),
            auth=spec.get("auth"),
            creating=True,
        )
    except (errors.GitCloneFailed, errors.GitAuthFailed, errors.GitFailed) as exc:
        if spec.get("failOnError", True):
            raise errors.GitCloneFailed(exc.message, details=exc.details) from None
        Sandbox.objects.filter(pk=sandbox.pk).update(status_reason=f"git clone failed: {exc.message}"[:500])


def sandbox_destroy(*, sandbox: Sandbox, expired: bool = False) -> Sandbox:
    """Removes container and workspace. Idempotent: destroying a destroyed sandbox is a no-op.
    `expired` (the reconcile pass: its timeout passed) adds `sandbox.expired` after
    `sandbox.destroyed`, in the same transaction.

    If the engine is unreachable the row stays `destroying` and the reconciler finishes it. An
    `unreachable` sandbox (its node is down) is left `destroying` at once: reconcile finishes it when
    the node returns (docs/nodes.md).
    """
    if sandbox.status == Status.DESTROYED:
        return sandbox
    before = states.claim(sandbox, states.DESTROY_FROM, Status.DESTROYING, "destroy")
    api_keys_revoke_for_sandbox(sandbox_id=sandbox.id)  # keys made for it (Claude's MCP key) die first
    if before == Status.UNREACHABLE:
        return sandbox
    announce_leaving(sandbox, before)
    driver_for(sandbox).remove(sandbox.container_name, volume=sandbox.volume_name)
    network.network_release(sandbox)
    with transaction.atomic():  # the move, its entry and its webhook deliveries together
        states.move(sandbox, {Status.DESTROYING}, Status.DESTROYED, destroyed_at=timezone.now())
        GitHook.objects.filter(sandbox=sandbox).delete()  # its webhook URLs (and secrets) go with it: a push is a 404
        record("sandbox.destroyed", target=sandbox, changes={"name": sandbox.name})
        events.publish(sandbox=sandbox, type="sandbox.destroyed")
        if expired:
            events.publish(sandbox=sandbox, type="sandbox.expired", text="sandbox expired (destroyed)")
    return sandbox


def _auto_pause(seconds: float | None) -> int | None:
    if seconds is None or seconds == 0:
        return None
    if seconds < settings.VIBEBOX_AUTO_PAUSE_MIN:
        raise errors.InvalidDuration(
            f"autoPause must be at least {int(settings.VIBEBOX_AUTO_PAUSE_MIN)} seconds.",
            details={"min": int(settings.VIBEBOX_AUTO_PAUSE_MIN)},
        )
    return int(seconds)


def sandbox_update(
    *,
    sandbox: Sandbox,
    name=UNSET,
    metadata=UNSET,
    timeout=UNSET,
    auto_pause=UNSET,
    auto_resume=UNSET,
    pause_stops_timeout=UNSET,
) -> Sandbox:
    """Renames, replaces metadata, resets the time to live (`timeout` from now; None clears it),
    or changes the pause settings (`auto_pause` None or 0 turns auto-pause off)."""
    fields = {}
    if auto_pause is not UNSET:
        fields["auto_pause_seconds"] = _auto_pause(auto_pause)
    if auto_resume is not UNSET:
        fields["auto_resume"] = bool(auto_resume)
    if pause_stops_timeout is not UNSET:
        fields["pause_stops_timeout"] = bool(pause_stops_timeout)
    if name is not UNSET:
        fields["name"] = validate_name(name)
    if metadata is not UNSET:
        fields["metadata"] = validate_metadata(metadata)
    if timeout is not UNSET:
        if not timeout and sandbox.ephemeral:
            raise errors.InvalidDuration("An ephemeral sandbox always has a timeout.")
        fields["timeout_seconds"], fields["expires_at"] = _expiry(timeout, sandbox.ephemeral)
    if not fields:
        return sandbox
    try:
        with transaction.atomic():
            if "name" in fields and (
                Sandbox.objects.filter(owner=sandbox.owner, name=fields["name"], status__in=states.ALIVE)
                .exclude(pk=sandbox.pk)
                .exists()
            ):
                raise errors.SandboxNameTaken(details={"name": fields["name"]})
            updated = Sandbox.objects.filter(pk=sandbox.pk, status__in=list(states.UPDATE_FROM)).update(**fields)
    except IntegrityError:
        raise errors.SandboxNameTaken(details={"name": fields.get("name")}) from None
    sandbox.refresh_from_db()
    if not updated:
        raise errors.SandboxStateConflict(f"Cannot update a sandbox that is {sandbox.status}.")
    record("sandbox.updated", target=sandbox, changes={field: getattr(sandbox, field) for field in fields})
    return sandbox


def sandboxes_destroy_ephemeral_of_key(*, key_id) -> list[str]:
    """Ephemeral sandboxes die with the API key that created them (called when it is revoked)."""
    destroyed = []
    for sandbox in Sandbox.objects.filter(api_key_id=key_id, ephemeral=True, status__in=states.ALIVE):
        try:
            sandbox_destroy(sandbox=sandbox)
            destroyed.append(sandbox.id)
        except errors.ApplicationError as exc:  # the reconcile pass tries again
            logger.warning("could not destroy %s of a revoked key: %s", sandbox.id, exc.message)
    return destroyed
