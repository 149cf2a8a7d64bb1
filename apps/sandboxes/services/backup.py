"""Backups and disaster recovery (docs/operations.md, "Backups"): `manage.py backup` writes one
archive, `manage.py restore` puts it back onto a fresh machine.

The archive is one tar file (mode 0600: it holds every row, and the secret key unless left out)
whose first member, `manifest.json`, names everything else with its size and SHA-256:

- the database: SQLite's online backup API copy (`database.sqlite3`, integrity-checked) or
  PostgreSQL's `pg_dump --format=custom` (`database.pgdump`);
- the secret key (`secret_key`, DATA_DIR's file) when the server's key comes from there, and the
  fingerprints (an HMAC of a fixed text, not the keys) of the three keys the data depends on:
  SECRET_KEY, VIBEBOX_KEY_HASH_SECRET (API keys' hashes) and VIBEBOX_ENCRYPTION_KEY (webhook
  secrets, secret env values, git credentials, SSO client secrets: vibebox/crypto.py);
- template definitions: DATA_DIR/marketplace (submitted templates' build contexts), and the audit
  log's archive (VIBEBOX_AUDIT_ARCHIVE_DIR), each as a tar;
- with `volumes`, every live sandbox's workspace volume (a tar each); with `snapshots`, every
  snapshot's image (`docker save`) and workspace archive.

A restore checks the whole archive (manifest, every member's size and digest), the database kind,
the migrations, the keys and the target before it changes anything; then the database goes in in
one step (SQLite's backup API into the target file; `pg_restore --single-transaction`), then the
key, the files, the volumes and the snapshots, and `backup.restored` is recorded.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import shutil
import sqlite3
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.db import connections
from django.db.migrations.loader import MigrationLoader
from django.db.migrations.recorder import MigrationRecorder
from django.utils import timezone

from apps.audit.services import record

from ..models import Sandbox, Snapshot, Status
from ..runtime import driver_for, get_driver
from ..specs import base_labels

FORMAT = "vibebox-backup"
VERSION = 1
PREFIX = "vibebox-"
SUFFIX = ".tar"
MANIFEST = "manifest.json"
CHUNK = 1 << 20
FINGERPRINT_TEXT = b"vibebox-backup-key-fingerprint-v1"
# DATA_DIR's folders a backup keeps (as `files/<name>.tar`), by name -> the setting that places them.
FOLDERS = {"marketplace": "VIBEBOX_MARKETPLACE_DIR", "audit-archive": "VIBEBOX_AUDIT_ARCHIVE_DIR"}
# libpq connection parameters DATABASE_URL may carry in OPTIONS (vibebox/env.py), passed to pg_dump/pg_restore.
LIBPQ_OPTIONS = {"sslmode", "sslrootcert", "sslcert", "sslkey", "application_name", "connect_timeout", "options"}


class BackupError(Exception):
    """A backup or a restore that cannot go on; the message says why (the commands print it)."""


@dataclass
class Result:
    path: Path
    manifest: dict
    removed: list[str] = field(default_factory=list)


# ---- the keys ----


def fingerprint(key: str) -> str:
    return hmac.new(key.encode(), FINGERPRINT_TEXT, hashlib.sha256).hexdigest()


def _env(name: str) -> str:
    return os.environ.get(name, "").strip()


def _keys(secret_key: str) -> dict[str, str]:
    """The keys the data depends on, as the settings derive them (vibebox/settings.py) when
    SECRET_KEY is `secret_key`: the environment's own values win."""
    secret = _env("VIBEBOX_SECRET_KEY") or _env("DJANGO_SECRET_KEY") or secret_key
    return {
        "secret_key": secret,
        "key_hash_secret": _env("VIBEBOX_KEY_HASH_SECRET") or secret,
        "encryption_key": _env("VIBEBOX_ENCRYPTION_KEY") or secret,
    }


def _key_file() -> Path:
    return Path(settings.DATA_DIR) / "secret_key"


def _key_from_file() -> bool:
    """The server's SECRET_KEY is DATA_DIR/secret_key's (no VIBEBOX_SECRET_KEY in the environment)."""
    path = _key_file()
    return path.exists() and path.read_text().strip() == settings.SECRET_KEY


# ---- the database ----


def _vendor() -> str:
    return connections["default"].vendor


def _libpq() -> tuple[list[str], dict[str, str]]:
    """pg_dump/pg_restore's `--dbname` conninfo and environment (the password) for the database."""
    database = settings.DATABASES["default"]
    parts = {"dbname": database["NAME"], "host": database.get("HOST"), "port": database.get("PORT")}
    parts["user"] = database.get("USER")
    parts.update({k: v for k, v in (database.get("OPTIONS") or {}).items() if k in LIBPQ_OPTIONS})
    conninfo = " ".join(
        f"{k}='{str(v).replace(chr(92), chr(92) * 2).replace(chr(39), chr(92) + chr(39))}'"
        for k, v in parts.items()
        if v
    )
    env = {**os.environ, "PGPASSWORD": str(database.get("PASSWORD") or "")}
    return [f"--dbname={conninfo}"], env


def _pg_tool(name: str) -> str:
    """Debian's postgresql-client (`make postgres`): /usr/bin's wrapper, else the newest version's."""
    found = shutil.which(name) or next(
        iter(sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True)), None
    )
    if not found:
        raise BackupError(f"{name} is not installed: install Debian's postgresql-client (make postgres).")
    return str(found)


def _run(command: list[str], env: dict[str, str]) -> None:
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise BackupError(f"{Path(command[0]).name} failed: {done.stderr.strip() or done.returncode}")


def _dump_database(folder: Path) -> str:
    connection = connections["default"]
    if connection.vendor == "sqlite":
        target = folder / "database.sqlite3"
        connection.ensure_connection()
        copy = sqlite3.connect(target)
        try:
            connection.connection.backup(copy)
            verdict = copy.execute("PRAGMA integrity_check").fetchone()[0]
        finally:
            copy.close()
        if verdict != "ok":
            raise BackupError(f"The database copy failed its integrity check: {verdict}")
        return target.name
    if connection.vendor == "postgresql":
        target = folder / "database.pgdump"
        dbname, env = _libpq()
        _run(
            [_pg_tool("pg_dump"), "--format=custom", "--no-owner", "--no-privileges", f"--file={target}", *dbname], env
        )
        return target.name
    raise BackupError(f"No backup for a {connection.vendor} database.")


def _applied_migrations() -> list[str]:
    return sorted(f"{app}.{name}" for app, name in MigrationRecorder(connections["default"]).applied_migrations())


def _people() -> int:
    """Rows a person made in the target database (user accounts): a fresh machine has none."""
    connection = connections["default"]
    table = get_user_model()._meta.db_table
    with connection.cursor() as cursor:
        if table not in connection.introspection.table_names(cursor):
            return 0
        cursor.execute(f"SELECT COUNT(*) FROM {connection.ops.quote_name(table)}")  # noqa: S608 (the model's own table)
        return cursor.fetchone()[0]


def _restore_database(path: Path, vendor: str) -> None:
    connections.close_all()
    if vendor == "sqlite":
        name = settings.DATABASES["default"]["NAME"]
        source = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        target = sqlite3.connect(name)
        try:
            source.backup(target)  # the whole database in one step: every page, or none
        finally:
            source.close()
            target.close()
        return
    dbname, env = _libpq()
    command = [_pg_tool("pg_restore"), "--clean", "--if-exists", "--no-owner", "--no-privileges"]
    _run([*command, "--single-transaction", "--exit-on-error", *dbname, str(path)], env)


# ---- files, volumes, snapshots ----


def _tar_folder(source: Path, target: Path) -> None:
    with tarfile.open(target, "w") as archive:
        archive.add(source, arcname=".")


def _untar_folder(source: Path, target: Path) -> None:
    target.mkdir(parents=True, exist_ok=True)
    with tarfile.open(source) as archive:
        archive.extractall(target, filter="data")


def _private(info: tarfile.TarInfo) -> tarfile.TarInfo:
    info.mode, info.uid, info.gid, info.uname, info.gname = 0o600, 0, 0, "", ""
    return info


def _digest(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for chunk in iter(lambda: handle.read(CHUNK), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _save_workspace(driver, sandbox: Sandbox, target: Path) -> str:
    """The sandbox's /workspace as a tar at `target`: from its volume, or, for a sandbox with a
    disk limit (its workspace in the container's writable layer), from its container. Answers
    where it came from ("volume", "container"), or "" when neither is in the engine."""
    if driver.volume_exists(sandbox.volume_name):
        driver.volume_export(sandbox.volume_name, target)
        return "volume"
    if driver.inspect(sandbox.container_name) is None:
        return ""
    chunks, _ = driver.get_archive(sandbox.container_name, "/workspace")
    with target.open("wb") as out:
        for chunk in chunks:
            out.write(chunk)
    return "container"


def _live_sandboxes():
    return Sandbox.objects.select_related("node").exclude(status=Status.DESTROYED).order_by("created_at")


# ---- backup ----


def backup_create(
    *, output: Path, volumes: bool = False, snapshots: bool = False, secret_key: bool = True, keep: int = 0
) -> Result:
    """Writes `output`/vibebox-<UTC time>.tar (mode 0600) and records `backup.created`; with
    `keep`, removes all but the newest `keep` archives there."""
    if keep < 0:
        raise BackupError("--keep is 0 (keep all) or more.")
    output.mkdir(parents=True, exist_ok=True, mode=0o700)
    now = timezone.now()
    target = output / f"{PREFIX}{now:%Y%m%dT%H%M%S%fZ}{SUFFIX}"
    with tempfile.TemporaryDirectory(dir=output, prefix=".staging-") as staging:
        folder = Path(staging)
        parts: list[dict] = []

        def part(name: str, kind: str, **extra) -> None:
            path = folder / name
            parts.append({"name": name, "kind": kind, "bytes": path.stat().st_size, "sha256": _digest(path), **extra})

        part(_dump_database(folder), "database")
        from_file = _key_from_file()
        if secret_key and from_file:
            shutil.copyfile(_key_file(), folder / "secret_key")
            part("secret_key", "secret_key")
        (folder / "files").mkdir()
        for name, setting in FOLDERS.items():
            source = Path(getattr(settings, setting))
            if source.is_dir():
                _tar_folder(source, folder / "files" / f"{name}.tar")
                part(f"files/{name}.tar", "folder", folder=name)
        if volumes:
            (folder / "volumes").mkdir()
            for sandbox in _live_sandboxes():
                source = _save_workspace(
                    driver_for(sandbox), sandbox, folder / "volumes" / f"{sandbox.volume_name}.tar"
                )
                if source:
                    name = f"volumes/{sandbox.volume_name}.tar"
                    part(name, "volume", volume=sandbox.volume_name, sandbox=sandbox.id, source=source)
        if snapshots:
            (folder / "snapshots").mkdir()
            for snapshot in Snapshot.objects.select_related("node").order_by("created_at"):
                driver = driver_for(snapshot)  # the engine holding its image
                if driver.image_exists(snapshot.image):
                    with open(folder / "snapshots" / f"{snapshot.id}.image.tar", "wb") as out:
                        for chunk in driver.image_save(snapshot.image):
                            out.write(chunk)
                    part(
                        f"snapshots/{snapshot.id}.image.tar",
                        "snapshot_image",
                        snapshot=snapshot.id,
                        image=snapshot.image,
                    )
                archive = Path(settings.VIBEBOX_SNAPSHOT_DIR) / f"{snapshot.id}.tar"
                if archive.exists():
                    shutil.copyfile(archive, folder / "snapshots" / f"{snapshot.id}.tar")
                    part(f"snapshots/{snapshot.id}.tar", "snapshot_archive", snapshot=snapshot.id)
        keys = _keys(settings.SECRET_KEY)
        manifest = {
            "format": FORMAT,
            "version": VERSION,
            "created": now.isoformat(),
            "database": {"vendor": _vendor(), "migrations": _applied_migrations()},
            "keys": {
                name: {"fingerprint": fingerprint(value), "included": name == "secret_key" and secret_key and from_file}
                for name, value in keys.items()
            },
            "counts": {"sandboxes": _live_sandboxes().count(), "snapshots": Snapshot.objects.count()},
            "parts": parts,
        }
        partial = target.with_name(target.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle, tarfile.open(fileobj=handle, mode="w") as archive:
                data = json.dumps(manifest, indent=2, sort_keys=True).encode()
                info = tarfile.TarInfo(MANIFEST)
                info.size, info.mode, info.mtime = len(data), 0o600, int(now.timestamp())
                archive.addfile(info, io.BytesIO(data))
                for entry in parts:
                    archive.add(folder / entry["name"], arcname=entry["name"], recursive=False, filter=_private)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        partial.rename(target)  # a file named like a backup is a whole one
    size = target.stat().st_size
    record("backup.created", org_id="", target_type="backup", target_id=target.name, changes={"bytes": size})
    removed = []
    if keep:
        for old in sorted(output.glob(f"{PREFIX}*{SUFFIX}"))[:-keep]:
            old.unlink()
            removed.append(old.name)
    return Result(path=target, manifest=manifest, removed=removed)


# ---- restore ----


def read_manifest(archive: tarfile.TarFile) -> dict:
    try:
        member = archive.getmember(MANIFEST)
        manifest = json.loads(archive.extractfile(member).read())
    except (KeyError, AttributeError, ValueError):
        raise BackupError("Not a VibeBox backup: no readable manifest.json.") from None
    if manifest.get("format") != FORMAT:
        raise BackupError("Not a VibeBox backup: the manifest's format is not vibebox-backup.")
    if manifest.get("version") != VERSION:
        raise BackupError(
            f"A backup of format version {manifest.get('version')}; this VibeBox reads version {VERSION}."
        )
    return manifest


def _verify_and_stage(archive: tarfile.TarFile, manifest: dict, folder: Path) -> dict[str, Path]:
    """Every part the manifest names, extracted by name into `folder` and checked (size, SHA-256);
    the archive may hold nothing else."""
    names = {entry["name"] for entry in manifest["parts"]}
    unexpected = sorted(set(archive.getnames()) - names - {MANIFEST})
    if unexpected:
        raise BackupError(f"The archive holds files its manifest does not name: {', '.join(unexpected[:5])}")
    staged = {}
    for index, entry in enumerate(manifest["parts"]):
        try:
            member = archive.getmember(entry["name"])
        except KeyError:
            raise BackupError(f"The archive lacks {entry['name']} (named by its manifest).") from None
        source = archive.extractfile(member) if member.isfile() else None
        if source is None:
            raise BackupError(f"{entry['name']} is not a regular file in the archive.")
        path = folder / f"{index}.part"
        digest, size = hashlib.sha256(), 0
        with path.open("wb") as out:
            for chunk in iter(lambda stream=source: stream.read(CHUNK), b""):
                digest.update(chunk)
                size += len(chunk)
                out.write(chunk)
        if size != entry["bytes"] or digest.hexdigest() != entry["sha256"]:
            raise BackupError(
                f"{entry['name']} does not match the manifest's size and SHA-256: the archive is damaged."
            )
        staged[entry["name"]] = path
    return staged


def _check_keys(manifest: dict, staged: dict[str, Path]) -> str | None:
    """The secret key to write into DATA_DIR (None: keep what is there); refuses keys whose
    fingerprints differ from the backup's, naming them."""
    included = staged.get("secret_key")
    restored = included.read_text().strip() if included else settings.SECRET_KEY
    keys = _keys(restored)
    wrong = [name for name, value in keys.items() if fingerprint(value) != manifest["keys"][name]["fingerprint"]]
    if "secret_key" in wrong:  # the others follow it unless the environment sets them
        own = {"key_hash_secret": "VIBEBOX_KEY_HASH_SECRET", "encryption_key": "VIBEBOX_ENCRYPTION_KEY"}
        wrong = [name for name in wrong if name == "secret_key" or _env(own[name])]
    if wrong:
        hint = {
            "secret_key": "VIBEBOX_SECRET_KEY (or DATA_DIR/secret_key, when the backup left it out)",
            "key_hash_secret": "VIBEBOX_KEY_HASH_SECRET",
            "encryption_key": "VIBEBOX_ENCRYPTION_KEY",
        }
        raise BackupError(
            "The keys differ from the backup's, so its API keys and stored secrets would not work: "
            + ", ".join(hint[name] for name in wrong)
            + ". Set the values the backed-up server had; nothing was restored."
        )
    return restored if included else None


def backup_restore(*, archive_path: Path, force: bool = False, volumes: bool = True, snapshots: bool = True) -> dict:
    """Checks everything, then restores; answers what was restored (for the command to print)."""
    try:
        archive = tarfile.open(archive_path)  # noqa: SIM115 (closed by the `with` below)
    except (OSError, tarfile.TarError) as exc:
        raise BackupError(f"Cannot read {archive_path}: {exc}") from None
    # Staged beside the data (the volumes and images may not fit a small /tmp).
    with archive, tempfile.TemporaryDirectory(dir=settings.DATA_DIR, prefix=".restore-") as staging:
        manifest = read_manifest(archive)
        vendor = manifest["database"]["vendor"]
        if vendor != _vendor():
            raise BackupError(f"A backup of a {vendor} database cannot be restored into {_vendor()}.")
        unknown = sorted(set(manifest["database"]["migrations"]) - _known_migrations())
        if unknown:
            raise BackupError(f"The backup was made by a newer VibeBox (unknown migrations: {', '.join(unknown[:5])}).")
        staged = _verify_and_stage(archive, manifest, Path(staging))
        secret_key = _check_keys(manifest, staged)
        people = _people()
        if people and not force:
            raise BackupError(f"The target database is not empty ({people} user account(s)): --force replaces it.")
        parts = manifest["parts"]
        wanted_volumes = [p for p in parts if p["kind"] == "volume"] if volumes else []
        images = [p for p in parts if p["kind"] == "snapshot_image"] if snapshots else []
        # Into the local engine (volumes and snapshot images; onto nodes: not yet, docs/nodes.md).
        driver = get_driver() if wanted_volumes or images else None
        taken = [p["volume"] for p in wanted_volumes if driver.volume_exists(p["volume"])]
        if taken and not force:
            raise BackupError(
                f"The engine has volumes of the same names ({', '.join(taken[:5])}): --force replaces them."
            )

        database = next(p for p in parts if p["kind"] == "database")
        _restore_database(staged[database["name"]], vendor)
        if secret_key is not None:
            _write_key(secret_key)
        for entry in parts:
            if entry["kind"] == "folder" and entry["folder"] in FOLDERS:
                _untar_folder(staged[entry["name"]], Path(getattr(settings, FOLDERS[entry["folder"]])))
        for entry in wanted_volumes:
            labels = {**base_labels(), "vibebox.sandbox-id": entry["sandbox"]}
            driver.volume_import(entry["volume"], staged[entry["name"]], labels=labels, replace=force)
        for entry in images:
            with open(staged[entry["name"]], "rb") as data:
                driver.image_load(iter(lambda data=data: data.read(CHUNK), b""))
        if snapshots:
            folder = Path(settings.VIBEBOX_SNAPSHOT_DIR)
            for entry in parts:
                if entry["kind"] == "snapshot_archive":
                    folder.mkdir(parents=True, exist_ok=True)
                    shutil.copyfile(staged[entry["name"]], folder / f"{entry['snapshot']}.tar")
        done = {
            "database": vendor,
            "secret_key": secret_key is not None,
            "folders": [p["folder"] for p in parts if p["kind"] == "folder"],
            "volumes": len(wanted_volumes),
            "snapshot_images": len(images),
        }
        record(
            "backup.restored",
            org_id="",
            target_type="backup",
            target_id=archive_path.name,
            changes={"created": manifest["created"], **done},
        )
        return done


def _known_migrations() -> set[str]:
    loader = MigrationLoader(None, ignore_no_migrations=True)
    return {f"{app}.{name}" for app, name in loader.disk_migrations}


def _write_key(value: str) -> None:
    """DATA_DIR/secret_key as the backup had it; this process goes on with it too (its audit
    entry, the restored secrets)."""
    path = _key_file()
    partial = path.with_name(path.name + ".restoring")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value)
    partial.rename(path)
    keys = _keys(value)
    settings.SECRET_KEY = keys["secret_key"]
    settings.VIBEBOX_KEY_HASH_SECRET = keys["key_hash_secret"]
    settings.VIBEBOX_ENCRYPTION_KEY = keys["encryption_key"]
