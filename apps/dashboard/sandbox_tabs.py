"""The sandbox tabs of the dashboard: terminal, files, exec and logs.

Thin views over the same services and selectors as the API (apps/sandboxes/services/files.py,
services/exec.py, selectors.py), scoped to the signed-in user through `get_sandbox` (another user's
sandbox is a 404 page). Live parts (the terminal, streamed commands, the log stream) are
WebSockets opened by the tab's script with the session cookie; everything else works as plain
forms and links, and htmx swaps partials where it is there.
"""

import io
import logging
import posixpath
from datetime import UTC, datetime

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.http import Http404, HttpResponse, JsonResponse, StreamingHttpResponse
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.http import urlencode
from django.views.decorators.http import require_GET, require_POST

from apps.sandboxes import selectors, terminals
from apps.sandboxes.models import Status
from apps.sandboxes.services import exec, files
from vibebox import exceptions as errors
from vibebox.units import parse_duration

from .views import get_sandbox, sandbox_page

logger = logging.getLogger(__name__)

EDIT_LIMIT = 1024 * 1024  # the text editor opens files up to 1 MiB
HISTORY_LIMIT = 50
OUTPUT_PREVIEW = 256 * 1024


def _wants_json(request) -> bool:
    return "application/json" in request.headers.get("Accept", "")


def _files_url(sandbox, path: str | None = None, **extra) -> str:
    query = {"path": path, **extra} if path else extra
    url = reverse("dashboard:sandbox-files", args=[sandbox.id])
    return f"{url}?{urlencode(query)}" if query else url


# ---- terminal ----


def open_terminal_sessions(sandbox) -> list[dict]:
    """The sandbox's open terminal sessions (in its sandboxd)."""
    try:
        listed = terminals.terminal_list(sandbox=sandbox)
    except errors.ApplicationError as exc:  # sandboxd cannot tell now: the page still renders
        logger.info("terminal sessions of %s: %s", sandbox.id, exc.message)
        return []
    return [
        {"id": t.session_id, "shell": t.shell, "cols": t.cols, "rows": t.rows, "clients": t.attached} for t in listed
    ]


@login_required
@require_GET
def sandbox_terminal(request, sandbox_id):
    sandbox = get_sandbox(request, sandbox_id)
    join = request.GET.get("session", "")
    if join and not join.startswith("term_"):
        join = ""
    return sandbox_page(
        request,
        sandbox,
        "terminal",
        "dashboard/sandbox_terminal.html",
        sessions=open_terminal_sessions(sandbox),
        join=join,
        running=sandbox.status == Status.RUNNING,
    )


@login_required
@require_GET
def sandbox_terminal_sessions(request, sandbox_id):
    sandbox = get_sandbox(request, sandbox_id)
    return render(
        request,
        "dashboard/partials/terminal_sessions.html",
        {"sandbox": sandbox, "sessions": open_terminal_sessions(sandbox), "join": request.GET.get("session", "")},
    )


# ---- files ----


def _crumbs(path: str) -> list[dict]:
    """Breadcrumbs from / to `path`: [{name, path}]."""
    crumbs = [{"name": "/", "path": "/"}]
    current = ""
    for part in [p for p in path.split("/") if p]:
        current += "/" + part
        crumbs.append({"name": part, "path": current})
    return crumbs


def _listing(sandbox, path: str) -> tuple[list[dict], str]:
    """The directory's rows for the template: folders first, then by name."""
    try:
        entries = files.file_list(sandbox=sandbox, path=path)
    except errors.ApplicationError as exc:
        return [], exc.message
    rows = [
        {
            "path": info.path,
            "name": info.name or "/",
            "size": info.size,
            "is_dir": info.is_dir,
            "mode": f"{info.mode:04o}",
            "modified_at": info.modified_at,
            "modified": datetime.fromtimestamp(info.modified_at, tz=UTC),
            "link_target": info.link_target,
        }
        for info in entries
    ]
    rows.sort(key=lambda row: (not row["is_dir"], row["name"].lower()))
    return rows, ""


@login_required
@require_GET
def sandbox_files(request, sandbox_id):
    sandbox = get_sandbox(request, sandbox_id)
    try:
        path = files.resolve(request.GET.get("path") or files.WORKSPACE)
    except errors.ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect(_files_url(sandbox))
    entries, problem = _listing(sandbox, path)
    context = {
        "path": path,
        "parent": posixpath.dirname(path) if path != "/" else None,
        "crumbs": _crumbs(path),
        "entries": entries,
        "problem": problem,
        "running": sandbox.status == Status.RUNNING,
        "upload_limit": settings.VIBEBOX_UPLOAD_MAX_BYTES,
        "edit_limit": EDIT_LIMIT,
    }
    if request.htmx and request.GET.get("partial") == "list":
        return render(request, "dashboard/partials/files_list.html", {"sandbox": sandbox, **context})
    return sandbox_page(request, sandbox, "files", "dashboard/sandbox_files.html", **context)


async def _async_chunks(download):
    """One chunk at a time from the engine (a sync iterator would be read whole under ASGI);
    the engine's stream is released however the response ends."""
    iterator = iter(download.chunks)
    done = object()
    pull = sync_to_async(next, thread_sensitive=False)
    try:
        while (chunk := await pull(iterator, done)) is not done:
            yield chunk
    finally:
        await sync_to_async(download.close, thread_sensitive=False)()


@login_required
@require_GET
def sandbox_files_download(request, sandbox_id):
    sandbox = get_sandbox(request, sandbox_id)
    path = request.GET.get("path", "")
    try:
        download = files.file_download(sandbox=sandbox, path=path, as_tar=request.GET.get("format") == "tar")
    except errors.ApplicationError as exc:  # back to the listing, with the reason
        where = exc.details.get("path") or path
        messages.error(request, f"Cannot download {where}: {exc.message}")
        try:
            directory = posixpath.dirname(files.resolve(path))
        except errors.ApplicationError:
            directory = files.WORKSPACE
        return redirect(_files_url(sandbox, directory))
    response = StreamingHttpResponse(_async_chunks(download), content_type=download.content_type)
    response["Content-Disposition"] = f'attachment; filename="{download.filename}"'
    if download.length is not None:
        response["Content-Length"] = str(download.length)
    return response


def _done(request, sandbox, directory: str, *, ok: str = "", error: errors.ApplicationError | None = None):
    """Answers a files form: JSON for the script's XHR, else a message and back to the listing."""
    if _wants_json(request):
        if error is not None:
            return JsonResponse({"error": {"code": error.code, "message": error.message}}, status=error.status)
        return JsonResponse({"message": ok, "path": directory})
    if error is not None:
        messages.error(request, error.message)
    else:
        messages.success(request, ok)
    return redirect(_files_url(sandbox, directory))


def _directory(request) -> str:
    try:
        return files.resolve(request.POST.get("dir") or files.WORKSPACE)
    except errors.ApplicationError:
        return files.WORKSPACE


def _clean_name(name: str) -> str:
    name = (name or "").strip()
    if not name or name in (".", "..") or "/" in name or "\0" in name or "\n" in name:
        raise errors.ValidationFailed("Give a name without slashes.")
    return name


@login_required
@require_POST
def sandbox_files_upload(request, sandbox_id):
    sandbox = get_sandbox(request, sandbox_id)
    directory = _directory(request)
    uploads = request.FILES.getlist("file")
    try:
        if not uploads:
            raise errors.ValidationFailed("Choose a file to upload.")
        names = []
        for upload in uploads:
            if upload.size > settings.VIBEBOX_UPLOAD_MAX_BYTES:
                raise errors.RequestTooLarge(details={"limit": settings.VIBEBOX_UPLOAD_MAX_BYTES})
            name = _clean_name(posixpath.basename(upload.name or ""))
            files.file_upload(sandbox=sandbox, path=posixpath.join(directory, name), fileobj=upload, size=upload.size)
            names.append(name)
    except errors.ApplicationError as exc:
        return _done(request, sandbox, directory, error=exc)
    return _done(request, sandbox, directory, ok=f"Uploaded {', '.join(names)}.")


@login_required
@require_POST
def sandbox_files_mkdir(request, sandbox_id):
    sandbox = get_sandbox(request, sandbox_id)
    directory = _directory(request)
    try:
        name = _clean_name(request.POST.get("name", ""))
        files.file_mkdir(sandbox=sandbox, path=posixpath.join(directory, name))
    except errors.ApplicationError as exc:
        return _done(request, sandbox, directory, error=exc)
    return _done(request, sandbox, directory, ok=f"Created folder {name}.")


@login_required
@require_POST
def sandbox_files_delete(request, sandbox_id):
    sandbox = get_sandbox(request, sandbox_id)
    try:
        target = files.resolve(request.POST.get("path") or "")
    except errors.ApplicationError as exc:
        return _done(request, sandbox, files.WORKSPACE, error=exc)
    directory = posixpath.dirname(target)
    try:
        if not request.POST.get("path"):
            raise errors.ValidationFailed("Say which file to delete.")
        files.file_delete(sandbox=sandbox, path=target, recursive=request.POST.get("recursive") == "1")
    except errors.ApplicationError as exc:
        return _done(request, sandbox, directory, error=exc)
    return _done(request, sandbox, directory, ok=f"Deleted {posixpath.basename(target)}.")


def _read_text(sandbox, path: str) -> str:
    """A small text file's content; errors for directories, big or binary files."""
    for entry in files.file_list(sandbox=sandbox, path=posixpath.dirname(path)):
        if entry.path == path:
            break
    else:
        raise errors.FileNotFound(f"{path}: No such file or directory", details={"path": path})
    if entry.is_dir:
        raise errors.ValidationFailed(f"{path} is a directory.")
    if entry.type == "file" and entry.size > EDIT_LIMIT:
        raise errors.ValidationFailed("The file is over 1 MiB: download it instead.")
    download = files.file_download(sandbox=sandbox, path=path)
    data = bytearray()
    try:
        for chunk in download.chunks:
            data += chunk
            if len(data) > EDIT_LIMIT:
                raise errors.ValidationFailed("The file is over 1 MiB: download it instead.")
    finally:
        download.close()
    if b"\0" in data:
        raise errors.ValidationFailed("This looks like a binary file: download it instead.")
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise errors.ValidationFailed("The file is not UTF-8 text: download it instead.") from None


@login_required
def sandbox_files_edit(request, sandbox_id):
    """GET: a small text file in the editor. POST: saves it back (same service as uploads)."""
    sandbox = get_sandbox(request, sandbox_id)
    raw = request.POST.get("path") if request.method == "POST" else request.GET.get("path")
    try:
        if not raw:
            raise errors.ValidationFailed("Say which file to open.")
        path = files.resolve(raw)
    except errors.ApplicationError as exc:
        messages.error(request, exc.message)
        return redirect(_files_url(sandbox))
    context = {"path": path, "crumbs": _crumbs(path), "parent": posixpath.dirname(path), "problem": "", "content": ""}
    status = 200
    if request.method == "POST":
        content = request.POST.get("content", "").replace("\r\n", "\n")
        data = content.encode("utf-8")
        if len(data) > EDIT_LIMIT:
            context.update(problem="The text is over 1 MiB.", content=content)
            status = 400
        else:
            try:
                files.file_upload(sandbox=sandbox, path=path, fileobj=io.BytesIO(data), size=len(data))
            except errors.ApplicationError as exc:
                context.update(problem=exc.message, content=content)
                status = exc.status
            else:
                messages.success(request, f"Saved {posixpath.basename(path)}.")
                return redirect(
                    reverse("dashboard:sandbox-files-edit", args=[sandbox.id]) + "?" + urlencode({"path": path})
                )
    elif request.method == "GET":
        try:
            context["content"] = _read_text(sandbox, path)
        except errors.ApplicationError as exc:
            context.update(problem=exc.message, unreadable=True)
            status = exc.status
    else:
        return HttpResponse(status=405, headers={"Allow": "GET, POST"})
    response = sandbox_page(request, sandbox, "files", "dashboard/sandbox_files.html", editing=True, **context)
    response.status_code = status
    return response


# ---- exec ----


def _languages(sandbox) -> list[str]:
    template = sandbox.template
    return list(template.languages) or ([template.language] if template.language else [])


def _history(sandbox):
    return selectors.execution_list(sandbox=sandbox).order_by("-started_at")[:HISTORY_LIMIT]


def _exec_context(sandbox, **extra) -> dict:
    return {
        "languages": _languages(sandbox),
        "default_language": "auto",
        "executions": _history(sandbox),
        "running": sandbox.status == Status.RUNNING,
        "ws_path": f"/ws/sandboxes/{sandbox.id}/exec",
        "notebook_languages": [lang for lang in ("python", "javascript") if lang in _languages(sandbox)],
        **extra,
    }


@login_required
@require_GET
def sandbox_exec(request, sandbox_id):
    sandbox = get_sandbox(request, sandbox_id)
    selected = None
    if request.GET.get("execution"):
        try:
            selected = selectors.execution_get(sandbox=sandbox, id=request.GET["execution"])
        except errors.ApplicationError:
            raise Http404("No such execution.") from None
    return sandbox_page(
        request, sandbox, "exec", "dashboard/sandbox_exec.html", **_exec_context(sandbox, selected=selected)
    )


@login_required
@require_POST
def sandbox_exec_run(request, sandbox_id):
    """Runs a code snippet (`code`, `language`) or a command line (`command`, the no-script path
    of the command form) through the same services as the API; answers the result partial
    (htmx) or the whole tab."""
    sandbox = get_sandbox(request, sandbox_id)
    code, command = request.POST.get("code", ""), request.POST.get("command", "")
    language = request.POST.get("language") or "auto"
    outcome, problem, status = None, "", 200
    try:
        timeout = parse_duration(request.POST["timeout"]) if request.POST.get("timeout") else None
        if code.strip():
            outcome = exec.sandbox_execute(sandbox=sandbox, code=code, language=language, timeout=timeout)
        elif command.strip():
            outcome = exec.sandbox_exec(sandbox=sandbox, command=command, timeout=timeout)
        else:
            raise errors.ValidationFailed("Type a command or some code to run.")
    except ValueError as exc:
        problem, status = str(exc), 400
    except errors.ApplicationError as exc:
        problem, status = exc.message, exc.status
    context = {"sandbox": sandbox, "outcome": outcome, "problem": problem}
    if request.htmx:
        response = render(request, "dashboard/partials/exec_result.html", context)
        response.status_code = status
        if outcome is not None:
            response["HX-Trigger"] = "exec-history"
        return response
    response = sandbox_page(
        request,
        sandbox,
        "exec",
        "dashboard/sandbox_exec.html",
        **_exec_context(sandbox, outcome=outcome, problem=problem, code=code, command=command, language=language),
    )
    response.status_code = status
    return response


@login_required
@require_GET
def sandbox_exec_history(request, sandbox_id):
    sandbox = get_sandbox(request, sandbox_id)
    return render(
        request, "dashboard/partials/exec_history.html", {"sandbox": sandbox, "executions": _history(sandbox)}
    )


@login_required
@require_GET
def sandbox_exec_detail(request, sandbox_id, execution_id):
    sandbox = get_sandbox(request, sandbox_id)
    try:
        selected = selectors.execution_get(sandbox=sandbox, id=execution_id)
    except errors.ApplicationError:
        raise Http404("No such execution.") from None
    if not request.htmx:
        return redirect(
            reverse("dashboard:sandbox-exec", args=[sandbox.id]) + "?" + urlencode({"execution": selected.id})
        )
    return render(request, "dashboard/partials/exec_detail.html", {"sandbox": sandbox, "selected": selected})


# ---- logs ----


@login_required
@require_GET
def sandbox_logs(request, sandbox_id):
    sandbox = get_sandbox(request, sandbox_id)
    return sandbox_page(
        request,
        sandbox,
        "logs",
        "dashboard/sandbox_logs.html",
        ws_path=f"/ws/sandboxes/{sandbox.id}/logs",
        tail=200,
    )
