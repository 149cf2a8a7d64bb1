"""Shared by the marketplace's SDK and CLI tests: template directories, and the pipeline's steps run
through the marketplace's real services against the live server's database (`manage.py shell`),
as the validation pipeline would call them (no build: the image is one the server has)."""

from __future__ import annotations

import uuid
from pathlib import Path

from conftest import LiveServer


def unique(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:6]}"


def template_dir(
    root: Path, name: str, version: str = "1.0.0", *, base: str = "debian:trixie", extra_yaml: str = ""
) -> Path:
    """A template directory: Dockerfile, template.yaml naming README.md, and context files, some of
    them left out by .dockerignore (and .git, always)."""
    directory = root / f"{name}-{version}"
    (directory / "src").mkdir(parents=True)
    (directory / "node_modules" / "left-pad").mkdir(parents=True)
    (directory / ".git").mkdir()
    (directory / "Dockerfile").write_text(f"FROM {base}\nCOPY src /opt/app\nRUN true\n")
    (directory / "template.yaml").write_text(
        f"name: {name}\n"
        f'version: "{version}"\n'
        f"description: {name}, an SDK test template\n"
        "tags: [sdk-test, demo]\n"
        "languages: [python]\n"
        "readme: README.md\n"
        'smoke: "true"\n'
        f'changelog: "Version {version}."\n' + extra_yaml
    )
    (directory / "README.md").write_text(f"# {name}\n\nA test template.\n")
    (directory / "src" / "app.py").write_text("print('hi')\n")
    (directory / "src" / "debug.log").write_text("noise\n")
    (directory / "src" / "keep.log").write_text("kept by an exception\n")
    (directory / "node_modules" / "left-pad" / "index.js").write_text("module.exports = 1;\n")
    (directory / ".git" / "HEAD").write_text("ref: refs/heads/main\n")
    (directory / ".dockerignore").write_text("# dependencies\nnode_modules\n**/*.log\n!src/keep.log\n")
    return directory


def _shell(server: LiveServer, code: str) -> str:
    return server.manage("shell", "-c", "from apps.marketplace import services\n" + code)


def context_names(server: LiveServer, submission_id: str) -> list[str]:
    """The names in the build context tar the server stored for the submission."""
    code = (
        "import tarfile\n"
        "from apps.marketplace.models import Submission\n"
        f"s = Submission.objects.get(pk={submission_id!r})\n"
        "print(sorted(m.name for m in tarfile.open(s.context_path)) if s.context_path else [])\n"
    )
    return eval(_shell(server, code).strip().splitlines()[-1])  # noqa: S307  (our own server's repr of a list)


def start_build(server: LiveServer, submission_id: str, log: str = "Step 1/3 : FROM debian:trixie\n") -> None:
    _shell(
        server,
        f"assert services.submission_start({submission_id!r}) is not None\n"
        f"services.submission_log_append({submission_id!r}, {log!r})\n",
    )


def append_log(server: LiveServer, submission_id: str, text: str) -> None:
    _shell(server, f"services.submission_log_append({submission_id!r}, {text!r})\n")


def fail(server: LiveServer, submission_id: str, step: str, message: str) -> None:
    _shell(server, f"services.submission_fail({submission_id!r}, step={step!r}, message={message!r})\n")


def pass_pipeline(server: LiveServer, submission_id: str, image: str, *, started: bool = False) -> None:
    """The pipeline's calls from queued (or building) to passed: private ones end published, public
    ones awaiting review."""
    begin = "" if started else "assert services.submission_start(sid) is not None\n"
    _shell(
        server,
        f"sid = {submission_id!r}\n"
        + begin
        + "services.submission_log_append(sid, 'Step 2/3 : COPY src /opt/app\\nStep 3/3 : RUN true\\n')\n"
        f"services.submission_progress(sid, state='smoke_testing', image={image!r}, image_size=1234,"
        " build_seconds=1.5)\n"
        "services.submission_candidate(sid)\n"
        "services.submission_progress(sid, state='smoke_testing', smoke_output='smoke ok\\n')\n"
        "services.submission_passed(sid)\n",
    )
