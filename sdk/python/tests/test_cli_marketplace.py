"""`vibebox template submit|status|submissions|cancel|review|search|show|reviews|rate|yank|deprecate`:
the real console script against the live test server; the pipeline's steps run through the
marketplace's real services (`marketplace_helpers`), while `--wait`/`--follow` follow the log."""

from __future__ import annotations

import json
import subprocess

import pytest
from conftest import VIBEBOX, cli
from marketplace_helpers import append_log, fail, pass_pipeline, start_build, template_dir, unique


def _follow(cli_env, *args: str) -> subprocess.Popen:
    return subprocess.Popen(
        [VIBEBOX, *args],
        env=cli_env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_submit_status_list_cancel(cli_env, tmp_path):
    name = unique("cli-sub")
    submitted = cli(cli_env, "template", "submit", str(template_dir(tmp_path, name)))
    assert submitted.returncode == 0, submitted.stderr
    sub_id = submitted.stdout.strip()
    assert sub_id.startswith("sub_") and f"vibebox template status {sub_id} --follow" in submitted.stderr

    status = cli(cli_env, "template", "status", sub_id)
    assert status.returncode == 0, status.stderr
    assert "queued" in status.stdout and f"{name}@1.0.0" in status.stdout and "private" in status.stdout
    as_json = json.loads(cli(cli_env, "template", "status", sub_id, "--json").stdout)
    assert (as_json["id"], as_json["state"], as_json["spec"]["name"]) == (sub_id, "queued", name)
    listed = cli(cli_env, "template", "submissions", "--state", "queued")
    assert listed.returncode == 0 and sub_id in listed.stdout and "STATE" in listed.stdout

    cancelled = cli(cli_env, "template", "cancel", sub_id)
    assert cancelled.returncode == 0 and f"cancelled {sub_id}" in cancelled.stdout
    again = cli(cli_env, "template", "cancel", sub_id)
    assert again.returncode == 1 and "submission_state_conflict" in again.stderr
    missing = cli(cli_env, "template", "status", "sub_nope")
    assert missing.returncode == 3 and "submission_not_found" in missing.stderr


def test_submit_refusals(cli_env, tmp_path):
    directory = template_dir(tmp_path, unique("cli-bad"))
    (directory / "template.yaml").write_text("name: Not A Slug\nversion: one\n")
    refused = cli(cli_env, "template", "submit", str(directory))
    assert refused.returncode == 1 and "invalid_template_yaml" in refused.stderr
    assert "version" in refused.stderr and "name" in refused.stderr  # each field and why
    (directory / "template.yaml").unlink()
    missing = cli(cli_env, "template", "submit", str(directory))
    assert missing.returncode == 1 and "no template.yaml" in missing.stderr
    usage = cli(cli_env, "template", "review", "sub_x", "--reject")
    assert usage.returncode == 2 and "--reason" in usage.stderr


def test_submit_wait_prints_the_log_and_fails_with_the_step(cli_env, server, tmp_path):
    waiting = _follow(cli_env, "template", "submit", str(template_dir(tmp_path, unique("cli-wait"))), "--wait")
    try:
        assert waiting.stdout is not None
        sub_id = waiting.stdout.readline().strip()
        assert sub_id.startswith("sub_")
        start_build(server, sub_id, "Step 1/3 : FROM debian:trixie\n")
        append_log(server, sub_id, "Step 2/3 : COPY src /opt/app\n")
        fail(server, sub_id, "build", "Step 2/3 failed: COPY failed: no source files were specified")
        out, err = waiting.communicate(timeout=120)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 1, err
    assert "Step 1/3 : FROM debian:trixie\nStep 2/3 : COPY src /opt/app\n" in err
    assert "failed at build: Step 2/3 failed: COPY failed" in err and out == ""

    # status --follow on one that already ended says the same at once.
    again = cli(cli_env, "template", "status", sub_id, "--follow")
    assert again.returncode == 1 and "failed at build" in again.stderr


@pytest.fixture(scope="module")
def base_image(vb):
    template = vb.template("python-3.13")
    if not template.image:
        pytest.skip("python-3.13's image is not built here")
    return template.name, template.image


def test_follow_review_search_show_rate_yank(cli_env, server, vb, tmp_path, base_image):
    base, image = base_image
    name = unique("cli-cat")
    directory = template_dir(tmp_path, name, base=f"vibebox/{base}")
    submitted = cli(cli_env, "template", "submit", str(directory), "--public", "--json")
    assert submitted.returncode == 0, submitted.stderr
    sub_id = json.loads(submitted.stdout)["id"]
    follower = _follow(cli_env, "template", "status", sub_id, "--follow")
    try:
        pass_pipeline(server, sub_id, image)
        _out, err = follower.communicate(timeout=120)
    finally:
        if follower.poll() is None:
            follower.kill()
    assert follower.returncode == 0, err
    assert "Step 3/3 : RUN true" in err and "awaiting staff review" in err

    approved = cli(cli_env, "template", "review", sub_id, "--approve", "--reason", "ok")
    assert approved.returncode == 0 and f"published {sub_id}" in approved.stdout

    found = cli(cli_env, "template", "search", name, "--community", "--sort", "newest")
    assert found.returncode == 0 and name in found.stdout and "community" in found.stdout
    assert [t["name"] for t in json.loads(cli(cli_env, "template", "search", name, "--json").stdout)] == [name]
    assert name not in cli(cli_env, "template", "search", "--official", "--limit", "500").stdout
    assert name in cli(cli_env, "template", "search", "--tag", "sdk-test", "--language", "python").stdout
    shown = cli(cli_env, "template", "show", name)
    assert shown.returncode == 0 and "1.0.0" in shown.stdout and f"# {name}" in shown.stdout
    assert "Version 1.0.0." in shown.stdout

    refused = cli(cli_env, "template", "rate", name, "5")
    assert refused.returncode == 4 and "review_not_allowed" in refused.stderr
    box = vb.create(name, auto_start=False)
    try:
        rated = cli(cli_env, "template", "rate", name, "5", "great start")
        assert rated.returncode == 0 and "★★★★★" in rated.stdout
        reviews = json.loads(cli(cli_env, "template", "reviews", name, "--json").stdout)
        assert [(r["rating"], r["text"]) for r in reviews] == [(5, "great start")]
        assert "5.0 (1)" in cli(cli_env, "template", "show", name).stdout
    finally:
        box.destroy()
    bad_rating = cli(cli_env, "template", "rate", name, "6")
    assert bad_rating.returncode == 2

    yanked = cli(cli_env, "template", "yank", name, "1.0.0", "--reason", "broken")
    assert yanked.returncode == 0 and f"yanked {name}@1.0.0" in yanked.stdout
    assert "yes: broken" in cli(cli_env, "template", "show", name).stdout
    unknown = cli(cli_env, "template", "yank", name, "9.9.9")
    assert unknown.returncode == 3 and "template_version_not_found" in unknown.stderr
    deprecated = cli(cli_env, "template", "deprecate", name, "Old.", "--replacement", "python-3.13")
    assert deprecated.returncode == 0 and "(use python-3.13)" in cli(cli_env, "template", "show", name).stdout
