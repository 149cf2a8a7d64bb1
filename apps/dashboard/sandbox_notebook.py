"""The Exec tab's notebook: code run in a code context (a persistent interpreter, docs/api.md
"Code contexts"), its rich results shown safely (apps/dashboard/rich.py: images as `data:` images,
HTML in a sandboxed iframe, never inline).

The tab keeps one context per language in the sandbox: the first one that is not dead, else a
new one, so variables survive between runs as in a notebook ("Restart" in the API resets it).
"""

import logging

from django.contrib.auth.decorators import login_required
from django.shortcuts import render
from django.views.decorators.http import require_POST

from apps.sandboxes import contexts
from vibebox import exceptions as errors
from vibebox.units import parse_duration

from .rich import rich_results, strip_ansi
from .sandbox_tabs import _exec_context as exec_context
from .views import get_sandbox, sandbox_page

logger = logging.getLogger(__name__)

LANGUAGES = ("python", "javascript")


def notebook_context(sandbox, language: str):
    """The sandbox's first live context of `language`, else a new one (a CodeContext)."""
    for view in contexts.context_list(sandbox=sandbox):
        if view.language == language and view.status != "dead":
            return view.context
    return contexts.context_create(sandbox=sandbox, language=language).context


def execution_view(outcome) -> dict:
    """What the partial shows of a ContextOutcome (the REST answer's fields, text de-coloured)."""
    error = outcome.error
    return {
        "results": outcome.results,
        "stdout": strip_ansi(outcome.stdout),
        "stderr": strip_ansi(outcome.stderr),
        "truncated": outcome.truncated,
        "error": {k: strip_ansi(error.get(k, "")) for k in ("name", "value", "traceback")} if error else None,
        "executionCount": outcome.execution_count,
        "durationMs": outcome.duration_ms,
    }


@login_required
@require_POST
def sandbox_exec_context(request, sandbox_id):
    """Runs `code` in the sandbox's notebook context of `language`; answers the rich-result partial."""
    sandbox = get_sandbox(request, sandbox_id)
    code, language = request.POST.get("code", ""), request.POST.get("language") or "python"
    context, execution, problem, status = None, None, "", 200
    try:
        if language not in LANGUAGES:
            raise errors.ValidationFailed("The notebook runs python or javascript.")
        timeout = parse_duration(request.POST["timeout"]) if request.POST.get("timeout") else None
        if not code.strip():
            raise errors.ValidationFailed("Type some code to run.")
        context = notebook_context(sandbox, language)
        execution = execution_view(contexts.context_execute(context=context, code=code, timeout=timeout))
    except ValueError as exc:
        problem, status = str(exc), 400
    except errors.ApplicationError as exc:
        problem, status = exc.message, exc.status
    items = rich_results(execution["results"]) if execution else []
    shown = {"code_context": context, "execution": execution, "items": items, "problem": problem}
    if request.htmx:
        response = render(request, "dashboard/partials/context_result.html", {"sandbox": sandbox, **shown})
    else:  # without script: the whole tab, the result in its output
        extra = {"notebook": shown, "notebook_code": code, "notebook_language": language}
        page = "dashboard/sandbox_exec.html"
        response = sandbox_page(request, sandbox, "exec", page, **exec_context(sandbox, **extra))
    response.status_code = status
    if execution is not None:
        response["HX-Trigger"] = "exec-history"
    return response
