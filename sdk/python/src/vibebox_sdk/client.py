"""`VibeBox`: the sync client.

from vibebox_sdk import VibeBox
vb = VibeBox()                                     # VIBEBOX_API_KEY / VIBEBOX_API_URL, or ~/.config/vibebox
with vb.with_sandbox("python-3") as sandbox:
    print(sandbox.run("print(6 * 7)").stdout)      # 42
"""

from __future__ import annotations

import contextlib
import copy
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Self, TypeVar

from . import calls, config, errors
from .durations import Duration
from .marketplace import Marketplace
from .models import ExecutionResult, SandboxInfo, Snapshot, Template
from .namespaces import Billing, Invitations, Keys, Orgs, Webhooks
from .sandbox import Sandbox
from .transport import AsyncTransport, RetryPolicy, SyncTransport

T = TypeVar("T")
PAGE = 100


def create_fields(
    template: str | None,
    *,
    name: str | None = None,
    auto_start: bool | None = None,
    ephemeral: bool | None = None,
    timeout: Duration | None = None,
    git: str | dict[str, Any] | None = None,
    env: dict[str, Any] | None = None,
    metadata: dict[str, str] | None = None,
    resources: dict[str, Any] | None = None,
    snapshot: str | Snapshot | None = None,
    auto_pause: Duration | None = None,
    auto_resume: bool | None = None,
    pause_stops_timeout: bool | None = None,
    wait: bool | None = None,
    network: dict[str, Any] | None = None,
    node_labels: dict[str, str] | None = None,
) -> dict[str, Any]:
    if isinstance(git, dict):
        git = calls.body(**git)
    return {
        "auto_pause": auto_pause,
        "auto_resume": auto_resume,
        "pause_stops_timeout": pause_stops_timeout,
        "template": template,
        "name": name,
        "auto_start": auto_start,
        "ephemeral": ephemeral,
        "timeout": timeout,
        "git": git,
        "env": env,
        "metadata": metadata,
        "resources": resources,
        "snapshot": snapshot.id if isinstance(snapshot, Snapshot) else snapshot,
        "wait": wait,
        "network": network,
        "node_labels": node_labels,
    }


def list_params(
    status: str | list[str] | None, template: str | None, name: str | None, metadata: dict[str, str] | None
) -> dict[str, Any]:
    params: dict[str, Any] = {
        "status": ",".join(status) if isinstance(status, list) else status,
        "template": template,
        "name": name,
    }
    params.update({f"metadata.{k}": v for k, v in (metadata or {}).items()})
    return params


class ClientCore:
    """What the sync and async clients share: settings, the transport, per-call options, keys and
    organizations, webhooks, the template marketplace."""

    transport_class: type[SyncTransport] | type[AsyncTransport]
    orgs_class: type[Orgs] = Orgs
    webhooks_class: type[Webhooks] = Webhooks
    billing_class: type[Billing] = Billing
    marketplace_class: type[Marketplace] = Marketplace

    def __init__(
        self,
        api_key: str | None = None,
        base_url: str | None = None,
        *,
        timeout: float = 60.0,
        max_retries: int = 3,
        headers: dict[str, str] | None = None,
    ) -> None:
        key, url = config.credentials(api_key, base_url)
        self.api_key = key
        self.base_url = url
        retry = RetryPolicy(max_retries=max_retries)
        self._transport = self.transport_class(url, key, timeout=timeout, retry=retry, headers=headers)
        self._namespaces()

    def _namespaces(self) -> None:
        self.keys = Keys(self._transport.send)
        self.orgs = self.orgs_class(self._transport.send)
        self.invitations = Invitations(self._transport.send)
        self.webhooks = self.webhooks_class(self._transport.send)
        self.billing = self.billing_class(self._transport.send)
        self.marketplace = self.marketplace_class(self._transport.send, base_url=self.base_url, api_key=self.api_key)

    def with_options(self, *, timeout: float | None = None, max_retries: int | None = None) -> Self:
        """The same client (same connections) with another timeout or retry count, for some calls:

        vb.with_options(timeout=5, max_retries=0).get("my-dev")
        """
        clone = copy.copy(self)
        clone._transport = self._transport.with_options(timeout=timeout, max_retries=max_retries)
        clone._namespaces()
        return clone


class VibeBox(ClientCore):
    """A connection to a VibeBox server.

    Args:
        api_key: the key (`vb_live_…`); default `VIBEBOX_API_KEY`, then the CLI's config file.
        base_url: the server; default `VIBEBOX_API_URL`, then the config file, then http://127.0.0.1:8000.
        timeout: seconds to wait for an answer (calls that run commands wait for the command's own
            timeout plus 30 s).
        max_retries: more attempts on 429, 502, 503 and failed connections (with backoff and jitter).
    """

    transport_class = SyncTransport

    def __enter__(self) -> VibeBox:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._transport.close()

    def _wrap(self, info: SandboxInfo) -> Sandbox:
        return Sandbox(self, info)

    # Sandboxes

    def create(self, template: str | None = None, **options: Any) -> Sandbox:
        """Creates a sandbox (and starts it, unless `auto_start=False`).

        Options: `name`, `auto_start`, `ephemeral`, `timeout` ("2h"), `git` (a URL or
        {"url", "branch", "path", "depth", "auth"}), `env`, `metadata`, `resources`
        ({"cpu": 1, "memory": "1g"}), `snapshot` (a Snapshot or its id: `template` may then be
        left out), `auto_pause` ("10m" idle), `auto_resume`, `pause_stops_timeout`, `wait` (True: if
        the template's image is still being built, the server waits for it, up to its
        VIBEBOX_TEMPLATE_WAIT, instead of raising `TemplateBuildingError`), `network` (the egress
        policy: {"internet": False, "allow": ["pypi.org", "*.npmjs.org", "140.82.112.0/20"],
        "deny": [...]}; keys left out come from the template's and the organization's defaults),
        `node_labels` ({"region": "eu"}: only an engine of the server with all these labels runs it;
        `NoMatchingNodeError` when none has them).
        """
        return self._wrap(self._transport.send(calls.create_sandbox(create_fields(template, **options))))

    def sandbox(self, template: str, **options: Any) -> Sandbox:
        """The one-liner: create and start a sandbox from `template`."""
        return self.create(template, auto_start=True, **options)

    def get(self, sandbox_id: str) -> Sandbox:
        """A sandbox by id (`sbx_…`) or name; `SandboxNotFoundError` when there is none of yours."""
        return self._wrap(self._transport.send(calls.get_sandbox(sandbox_id)))

    def list(
        self,
        *,
        status: str | list[str] | None = None,
        template: str | None = None,
        name: str | None = None,
        metadata: dict[str, str] | None = None,
        limit: int | None = None,
    ) -> list[Sandbox]:
        """Your sandboxes (all pages, or the first `limit`), newest first; destroyed ones only when
        `status` asks for them."""
        return list(self.iter(status=status, template=template, name=name, metadata=metadata, limit=limit))

    def iter(
        self,
        *,
        status: str | list[str] | None = None,
        template: str | None = None,
        name: str | None = None,
        metadata: dict[str, str] | None = None,
        limit: int | None = None,
    ) -> Iterator[Sandbox]:
        params = list_params(status, template, name, metadata)
        offset, seen = 0, 0
        while True:
            page, _, more = self._transport.send(calls.list_sandboxes({**params, "limit": PAGE, "offset": offset}))
            for info in page:
                if limit is not None and seen >= limit:
                    return
                seen += 1
                yield self._wrap(info)
            if not more or not page:
                return
            offset += len(page)

    def create_many(self, specs: list[dict[str, Any]], *, max_workers: int = 8) -> list[Sandbox]:
        """Creates several sandboxes in parallel, in the order given. If any fails, the others are
        destroyed and the first error is raised."""
        with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(specs) or 1))) as pool:
            futures = [pool.submit(lambda spec=spec: self.create(**spec)) for spec in specs]
            outcomes = [(f.result() if not f.exception() else f.exception()) for f in futures]
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        if failures:
            self.destroy_all([o for o in outcomes if isinstance(o, Sandbox)])
            raise failures[0]
        return outcomes  # type: ignore[return-value]

    def destroy_all(self, sandboxes: list[Sandbox] | None = None, *, max_workers: int = 8) -> int:
        """Destroys the given sandboxes (default: all of yours) in parallel; answers how many."""
        targets = list(self.iter()) if sandboxes is None else list(sandboxes)
        if not targets:
            return 0
        with ThreadPoolExecutor(max_workers=max(1, min(max_workers, len(targets)))) as pool:
            list(pool.map(lambda sandbox: sandbox.destroy(), targets))
        return len(targets)

    @contextlib.contextmanager
    def with_sandbox(self, template: str, **options: Any) -> Iterator[Sandbox]:
        """A sandbox for the `with` block, destroyed at its end, also when the block raises."""
        sandbox = self.create(template, **options)
        try:
            yield sandbox
        finally:
            with contextlib.suppress(errors.NotFoundError):
                sandbox.destroy()

    def ephemeral(self, template: str, timeout: Duration = "30m", **options: Any) -> Sandbox:
        """A sandbox the server destroys by itself after `timeout`."""
        return self.create(template, ephemeral=True, timeout=timeout, **options)

    def with_ephemeral(
        self, template: str, fn: Callable[[Sandbox], T], *, timeout: Duration = "15m", **options: Any
    ) -> T:
        """Calls `fn(sandbox)` with an ephemeral sandbox, destroyed as soon as `fn` returns or raises."""
        with self.with_sandbox(template, ephemeral=True, timeout=timeout, **options) as sandbox:
            return fn(sandbox)

    def run_once(
        self,
        template: str,
        code: str,
        *,
        language: str | None = None,
        timeout: Duration | None = None,
        check: bool = True,
        **options: Any,
    ) -> ExecutionResult:
        """Runs a command or code snippet in a fresh ephemeral sandbox, destroyed afterwards."""

        def run(sandbox: Sandbox) -> ExecutionResult:
            return sandbox.run(code, language=language, timeout=timeout, check=check)

        return self.with_ephemeral(template, run, **options)

    # Snapshots

    def snapshots(self) -> list[Snapshot]:
        """All your snapshots, newest first (they outlive their sandboxes)."""
        return self._transport.send(calls.all_snapshots())

    def snapshot(self, snapshot_id: str) -> Snapshot:
        return self._transport.send(calls.get_snapshot(snapshot_id))

    def delete_snapshot(self, snapshot: Snapshot | str) -> None:
        self._transport.send(calls.delete_snapshot(snapshot.id if isinstance(snapshot, Snapshot) else snapshot))

    # Templates, health

    def templates(self) -> list[Template]:
        return self._transport.send(calls.templates())

    def template(self, name: str) -> Template:
        return self._transport.send(calls.template(name))

    def status(self) -> dict[str, Any]:
        """`GET /api/v1/status` (no key needed): {"status": "ok" | "degraded" | "down", "components":
        [{"name", "status", "message"}], "checked_at"} for the API, engine, Redis, workers, gateway, pools."""
        return self._transport.send(calls.platform_status())

    def slo(self) -> dict[str, Any]:
        """`GET /api/v1/status/slo` (a staff user's key): each SLO's objective, SLI over its window,
        error budget remaining and burn rates (`PermissionDeniedError` for others)."""
        return self._transport.send(calls.slo_report())

    def health(self) -> dict[str, Any]:
        """`/readyz`: {"status": "ok" | "unavailable", "checks": {...}, "status_code": 200 | 503}."""
        return self._transport.send(calls.health())
