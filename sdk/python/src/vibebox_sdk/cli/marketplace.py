"""The template marketplace (docs/marketplace.md): vibebox template
submit|status|submissions|cancel|review|search|show|reviews|rate|yank|deprecate|feature, beside
`vibebox template info`. Submitting, cancelling, yanking and deprecating need templates.submit (a
key: the templates:submit scope); reviewing public submissions and featuring are for staff."""

from __future__ import annotations

import sys
from enum import StrEnum
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.text import Text

from . import output
from .admin import template_app
from .common import ERROR, JsonFlag, UsageError, client

SubmissionArg = Annotated[str, typer.Argument(help="The submission's id (sub_…).", show_default=False)]
NameArg = Annotated[str, typer.Argument(help="The template's name.", show_default=False)]
STATE_STYLES = {
    "queued": "cyan",
    "building": "cyan",
    "smoke_testing": "cyan",
    "awaiting_review": "yellow",
    "published": "green",
    "rejected": "red",
    "failed": "red",
    "cancelled": "dim",
}

if TYPE_CHECKING:  # annotations only: the models are imported with the client
    from ..models import MarketplaceTemplate, Submission


class State(StrEnum):
    queued = "queued"
    building = "building"
    smoke_testing = "smoke_testing"
    awaiting_review = "awaiting_review"
    published = "published"
    rejected = "rejected"
    failed = "failed"
    cancelled = "cancelled"


class Sort(StrEnum):
    featured = "featured"
    rating = "rating"
    usage = "usage"
    newest = "newest"
    name = "name"


def state_text(state: str) -> Text:
    return Text(state, style=STATE_STYLES.get(state, ""))


def _size(value: int | None) -> str | None:
    if value is None:
        return None
    return f"{value / 1024**3:.1f} GB" if value >= 1024**3 else f"{value / 1024**2:.1f} MB"


def outcome(sub: Submission) -> str:
    """One line on how it ended: `failed at build: …`, `rejected: …`, `published react-vite@1.2.0`."""
    if sub.state == "failed":
        return f"failed at {sub.failed_step or 'an unknown step'}: {sub.message or 'no reason given'}"
    if sub.state == "rejected":
        return f"rejected: {sub.review_reason or sub.message or 'no reason given'}"
    if sub.state == "published":
        return f"published {sub.template_version or f'{sub.template}@{sub.version}'}"
    if sub.state == "awaiting_review":
        return f"validated; {sub.template}@{sub.version} is awaiting staff review"
    return sub.state


def print_submission(sub: Submission, *, log: bool = False) -> None:
    output.fields(
        [
            ("id", sub.id),
            ("template", f"{sub.template}@{sub.version}"),
            ("visibility", sub.visibility),
            ("state", state_text(sub.state)),
            ("failed step", sub.failed_step),
            ("message", sub.message),
            ("org", sub.org),
            ("user", sub.user),
            ("context", f"{sub.context_bytes} bytes" if sub.context_bytes else None),
            ("image", sub.image),
            ("image size", _size(sub.image_size)),
            ("build", f"{sub.build_seconds:.0f} s" if sub.build_seconds is not None else None),
            ("reviewer", sub.reviewer),
            ("review reason", sub.review_reason),
            ("version", sub.template_version),
            ("created", f"{sub.created_at} ({output.ago(sub.created_at)})"),
            ("finished", sub.finished_at),
        ]
    )
    if log and sub.smoke_output:
        output.line()
        output.line("smoke test output:")
        output.line(sub.smoke_output.rstrip("\n"))


def _log_to_stderr(text: str) -> None:
    sys.stderr.write(text)
    sys.stderr.flush()


def follow(ident: str, json: bool) -> Submission:
    """Follows the submission's build log (on stderr) until it stops moving; prints how it ended
    and exits 1 when it failed, was rejected or cancelled."""
    sub = client().marketplace.wait(ident, on_log=_log_to_stderr)
    if json:
        output.print_json(sub)
    else:
        output.note(outcome(sub), style="green" if sub.succeeded else "red")
    if not sub.succeeded:
        raise typer.Exit(ERROR)
    return sub


@template_app.command("submit")
def submit(
    directory: Annotated[
        str, typer.Argument(help="A directory with a Dockerfile, a template.yaml and the build context's files.")
    ],
    public: Annotated[
        bool, typer.Option("--public", help="Everyone may use it, after staff review (default: private).")
    ] = False,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow the build log; exit 1 when the validation fails.")
    ] = False,
    json: JsonFlag = False,
) -> None:
    """Submit a template version to the marketplace: prints the submission's id.

    The directory's other files are the build context (without .git and what its .dockerignore
    excludes, at most 50 MiB). The submission is built, checked and smoke-tested in the background:
    `vibebox template status ID --follow` shows it.
    """
    sub = client().marketplace.submit(directory, visibility="public" if public else "private")
    if json and not wait:
        output.print_json(sub)
        return
    if not json:
        output.line(sub.id)
    if wait:
        follow(sub.id, json)
    else:
        output.note(f"queued; follow it with `vibebox template status {sub.id} --follow`")


@template_app.command("status")
def status(
    submission: SubmissionArg,
    follow_log: Annotated[
        bool, typer.Option("--follow", "-f", help="Follow the build log until the validation ends.")
    ] = False,
    log: Annotated[bool, typer.Option("--log", help="Print the build log kept so far (stdout).")] = False,
    json: JsonFlag = False,
) -> None:
    """Show a submission's state (why it failed: step and message); --follow follows its build log."""
    if follow_log:
        follow(submission, json)
        return
    sub = client().marketplace.submission(submission)
    if json:
        output.print_json(sub)
        return
    print_submission(sub, log=True)
    if log and sub.build_log:
        output.line()
        sys.stdout.write(sub.build_log if sub.build_log.endswith("\n") else sub.build_log + "\n")


@template_app.command("submissions")
def submissions(
    state: Annotated[State | None, typer.Option("--state", help="Only submissions in this state.")] = None,
    all_orgs: Annotated[bool, typer.Option("--all-orgs", help="Staff: every organization's.")] = False,
    limit: Annotated[int, typer.Option("--limit", help="At most this many.", min=1)] = 50,
    json: JsonFlag = False,
) -> None:
    """List the organization's submissions, newest first."""
    found = client().marketplace.submissions(state=state.value if state else None, all_orgs=all_orgs, limit=limit)
    if json:
        output.print_json(found)
        return
    output.table(
        ["ID", "TEMPLATE", "VISIBILITY", "STATE", "WHY", "CREATED"],
        [
            (
                s.id,
                f"{s.template}@{s.version}",
                s.visibility,
                state_text(s.state),
                (f"{s.failed_step}: " if s.failed_step else "") + s.message if s.message else "-",
                output.ago(s.created_at),
            )
            for s in found
        ],
    )


@template_app.command("cancel")
def cancel(submission: SubmissionArg, json: JsonFlag = False) -> None:
    """Cancel a queued submission."""
    sub = client().marketplace.cancel(submission)
    if json:
        output.print_json(sub)
    else:
        output.line(f"cancelled {sub.id}")


@template_app.command("review")
def review(
    submission: SubmissionArg,
    approve: Annotated[bool, typer.Option("--approve", help="Publish it.")] = False,
    reject: Annotated[bool, typer.Option("--reject", help="Reject it (say why with --reason).")] = False,
    reason: Annotated[str | None, typer.Option("--reason", help="Shown to the author; needed to reject.")] = None,
    json: JsonFlag = False,
) -> None:
    """Approve or reject a submission awaiting review (public ones: staff)."""
    if approve == reject:
        raise UsageError("give --approve or --reject")
    if reject and not (reason or "").strip():
        raise UsageError("--reject needs --reason: the author is told why")
    sub = client().marketplace.review(submission, approve, reason)
    if json:
        output.print_json(sub)
    else:
        output.line(f"{sub.state} {sub.id} ({sub.template}@{sub.version})")


# The catalogue


def _rating(t: MarketplaceTemplate) -> str:
    if not t.rating_count:
        return "-"
    return f"{t.rating_average:.1f} ({t.rating_count})"


def _kind(t: MarketplaceTemplate) -> str:
    if t.official:
        return "official"
    return "community" if t.visibility == "public" else "private"


@template_app.command("search")
def search(
    query: Annotated[str | None, typer.Argument(help="Words to find in names, descriptions and tags.")] = None,
    language: Annotated[str | None, typer.Option("--language", help="Only templates for this language.")] = None,
    tag: Annotated[str | None, typer.Option("--tag", help="Only templates with this tag.")] = None,
    featured: Annotated[bool, typer.Option("--featured", help="Only featured templates.")] = False,
    official: Annotated[
        bool | None,
        typer.Option("--official/--community", help="Only built-in ones, or only community ones.", show_default=False),
    ] = None,
    sort: Annotated[Sort | None, typer.Option("--sort", help="Order (default: featured first).")] = None,
    limit: Annotated[int, typer.Option("--limit", help="At most this many.", min=1)] = 50,
    json: JsonFlag = False,
) -> None:
    """Search the template catalogue."""
    found = client().marketplace.templates(
        query,
        language=language,
        tag=tag,
        featured=True if featured else None,
        official=official,
        sort=sort.value if sort else None,
        limit=limit,
    )
    if json:
        output.print_json(found)
        return
    output.table(
        ["NAME", "VERSION", "KIND", "RATING", "USES 30D", "LANGUAGES", "DESCRIPTION"],
        [
            (
                (f"{t.icon} " if t.icon and not t.icon.startswith("http") else "") + t.name,
                t.latest_version or "-",
                _kind(t) + (" ★" if t.featured else "") + (" (deprecated)" if t.deprecation else ""),
                _rating(t),
                t.usage.get("last30_days", 0),
                ", ".join(t.languages),
                t.description,
            )
            for t in found
        ],
    )


@template_app.command("show")
def show(name: NameArg, json: JsonFlag = False) -> None:
    """Show a catalogue template: versions, rating, usage, deprecation and readme."""
    t = client().marketplace.template(name)
    if json:
        output.print_json(t)
        return
    deprecation = t.deprecation or {}
    output.fields(
        [
            ("name", t.name),
            ("display name", t.display_name),
            ("description", t.description),
            ("kind", _kind(t)),
            ("owner", t.owner),
            ("latest version", t.latest_version),
            ("tags", ", ".join(t.tags)),
            ("languages", ", ".join(t.languages)),
            ("featured", f"yes (rank {t.featured_rank})" if t.featured else "no"),
            ("rating", _rating(t)),
            ("usage", f"{t.usage.get('total', 0)} sandboxes, {t.usage.get('last30_days', 0)} in the last 30 days"),
            (
                "deprecated",
                Text(
                    deprecation.get("message", "")
                    + (f" (use {deprecation['replacement']})" if deprecation.get("replacement") else ""),
                    style="yellow",
                )
                if deprecation
                else None,
            ),
            ("size", _size(t.image_size)),
            ("smoke", t.smoke),
            ("workdir", t.workdir),
            ("ports", ", ".join(str(p.get("container", p)) if isinstance(p, dict) else str(p) for p in t.ports)),
            ("resources", t.default_resources),
        ]
    )
    if t.versions:
        output.line()
        output.table(
            ["VERSION", "PUBLISHED", "YANKED", "CHANGELOG"],
            [
                (
                    v.version,
                    v.published_at,
                    Text(f"yes: {v.yank_reason}" if v.yank_reason else "yes", style="red") if v.yanked else "no",
                    v.changelog.strip().splitlines()[0] if v.changelog.strip() else "-",
                )
                for v in t.versions
            ],
        )
    if t.readme:
        output.line()
        output.line(t.readme.rstrip("\n"))


@template_app.command("reviews")
def reviews(
    name: NameArg,
    limit: Annotated[int, typer.Option("--limit", help="At most this many.", min=1)] = 50,
    json: JsonFlag = False,
) -> None:
    """List a template's reviews, newest first."""
    found = client().marketplace.reviews(name, limit=limit)
    if json:
        output.print_json(found)
        return
    output.table(
        ["USER", "RATING", "TEXT", "UPDATED"],
        [(r.user, "★" * r.rating, r.text or "-", output.ago(r.updated_at)) for r in found],
    )


@template_app.command("rate")
def rate(
    name: NameArg,
    rating: Annotated[int, typer.Argument(help="1 to 5 stars.", min=1, max=5, show_default=False)],
    text: Annotated[str | None, typer.Argument(help="What you thought of it (optional).")] = None,
    json: JsonFlag = False,
) -> None:
    """Rate a template you created a sandbox from (sent again, it edits your review)."""
    found = client().marketplace.rate(name, rating, text)
    if json:
        output.print_json(found)
    else:
        output.line(f"rated {name} {'★' * found.rating}")


@template_app.command("yank")
def yank(
    name: NameArg,
    version: Annotated[str, typer.Argument(help="The version to yank (1.2.0).", show_default=False)],
    reason: Annotated[str | None, typer.Option("--reason", help="Why (shown to those who pin it).")] = None,
    json: JsonFlag = False,
) -> None:
    """Hide a version from new creates; running sandboxes keep it."""
    found = client().marketplace.yank(name, version, reason)
    if json:
        output.print_json(found)
    else:
        output.line(f"yanked {name}@{found.version}")


@template_app.command("deprecate")
def deprecate(
    name: NameArg,
    message: Annotated[str, typer.Argument(help="The notice; an empty string clears it.", show_default=False)],
    replacement: Annotated[str | None, typer.Option("--replacement", help="The template to use instead.")] = None,
    json: JsonFlag = False,
) -> None:
    """Set (or clear, with "") a template's deprecation notice."""
    found = client().marketplace.deprecate(name, message, replacement)
    if json:
        output.print_json(found)
    else:
        output.line(f"deprecated {name}" if found.deprecation else f"{name} is no longer deprecated")


@template_app.command("feature")
def feature(
    name: NameArg,
    rank: Annotated[int | None, typer.Option("--rank", help="Lower ranks come first.")] = None,
    off: Annotated[bool, typer.Option("--off", help="Stop featuring it.")] = False,
    json: JsonFlag = False,
) -> None:
    """Staff: feature a template in the catalogue."""
    found = client().marketplace.feature(name, not off, rank)
    if json:
        output.print_json(found)
    else:
        output.line(f"featured {name} (rank {found.featured_rank})" if found.featured else f"unfeatured {name}")


def register(_: Any = None) -> None:
    """Nothing to do: importing this module adds its commands to `vibebox template` (cli/admin.py)."""
