"""Snapshot commands: vibebox snapshot create|ls|restore|new|rm."""

from __future__ import annotations

from typing import Annotated

import typer

from . import output
from .common import JsonFlag, client, get_sandbox

app = typer.Typer(help="Snapshots: a sandbox's files (not its memory), to roll back to or start from.")
SandboxArg = Annotated[str, typer.Argument(help="The sandbox's name or id.", show_default=False)]
SnapshotArg = Annotated[str, typer.Argument(help="The snapshot's id (snap_…).", show_default=False)]


def _size(value: int | None) -> str:
    return "-" if value is None else f"{value / 1024**2:.1f} MiB"


@app.command("create")
def create(
    sandbox: SandboxArg,
    name: Annotated[str | None, typer.Argument(help="A name (default: sandbox name and time).")] = None,
    json: JsonFlag = False,
) -> None:
    """Snapshot a sandbox (it is frozen for the moment it takes): `vibebox snapshot create my-app before-deploy`."""
    with output.spinner(f"snapshotting {sandbox}..."):
        snapshot = get_sandbox(sandbox).snapshot(name)
    if json:
        output.print_json(snapshot)
        return
    output.table(["ID", "NAME", "SIZE"], [(snapshot.id, snapshot.name, _size(snapshot.size))])


@app.command("ls")
def list_(
    sandbox: Annotated[str | None, typer.Argument(help="Only this sandbox's snapshots.")] = None,
    json: JsonFlag = False,
) -> None:
    """List your snapshots (they outlive their sandboxes), newest first."""
    snapshots = get_sandbox(sandbox).snapshots() if sandbox else client().snapshots()
    if json:
        output.print_json(snapshots)
        return
    rows = [(s.id, s.name, s.sandbox_name, s.template, _size(s.size), s.created_at) for s in snapshots]
    output.table(["ID", "NAME", "SANDBOX", "TEMPLATE", "SIZE", "CREATED"], rows)


@app.command("restore")
def restore(sandbox: SandboxArg, snapshot: SnapshotArg, json: JsonFlag = False) -> None:
    """Roll a sandbox back to a snapshot, in place (same id, name and settings)."""
    with output.spinner(f"restoring {sandbox}..."):
        box = get_sandbox(sandbox).restore(snapshot)
    if json:
        output.print_json(box)
        return
    output.note(f"restored {box.name} ({box.id}) from {snapshot}; it is {box.status}")


@app.command("new")
def new(
    snapshot: SnapshotArg,
    name: Annotated[str | None, typer.Argument(help="Name (default: generated).")] = None,
    json: JsonFlag = False,
) -> None:
    """Create a new sandbox from a snapshot."""
    with output.spinner("creating a sandbox from the snapshot..."):
        box = client().create(snapshot=snapshot, name=name)
    if json:
        output.print_json(box)
        return
    output.sandbox_fields(box)


@app.command("rm")
def remove(snapshots: Annotated[list[str], typer.Argument(help="Snapshot ids.", show_default=False)]) -> None:
    """Delete snapshots (sandboxes made from them keep running)."""
    vb = client()
    for snapshot in snapshots:
        vb.delete_snapshot(snapshot)
        output.note(f"deleted {snapshot}")


def register(root: typer.Typer) -> None:
    root.add_typer(app, name="snapshot", rich_help_panel="Sandboxes")
