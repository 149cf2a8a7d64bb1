"""Auto-pull webhooks (product spec 1.3, docs/api.md "Auto-pull webhooks").

A hook belongs to one repository of one sandbox (`path`) and tracks one branch. Its URL
(POST /api/v1/git-hooks/{id}) is what a git host's push webhook calls; the request carries no API
key, only the provider's proof that it knows the hook's secret:

- GitHub: `X-Hub-Signature-256: sha256=<hex HMAC-SHA256 of the body>`;
- Gitea (and Forgejo): `X-Gitea-Signature: <hex HMAC-SHA256 of the body>`;
- GitLab: `X-Gitlab-Token: <the secret itself>`.

Everything in the request is the caller's: it is checked against the secret (constant-time)
before any of it is read, and then only `ref` and `after` are taken from the payload. The pull
itself fetches the branch from the repository's own remote (never a URL or commit from the
payload) and runs in Celery (tasks.git_hook_pull), so the answer comes at once. A delivery is
refused as a replay when its delivery id or its exact body was seen before for the hook.
"""

import hashlib
import hmac
import logging
import secrets
from collections.abc import Callable
from urllib.parse import parse_qs

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Q
from django.utils import timezone

from apps.audit import services as audit
from vibebox import crypto, safejson
from vibebox import exceptions as errors
from vibebox.celery import app as celery_app

from .. import events
from ..models import GitHook, GitHookDelivery, Sandbox, SandboxGitConfig, Status
from . import git
from .exec import require_running

logger = logging.getLogger(__name__)

Provider = GitHook.Provider
PUSH_EVENTS = {Provider.GITHUB: "push", Provider.GITEA: "push", Provider.GITLAB: "Push Hook"}
EVENT_HEADERS = {Provider.GITHUB: "X-GitHub-Event", Provider.GITEA: "X-Gitea-Event", Provider.GITLAB: "X-Gitlab-Event"}
DELIVERY_HEADERS = {
    Provider.GITHUB: "X-GitHub-Delivery",
    Provider.GITEA: "X-Gitea-Delivery",
    Provider.GITLAB: "X-Gitlab-Event-UUID",
}
ZERO = "0" * 40


def _secret() -> str:
    return "vbgh_" + secrets.token_urlsafe(32)  # 256 bits


# ---- hooks (the sandbox's owner, through the API) ----


def git_hook_create(*, sandbox: Sandbox, path=None, branch=None, provider: str = Provider.AUTO, user=None):
    """Answers (hook, secret): the secret is shown this once."""
    target = git.repo_path(path)
    if provider not in Provider.values:
        raise errors.ValidationFailed(
            f"provider is one of {', '.join(Provider.values)}.", details={"provider": str(provider)[:50]}
        )
    if not branch:  # the branch the repository was cloned at through the API
        config = SandboxGitConfig.objects.filter(sandbox=sandbox, path=target).first()
        branch = config.branch if config else ""
        if not branch:
            raise errors.ValidationFailed(
                "Name the branch to track: the repository was not cloned through the API.", details={"path": target}
            )
    git.check_ref(branch)
    with transaction.atomic():
        Sandbox.objects.select_for_update().filter(pk=sandbox.pk).first()  # the count below holds
        if GitHook.objects.filter(sandbox=sandbox).count() >= settings.VIBEBOX_GIT_HOOKS_PER_SANDBOX:
            raise errors.ValidationFailed(
                f"A sandbox has at most {settings.VIBEBOX_GIT_HOOKS_PER_SANDBOX} git hooks; delete one first.",
                details={"limit": settings.VIBEBOX_GIT_HOOKS_PER_SANDBOX},
            )
        secret = _secret()
        hook = GitHook.objects.create(
            sandbox=sandbox, path=target, branch=branch, provider=provider, secret=crypto.encrypt(secret),
            created_by=user if user is not None and user.is_authenticated else None,
        )  # fmt: skip
        audit.record(
            "git.hook_created",
            target=sandbox,
            changes={"hook": hook.pk, "path": target, "branch": branch, "provider": provider},
        )
    return hook, secret


def git_hook_delete(*, hook: GitHook) -> None:
    with transaction.atomic():
        changes = {"hook": hook.pk, "path": hook.path, "branch": hook.branch, "provider": hook.provider}
        audit.record("git.hook_deleted", target=hook.sandbox, changes=changes)
        hook.delete()


# ---- deliveries (the git host, unauthenticated but for the signature) ----


def _header(headers, name: str) -> str:
    value = headers.get(name)
    return value if isinstance(value, str) else ""


def detect_provider(headers) -> str:
    """Gitea also sends X-GitHub-Event and X-Gogs-Event (for compatibility): its own header first."""
    if _header(headers, "X-Gitea-Event") or _header(headers, "X-Gitea-Signature"):
        return Provider.GITEA
    if _header(headers, "X-Gitlab-Event") or _header(headers, "X-Gitlab-Token"):
        return Provider.GITLAB
    if _header(headers, "X-GitHub-Event") or _header(headers, "X-Hub-Signature-256"):
        return Provider.GITHUB
    return ""


def _hmac_hex(secret: str, body: bytes) -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def verify(provider: str, secret: str, headers, body: bytes) -> bool:
    """Constant-time: the expected value is computed whatever was sent, and compared whole."""
    if provider == Provider.GITHUB:
        given = _header(headers, "X-Hub-Signature-256")
        return hmac.compare_digest(f"sha256={_hmac_hex(secret, body)}".encode(), given.strip().encode())
    if provider == Provider.GITEA:
        given = _header(headers, "X-Gitea-Signature")
        return hmac.compare_digest(_hmac_hex(secret, body).encode(), given.strip().lower().encode())
    if provider == Provider.GITLAB:
        given = _header(headers, "X-Gitlab-Token")
        return hmac.compare_digest(secret.encode(), given.encode())
    return False


def _payload(body: bytes, content_type: str) -> dict:
    """JSON, or GitHub's form encoding (`payload=<json>`)."""
    try:
        if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
            body = (parse_qs(body.decode(), max_num_fields=10).get("payload") or [""])[0].encode()
        data = safejson.loads(body)  # deep nesting is a 400, not a RecursionError
    except (ValueError, UnicodeDecodeError):
        raise errors.InvalidJson("The push payload is not JSON.") from None
    if not isinstance(data, dict):
        raise errors.InvalidJson("The push payload is not a JSON object.")
    return data


def git_hook_receive(
    *, hook_id: str, headers, body: bytes, content_type: str = "", admit: Callable[[], None] | None = None
) -> tuple[int, dict]:
    """Checks a delivery and queues its pull: (HTTP status, answer). Only a hook's own secret gets
    past the signature; an unknown hook is 404 git_hook_not_found (its id is 144 random bits).
    `admit()` runs once the delivery is authentic (and may refuse it): the view counts the hook's
    rate there, so requests without its secret cannot use up the budget of the real pushes."""
    hooks = GitHook.objects.select_related("sandbox").exclude(sandbox__status=Status.DESTROYED)
    hook = hooks.filter(pk=hook_id).first() if len(hook_id) <= 32 else None
    if hook is None:
        raise errors.GitHookNotFound()
    provider = hook.provider if hook.provider != Provider.AUTO else detect_provider(headers)
    if not provider or not verify(provider, crypto.decrypt(hook.secret), headers, body):
        raise errors.GitHookSignatureInvalid(details={"provider": provider or None})
    if admit is not None:
        admit()
    event = _header(headers, EVENT_HEADERS[provider])
    if provider == Provider.GITHUB and event == "ping":
        return 200, {"status": "pong", "hookId": hook.pk}
    if event != PUSH_EVENTS[provider]:
        return 200, {"status": "ignored", "reason": "not a push event", "event": event[:100]}
    payload = _payload(body, content_type)
    ref, after = payload.get("ref"), payload.get("after")
    if not isinstance(ref, str) or ref != f"refs/heads/{hook.branch}":
        return 200, {"status": "ignored", "reason": "another branch", "ref": str(ref)[:300]}
    after = after if isinstance(after, str) and git._SHA.match(after) else ""
    if after == ZERO:
        return 200, {"status": "ignored", "reason": "the branch was deleted"}
    digest = hashlib.sha256(body).hexdigest()
    delivery_id = _header(headers, DELIVERY_HEADERS[provider]).strip()[:100] or digest
    try:
        with transaction.atomic():
            if hook.deliveries.filter(Q(delivery_id=delivery_id) | Q(digest=digest)).exists():
                raise IntegrityError
            delivery = GitHookDelivery.objects.create(
                hook=hook, delivery_id=delivery_id, digest=digest, provider=provider, after=after
            )
            GitHook.objects.filter(pk=hook.pk).update(last_delivery_at=timezone.now())
            _prune(hook)
            if settings.VIBEBOX_GIT_HOOK_DISPATCH:
                transaction.on_commit(lambda: _dispatch(delivery.pk))
    except IntegrityError:  # a replay (or the host's redelivery) of one already taken: nothing again
        return 200, {"status": "duplicate", "deliveryId": delivery_id}
    return 202, {"status": "queued", "deliveryId": delivery_id, "branch": hook.branch, "after": after or None}


def _prune(hook: GitHook) -> None:
    keep = settings.VIBEBOX_GIT_HOOK_DELIVERIES_KEPT
    old = hook.deliveries.order_by("-received_at", "-id").values_list("pk", flat=True)[keep : keep + 100]
    if old:
        GitHookDelivery.objects.filter(pk__in=list(old)).delete()


PULL_TASK = "apps.sandboxes.tasks.git_hook_pull"  # by name: tasks.py imports this module


def _dispatch(delivery_pk: int) -> None:
    try:
        celery_app.send_task(PULL_TASK, args=[delivery_pk])
    except Exception as exc:  # the broker is down: the delivery stays queued, the host sees 202
        logger.warning("git hook delivery %s: pull not queued (%s)", delivery_pk, exc)


# ---- the pull (Celery) ----


def git_hook_run(*, delivery_pk: int) -> GitHookDelivery | None:
    """Pulls a queued delivery's branch (fast-forward only) and records what happened: an event on
    the sandbox's stream (git.autopull.pulled / .conflict / .skipped / .failed), which the webhooks
    app sends as git.pulled or git.pull_failed. A stopped sandbox, or a paused one without
    autoResume, is not started for it: the delivery is `skipped` (POST …/git/pull later)."""
    claimed = GitHookDelivery.objects.filter(pk=delivery_pk, status=GitHookDelivery.Status.QUEUED).update(
        status=GitHookDelivery.Status.RUNNING
    )  # two workers never both pull one delivery
    if not claimed:
        return None
    delivery = GitHookDelivery.objects.select_related("hook__sandbox__template").get(pk=delivery_pk)
    hook, sandbox = delivery.hook, delivery.hook.sandbox
    base = {"hookId": hook.pk, "path": hook.path, "branch": hook.branch, "deliveryId": delivery.delivery_id}
    try:
        if sandbox.status not in (Status.RUNNING, Status.PAUSED):
            raise errors.SandboxNotRunning(f"The sandbox is {sandbox.status}.", details={"status": sandbox.status})
        require_running(sandbox)  # a paused sandbox with autoResume is resumed, else 409 sandbox_paused
        current = git.run_git(sandbox, ["rev-parse", "--abbrev-ref", "HEAD"], path=hook.path)
        current = current.stdout.decode(errors="replace").strip() if current.exit_code == 0 else ""
        if current != hook.branch:  # never merges the tracked branch into another one
            return _finish(
                delivery, sandbox, GitHookDelivery.Status.SKIPPED,
                f"The repository is on {current[:200] or 'no branch'}, not {hook.branch}.", base,
            )  # fmt: skip
        done = git.git_pull(sandbox=sandbox, path=hook.path, branch=hook.branch, ff_only=True)
    except (errors.SandboxNotRunning, errors.SandboxPaused, errors.SandboxStateConflict) as exc:
        return _finish(delivery, sandbox, GitHookDelivery.Status.SKIPPED, exc.message, base)
    except errors.ApplicationError as exc:
        git_detail = str(exc.details.get("git", "")) if isinstance(exc.details, dict) else ""
        conflict = isinstance(exc, errors.GitFailed) and (
            git_detail in ("not a fast-forward", "merge conflict") or "would be overwritten" in exc.message
        )
        status = GitHookDelivery.Status.CONFLICT if conflict else GitHookDelivery.Status.FAILED
        return _finish(delivery, sandbox, status, exc.message, {**base, "code": exc.code})
    except Exception:  # a bug or an engine hiccup: the delivery says so rather than staying `running`
        logger.exception("git hook delivery %s: the pull failed", delivery_pk)
        return _finish(delivery, sandbox, GitHookDelivery.Status.FAILED, "Internal error.", base)
    data = {**base, "before": done["before"], "commit": done["commit"], "updated": done["updated"]}
    return _finish(delivery, sandbox, GitHookDelivery.Status.PULLED, "", data, commit=done["commit"])


def _finish(delivery, sandbox, status: str, detail: str, data: dict, commit: str = "") -> GitHookDelivery:
    delivery.status, delivery.detail, delivery.commit = status, detail[:2000], commit
    delivery.finished_at = timezone.now()
    with transaction.atomic():
        delivery.save(update_fields=["status", "detail", "commit", "finished_at"])
        text = {
            GitHookDelivery.Status.PULLED: f"auto-pull of {data['branch']} into {data['path']}: {commit[:12]}",
            GitHookDelivery.Status.CONFLICT: f"auto-pull of {data['branch']} not applied (tree left alone): {detail}",
            GitHookDelivery.Status.SKIPPED: f"auto-pull of {data['branch']} skipped: {detail}",
            GitHookDelivery.Status.FAILED: f"auto-pull of {data['branch']} failed: {detail}",
        }[status]
        events.publish(
            sandbox=sandbox, type=f"git.autopull.{status}", text=text[:500], data={**data, "detail": detail[:2000]}
        )
    return delivery
