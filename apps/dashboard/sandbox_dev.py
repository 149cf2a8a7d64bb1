"""A sandbox's Git and Claude tabs.

Git goes through apps/sandboxes/services/git.py as the API's git views do; Claude through
apps/agents (setup, asks, selectors, changes) as its API views do. Both are scoped to the
signed-in user's sandbox (another user's is a 404 page). A session user has no API key, so
`api_key` is None where the API passes the calling key.
"""

import re

from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404
from django.shortcuts import redirect
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_POST

from apps.agents import asks, changes, metrics, selectors, setup
from apps.agents.models import ClaudeSession, ClaudeSetup
from apps.marketplace.template_keys import PERMISSION_MODES
from apps.sandboxes.models import Status
from apps.sandboxes.services import git
from vibebox import exceptions as errors

from .views import get_sandbox, sandbox_page

# ---- diffs ----

_HUNK = re.compile(r"^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@(.*)$")


def diff_files(text: str) -> list[dict]:
    """A unified diff split per file: [{"name", "header": [lines], "hunks": [{"header", "lines": [...]}]}]."""
    files: list[dict] = []
    current = None
    hunk = None
    for line in text.splitlines():
        if line.startswith("diff --git "):
            parts = line.split(" b/", 1)
            current = {"name": parts[1] if len(parts) == 2 else line[11:], "header": [line], "hunks": []}
            files.append(current)
            hunk = None
            continue
        if current is None:
            current = {"name": "", "header": [], "hunks": []}
            files.append(current)
        match = _HUNK.match(line)
        if match:
            hunk = {"header": line, "old": int(match.group(1)), "new": int(match.group(2)), "lines": []}
            current["hunks"].append(hunk)
        elif hunk is None:
            current["header"].append(line)
            if line.startswith("+++ b/"):
                current["name"] = line[6:]
        else:
            hunk["lines"].append(line)
    return files


def unified_rows(text: str) -> list[dict]:
    """Lines of a unified diff with a kind for colouring: file, meta, hunk, add, del, context."""
    rows = []
    for file in diff_files(text):
        for line in file["header"]:
            rows.append({"kind": "file" if line.startswith("diff --git") else "meta", "text": line})
        for hunk in file["hunks"]:
            rows.append({"kind": "hunk", "text": hunk["header"]})
            for line in hunk["lines"]:
                kind = {"+": "add", "-": "del"}.get(line[:1], "context")
                rows.append({"kind": kind, "text": line})
    return rows


def _pair(rows: list, removed: list, added: list) -> None:
    """Appends a run of removed and added lines side by side, then empties both runs."""
    for i in range(max(len(removed), len(added))):
        left = removed[i] if i < len(removed) else None
        right = added[i] if i < len(added) else None
        rows.append({"kind": "change", "left": left, "right": right})
    removed.clear()
    added.clear()


def side_by_side(text: str) -> list[dict]:
    """A unified diff as two columns per file: [{"name", "meta", "rows": [{"kind", "left", "right"}]}],
    where left/right are {"no", "text", "kind"} or None. Removed and added runs are paired line by line."""
    out = []
    for file in diff_files(text):
        rows = []
        for hunk in file["hunks"]:
            rows.append({"kind": "hunk", "text": hunk["header"]})
            old, new = hunk["old"], hunk["new"]
            removed: list = []
            added: list = []

            for line in hunk["lines"]:
                mark, body = line[:1], line[1:]
                if mark == "-":
                    removed.append({"no": old, "text": body, "kind": "del"})
                    old += 1
                elif mark == "+":
                    added.append({"no": new, "text": body, "kind": "add"})
                    new += 1
                elif mark == "\\":  # "\ No newline at end of file"
                    continue
                else:
                    _pair(rows, removed, added)
                    rows.append(
                        {
                            "kind": "context",
                            "left": {"no": old, "text": body, "kind": "context"},
                            "right": {"no": new, "text": body, "kind": "context"},
                        }
                    )
                    old += 1
                    new += 1
            _pair(rows, removed, added)
        meta = [line for line in file["header"] if not line.startswith(("diff --git", "index ", "--- ", "+++ "))]
        out.append({"name": file["name"], "meta": meta, "rows": rows})
    return out


# ---- git ----


def _git_url(sandbox, path: str, **params) -> str:
    query = {"path": path} if path and path != git.DEFAULT_PATH else {}
    query |= {k: v for k, v in params.items() if v}
    url = reverse("dashboard:sandbox-git", args=[sandbox.id])
    return f"{url}?{urlencode(query)}" if query else url


@login_required
def sandbox_git(request, sandbox_id):
    sandbox = get_sandbox(request, sandbox_id)
    path = request.GET.get("path") or git.DEFAULT_PATH
    staged = request.GET.get("staged") in ("1", "true", "yes")
    file = request.GET.get("file") or None
    context = {"path": path, "staged": staged, "file": file or "", "running": sandbox.status == Status.RUNNING}
    if context["running"]:
        try:
            context["status"] = git.git_status(sandbox=sandbox, path=path)
            context["log"] = git.git_log(sandbox=sandbox, path=path, limit=10)["commits"]
            diff = git.git_diff(sandbox=sandbox, path=path, staged=staged, file=file)
            context["diff"] = diff
            context["diff_rows"] = unified_rows(diff["diff"])
        except errors.NotAGitRepository:
            context["no_repo"] = True
        except errors.ApplicationError as exc:
            context["problem"] = f"{exc.message} ({exc.code})"
    if request.htmx and request.GET.get("partial") == "diff":
        return sandbox_page(request, sandbox, "git", "dashboard/partials/git_diff.html", **context)
    return sandbox_page(request, sandbox, "git", "dashboard/sandbox_git.html", **context)


@login_required
@require_POST
def sandbox_git_commit(request, sandbox_id):
    sandbox = get_sandbox(request, sandbox_id)
    path = request.POST.get("path") or git.DEFAULT_PATH
    message = request.POST.get("message", "")
    try:
        result = git.git_commit(
            sandbox=sandbox,
            message=message,
            path=path,
            all=request.POST.get("all") in ("on", "1", "true"),
            user=request.user,
        )
        messages.success(request, f"Committed {result['commit'][:10]}: {message.strip().splitlines()[0][:100]}")
    except errors.ApplicationError as exc:
        messages.error(request, f"Commit failed: {exc.message} ({exc.code})")
    return redirect(_git_url(sandbox, path))


@login_required
@require_POST
def sandbox_git_push(request, sandbox_id):
    sandbox = get_sandbox(request, sandbox_id)
    path = request.POST.get("path") or git.DEFAULT_PATH
    try:
        result = git.git_push(
            sandbox=sandbox,
            path=path,
            remote=request.POST.get("remote") or "origin",
            branch=request.POST.get("branch") or None,
            set_upstream=request.POST.get("set_upstream") in ("on", "1", "true"),
        )
        messages.success(request, f"Pushed {result['branch']} to {result['remote']} ({(result['commit'] or '')[:10]}).")
    except errors.ApplicationError as exc:
        messages.error(request, f"Push failed: {exc.message} ({exc.code})")
    return redirect(_git_url(sandbox, path))


# ---- Claude ----


def _claude_sandbox(request, sandbox_id):
    sandbox = get_sandbox(request, sandbox_id)
    if "claude" not in sandbox.template.name:
        raise Http404("This sandbox's template has no Claude Code.")
    return sandbox


def _claude_url(sandbox, **params) -> str:
    url = reverse("dashboard:sandbox-claude", args=[sandbox.id])
    query = {k: v for k, v in params.items() if v}
    return f"{url}?{urlencode(query)}" if query else url


MODE_HELP = {
    "human": "Claude asks are refused; you review what is pending and work by hand.",
    "assist": "Claude's changes wait for your approval (unless an ask turns review off).",
    "autonomous": "Claude's changes are applied to /workspace as soon as its ask ends (still recorded).",
}


def claude_setup_form(sandbox, status: dict) -> dict:
    """What the setup panel shows: the choices and the current values (claude_status)."""
    return {
        "modes": [(value, label, MODE_HELP[value]) for value, label in ClaudeSetup.Mode.choices],
        "permission_modes": PERMISSION_MODES,
        "template_model": (sandbox.template.claude or {}).get("model") or "",
    }


def _pending(sandbox) -> tuple[list[dict], str]:
    found, problem = [], ""
    for change in changes.change_sets(sandbox=sandbox)[:20]:
        entry = {"change": change, "files": [], "truncated": False}
        if sandbox.status == Status.RUNNING:
            try:
                text, truncated = changes.change_diff(sandbox, change)
                entry["files"], entry["truncated"] = side_by_side(text), truncated
            except errors.ApplicationError as exc:
                problem = f"The diff could not be read: {exc.message}"
        found.append(entry)
    return found, problem


@login_required
def sandbox_claude(request, sandbox_id):
    sandbox = _claude_sandbox(request, sandbox_id)
    status = setup.claude_status(sandbox)
    sessions = list(selectors.session_list(sandbox=sandbox)[:50])
    session_id = request.GET.get("session")
    session = next((s for s in sessions if s.id == session_id), None) if session_id else None
    if session_id and session is None:
        raise Http404("No such Claude session.")
    session = session or (sessions[0] if sessions else None)
    pending, diff_problem = _pending(sandbox)
    context = {
        "claude": status,
        "setup_form": claude_setup_form(sandbox, status),
        "metrics": metrics.claude_metrics(sandboxes=[sandbox.pk]),
        "inspected": selectors.session_context(session) if session else None,
        "sessions": sessions,
        "session": session,
        "conversation": selectors.conversation(session) if session else [],
        "pending": pending,
        "diff_problem": diff_problem,
        "ask_id": request.GET.get("ask", ""),
        "running": sandbox.status == Status.RUNNING,
    }
    partial = request.GET.get("partial") if request.htmx else None
    if partial == "conversation":
        return sandbox_page(request, sandbox, "claude", "dashboard/partials/claude_conversation.html", **context)
    if partial == "changes":
        return sandbox_page(request, sandbox, "claude", "dashboard/partials/claude_changes.html", **context)
    if partial == "context":
        return sandbox_page(request, sandbox, "claude", "dashboard/partials/claude_context.html", **context)
    return sandbox_page(request, sandbox, "claude", "dashboard/sandbox_claude.html", **context)


@login_required
@require_POST
def sandbox_claude_enable(request, sandbox_id):
    sandbox = _claude_sandbox(request, sandbox_id)
    try:
        found, created = setup.claude_enable(
            sandbox=sandbox,
            api_key=None,
            anthropic_api_key=request.POST.get("anthropic_api_key", "").strip(),
            mcp=request.POST.get("mcp") in ("on", "1", "true"),
        )
        messages.success(request, f"Claude Code {found.version} {'enabled' if created else 're-enabled'}.")
    except errors.ApplicationError as exc:
        messages.error(request, f"Enabling Claude failed: {exc.message} ({exc.code})")
    return redirect(_claude_url(sandbox))


@login_required
@require_POST
def sandbox_claude_ask(request, sandbox_id):
    sandbox = _claude_sandbox(request, sandbox_id)
    session_id = request.POST.get("session") or None
    if session_id and not ClaudeSession.objects.filter(pk=session_id, sandbox=sandbox).exists():
        raise Http404("No such Claude session.")
    prompt = request.POST.get("prompt", "")
    if not prompt.strip():
        messages.error(request, "Write a prompt first.")
        return redirect(_claude_url(sandbox, session=session_id))
    try:
        ask = asks.ask_start(
            sandbox=sandbox,
            api_key=None,
            prompt=prompt,
            session_id=session_id,
            review=request.POST.get("review") in ("on", "1", "true"),
        )
    except errors.ApplicationError as exc:
        messages.error(request, f"Claude could not start: {exc.message} ({exc.code})")
        return redirect(_claude_url(sandbox, session=session_id))
    messages.success(request, "Claude is working on it: follow the activity below.")
    return redirect(_claude_url(sandbox, session=ask.session_id, ask=ask.id))


def _review(request, sandbox_id, approve: bool):
    sandbox = _claude_sandbox(request, sandbox_id)
    session_id = request.POST.get("session") or None
    action = changes.changes_approve if approve else changes.changes_reject
    verb = "approve" if approve else "reject"
    try:
        done = action(sandbox=sandbox, session_id=session_id, api_key=None)
    except errors.MergeConflict as exc:
        files = ", ".join(exc.details.get("files") or []) if getattr(exc, "details", None) else ""
        messages.error(request, f"Merge conflict: {exc.message}" + (f" Conflicting files: {files}." if files else ""))
    except errors.ClaudeSessionNotFound:
        raise Http404("No such Claude session.") from None
    except errors.ApplicationError as exc:
        messages.error(request, f"Could not {verb} the changes: {exc.message} ({exc.code})")
    else:
        word = "approved and merged into /workspace" if approve else "rejected"
        messages.success(request, f"{len(done)} change set(s) {word}.")
    return redirect(_claude_url(sandbox, session=session_id))


@login_required
@require_POST
def sandbox_claude_approve(request, sandbox_id):
    return _review(request, sandbox_id, approve=True)


@login_required
@require_POST
def sandbox_claude_reject(request, sandbox_id):
    return _review(request, sandbox_id, approve=False)
