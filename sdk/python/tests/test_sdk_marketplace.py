"""`vb.marketplace` (sync and async) against the live server: a directory submitted (its context
without .git and what .dockerignore leaves out, as the server stored it), listed, read, cancelled;
validation errors as the SDK's exception classes, the context's size checked before sending;
`wait` following the build log to a failure; and the catalogue (search, show, reviews only after a
use, yank and pinning, deprecation, featuring) on versions taken through the pipeline's real
services (`marketplace_helpers`: no build, an image the server has)."""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
import time

import pytest
from marketplace_helpers import append_log, context_names, fail, pass_pipeline, start_build, template_dir, unique
from vibebox_sdk import (
    AsyncVibeBox,
    BuildContextTooLargeError,
    InvalidBuildContextError,
    InvalidDockerfileError,
    InvalidTemplateYamlError,
    MarketplaceTemplate,
    Review,
    ReviewNotAllowedError,
    Submission,
    SubmissionFailedError,
    SubmissionNotFoundError,
    SubmissionStateError,
    TemplateNotFoundError,
    TemplateVersion,
    TemplateVersionNotFoundError,
    TemplateVersionYankedError,
    UnknownTemplateVersionError,
    ValidationError,
    VibeBox,
)
from vibebox_sdk.marketplace import FRAME_MAX, IgnoreRules, _alog_live, _BadFrame, _log_live, _log_message
from websockets.sync.server import serve


@pytest.fixture(scope="module")
def base_image(vb: VibeBox) -> tuple[str, str]:
    """(name, image) of the built-in template marketplace versions here are made from."""
    template = vb.template("python-3.13")
    if not template.image:
        pytest.skip("python-3.13's image is not built here")
    return template.name, template.image


def test_submit_a_directory_then_list_get_cancel(vb, server, tmp_path):
    name = unique("sdk-sub")
    sub = vb.marketplace.submit(template_dir(tmp_path, name))
    assert isinstance(sub, Submission) and sub.id.startswith("sub_")
    assert (sub.state, sub.template, sub.version, sub.visibility) == ("queued", name, "1.0.0", "private")
    assert sub.context_bytes > 0 and sub.failed_step == "" and sub.template_version is None
    # The context: the other files, without .git, node_modules and *.log but src/keep.log.
    names = context_names(server, sub.id)
    assert names == [".dockerignore", "README.md", "src/app.py", "src/keep.log"]

    got = vb.marketplace.submission(sub.id)
    assert got.id == sub.id and got.state == "queued" and got.build_log == "" and got.log_size == 0
    assert got.spec["name"] == name and got.spec["readmeText"].startswith(f"# {name}")
    assert sub.id in [s.id for s in vb.marketplace.submissions()]
    assert sub.id in [s.id for s in vb.marketplace.submissions(state="queued")]
    assert sub.id not in [s.id for s in vb.marketplace.submissions(state="published")]
    assert len(vb.marketplace.submissions(limit=1)) == 1

    cancelled = vb.marketplace.cancel(sub)
    assert cancelled.state == "cancelled" and cancelled.ended and not cancelled.succeeded
    with pytest.raises(SubmissionStateError) as again:
        vb.marketplace.cancel(sub.id)
    assert again.value.status == 409 and again.value.code == "submission_state_conflict"
    with pytest.raises(SubmissionNotFoundError):
        vb.marketplace.submission("sub_doesnotexist")


def test_parts_instead_of_a_directory_and_validation_errors(vb, tmp_path):
    name = unique("sdk-parts")
    yaml = f'name: {name}\nversion: "0.1.0"\ndescription: parts\nsmoke: "true"\n'
    sub = vb.marketplace.submit(dockerfile="FROM debian:trixie\n", template_yaml=yaml, visibility="private")
    assert sub.state == "queued" and sub.context_bytes == 0
    vb.marketplace.cancel(sub)

    with pytest.raises(InvalidTemplateYamlError) as bad:
        vb.marketplace.submit(dockerfile="FROM debian:trixie\n", template_yaml=f"name: {name}\nversion: one\n")
    fields = bad.value.details["fields"]
    assert bad.value.status == 400 and "version" in fields and isinstance(bad.value, ValidationError)
    with pytest.raises(InvalidTemplateYamlError) as taken:  # a built-in's name
        vb.marketplace.submit(dockerfile="FROM debian:trixie\n", template_yaml=yaml.replace(name, "node-20"))
    assert taken.value.details["fields"]["name"][0]["code"] == "reserved"
    with pytest.raises(InvalidDockerfileError):
        vb.marketplace.submit(dockerfile="FROM registry.example.com/x\n", template_yaml=yaml)
    with pytest.raises(InvalidBuildContextError):
        vb.marketplace.submit(dockerfile="FROM debian:trixie\n", template_yaml=yaml, context=b"not a tar at all")

    # Checked before anything is sent: a directory without its template.yaml, a context too large.
    directory = template_dir(tmp_path, unique("sdk-big"))
    (directory / "data.bin").write_bytes(b"\0" * 4096)
    with pytest.raises(BuildContextTooLargeError) as large:
        vb.marketplace.submit(directory, context_limit=1024)
    assert large.value.status is None and large.value.details["largest"][0]["name"] == "data.bin"
    assert "data.bin" in str(large.value) and ".dockerignore" in str(large.value)
    (directory / "template.yaml").unlink()
    with pytest.raises(ValidationError) as missing:
        vb.marketplace.submit(directory)
    assert missing.value.details == {"missing": ["template.yaml"]}
    with pytest.raises(ValueError):
        vb.marketplace.submit(directory, dockerfile="FROM debian:trixie\n")


@pytest.mark.parametrize("live", [True, False], ids=["websocket", "polling"])
def test_wait_follows_the_build_log_to_a_failure(vb, server, tmp_path, live):
    sub = vb.marketplace.submit(template_dir(tmp_path, unique("sdk-fail")))
    seen: list[str] = []

    def pipeline():
        time.sleep(0.5)
        start_build(server, sub.id, "Step 1/3 : FROM debian:trixie\n")
        append_log(server, sub.id, "Step 2/3 : COPY src /opt/app\nStep 3/3 : RUN true\n")
        fail(server, sub.id, "policy", "The image ends as USER root.")

    driver = threading.Thread(target=pipeline)
    driver.start()
    try:
        with pytest.raises(SubmissionFailedError) as failed:
            # Live, the log comes over the WebSocket: a poll every 10 minutes would never end in time.
            poll = 600 if live else 0.2
            vb.marketplace.wait(sub, on_log=seen.append, poll=poll, timeout=120, check=True, live=live)
    finally:
        driver.join()
    last = failed.value.submission
    assert (last.state, last.failed_step, last.message) == ("failed", "policy", "The image ends as USER root.")
    assert "failed at policy" in str(failed.value) or "policy" in str(failed.value)
    # Every byte of the log reached on_log once, in order, whatever the polls cut it into.
    assert "".join(seen) == "Step 1/3 : FROM debian:trixie\nStep 2/3 : COPY src /opt/app\nStep 3/3 : RUN true\n"
    assert vb.marketplace.submission(sub.id, log_offset=len("Step 1/3 : FROM debian:trixie\n")).build_log.startswith(
        "Step 2/3"
    )
    # Without check, wait answers the last state.
    assert vb.marketplace.wait(sub.id).state == "failed"


def test_publish_search_show_rate_yank_deprecate_feature(vb, server, tmp_path, base_image):
    base, image = base_image
    name = unique("sdk-cat")
    sub = vb.marketplace.submit(template_dir(tmp_path, name, base=f"vibebox/{base}"), visibility="public")
    pass_pipeline(server, sub.id, image)
    waiting = vb.marketplace.wait(sub, timeout=30)
    assert waiting.state == "awaiting_review" and waiting.succeeded and waiting.smoke_output == "smoke ok\n"
    assert sub.id in [s.id for s in vb.marketplace.submissions(state="awaiting_review", all_orgs=True)]
    published = vb.marketplace.review(sub, True, "looks good")
    assert published.state == "published" and published.template_version == f"{name}@1.0.0"
    with pytest.raises(SubmissionStateError):
        vb.marketplace.review(sub, False, "too late")

    found = vb.marketplace.templates(name)
    assert [t.name for t in found] == [name] and isinstance(found[0], MarketplaceTemplate)
    assert found[0].latest_version == "1.0.0" and found[0].official is False and found[0].tags == ["sdk-test", "demo"]
    assert name in [t.name for t in vb.marketplace.templates(tag="sdk-test", official=False, sort="newest")]
    assert name in [t.name for t in vb.marketplace.templates(language="python", sort="name")]
    assert name not in [t.name for t in vb.marketplace.templates(official=True)]
    detail = vb.marketplace.template(name)
    assert detail.readme.startswith(f"# {name}") and detail.rating_count == 0 and detail.rating_average is None
    assert [v.version for v in detail.versions] == ["1.0.0"] and isinstance(detail.versions[0], TemplateVersion)
    assert detail.versions[0].changelog == "Version 1.0.0." and detail.usage == {"total": 0, "last30_days": 0}
    with pytest.raises(TemplateNotFoundError):
        vb.marketplace.template(unique("no-such"))

    # Only users who created a sandbox from it may rate it.
    with pytest.raises(ReviewNotAllowedError) as refused:
        vb.marketplace.rate(name, 5)
    assert refused.value.status == 403
    box = vb.create(name, auto_start=False)
    try:
        assert box.info.raw.get("templateVersion") == "1.0.0"
        review = vb.marketplace.rate(detail, 4, "solid")
        assert isinstance(review, Review) and (review.rating, review.text) == (4, "solid")
        assert vb.marketplace.rate(name, 5).rating == 5  # edited, not a second review
        assert [(r.rating, r.text) for r in vb.marketplace.reviews(name)] == [(5, "")]
        rated = vb.marketplace.template(name)
        assert (rated.rating_average, rated.rating_count) == (5.0, 1) and rated.usage["total"] == 1

        # A second version, then yank it: a bare name takes 1.0.0 again, a pin is refused.
        directory = template_dir(tmp_path, name, "1.1.0", base=f"vibebox/{base}")
        second = vb.marketplace.submit(directory, visibility="public")
        pass_pipeline(server, second.id, image)
        vb.marketplace.review(second.id, True)
        assert vb.marketplace.template(name).latest_version == "1.1.0"
        yanked = vb.marketplace.yank(name, "1.1.0", "broken start")
        assert isinstance(yanked, TemplateVersion) and yanked.yanked and yanked.yank_reason == "broken start"
        with pytest.raises(TemplateVersionNotFoundError):
            vb.marketplace.yank(name, "7.7.7")
        with pytest.raises(TemplateVersionYankedError) as pinned:
            vb.create(f"{name}@1.1.0", auto_start=False)
        assert pinned.value.details["reason"] == "broken start"
        with pytest.raises(UnknownTemplateVersionError) as unknown:
            vb.create(f"{name}@9.9.9", auto_start=False)
        assert unknown.value.details["versions"] == ["1.0.0"]
    finally:
        box.destroy()

    deprecated = vb.marketplace.deprecate(name, "Use python-3.13.", "python-3.13")
    assert deprecated.deprecation == {"message": "Use python-3.13.", "replacement": "python-3.13"}
    assert vb.marketplace.deprecate(name, "").deprecation is None
    featured = vb.marketplace.feature(name, True, rank=-7)
    assert featured.featured and featured.featured_rank == -7
    assert vb.marketplace.templates(featured=True)[0].name == name  # the lowest rank first
    assert not vb.marketplace.feature(name, False).featured


def test_async_client(server, tmp_path):
    async def main():
        async with AsyncVibeBox(api_key=server.key, base_url=server.url) as vb:
            sub = await vb.marketplace.submit(template_dir(tmp_path, unique("sdk-async")))
            assert sub.state == "queued"
            assert (await vb.marketplace.submission(sub)).id == sub.id
            assert sub.id in [s.id for s in await vb.marketplace.submissions(state="queued")]
            assert (await vb.marketplace.cancel(sub)).state == "cancelled"
            assert (await vb.marketplace.wait(sub, poll=0.1)).state == "cancelled"
            # With on_log, over the build log's WebSocket: its final state message ends the wait.
            logged: list[str] = []
            assert (await vb.marketplace.wait(sub, on_log=logged.append, poll=600)).state == "cancelled"
            assert await vb.marketplace.templates(official=True, limit=2)

    asyncio.run(main())


def test_dockerignore_rules():
    rules = IgnoreRules.parse("# c\n\nnode_modules\n/dist/\n**/*.pyc\n*.md\n!README.md\nbuild/**\n!build/keep\n")
    assert rules.excluded("node_modules/a/b.js") and rules.excluded("node_modules")
    assert rules.excluded("dist/app.js") and rules.excluded("a/b/c.pyc") and rules.excluded("x.pyc")
    assert rules.excluded("NOTES.md") and not rules.excluded("README.md") and not rules.excluded("docs/NOTES.md")
    assert rules.excluded("build/x") and not rules.excluded("build/keep")
    assert not rules.excluded("src/app.py") and not IgnoreRules().excluded("anything")


# The live build log's messages, from a stream server of the test's own (websockets' own server on
# a free local port): a message that is not the server's leaves the follow to polling from the last
# good offset instead of raising out of wait().

GOOD = json.dumps({"type": "log", "offset": 6, "text": "hello\n"})
BAD_FRAMES = {
    "not-json": "Step 1/2 :",
    "a-list": "[1, 2]",
    "a-string": '"log"',
    "offset-text": json.dumps({"type": "log", "offset": "7", "text": "x"}),
    "offset-bool": json.dumps({"type": "log", "offset": True, "text": "x"}),
    "offset-backwards": json.dumps({"type": "log", "offset": 3, "text": "x"}),
    "offset-negative": json.dumps({"type": "log", "offset": -1, "text": "x"}),
    "offset-missing": json.dumps({"type": "log", "text": "x"}),
    "text-not-text": json.dumps({"type": "log", "offset": 9, "text": {"a": 1}}),
    "text-too-big": json.dumps({"type": "log", "offset": 6 + FRAME_MAX + 1, "text": "x" * (FRAME_MAX + 1)}),
    "state-size-backwards": json.dumps({"type": "state", "state": "failed", "logSize": 2}),
    "not-utf8": b"\xff\xfe{",
}


@contextlib.contextmanager
def frames_server(frames: list[str | bytes]):
    """A WebSocket server on a free local port that sends `frames` to whoever connects, then waits
    for the client to close."""

    def handler(connection) -> None:
        for frame in frames:
            connection.send(frame)
        with contextlib.suppress(Exception):
            connection.recv(timeout=10)

    with serve(handler, "127.0.0.1", 0, max_size=None) as server:
        thread = threading.Thread(target=server.serve_forever, daemon=True)
        thread.start()
        try:
            yield f"ws://127.0.0.1:{server.socket.getsockname()[1]}/"
        finally:
            server.shutdown()
            thread.join(timeout=10)


@pytest.mark.parametrize("bad", list(BAD_FRAMES.values()), ids=list(BAD_FRAMES))
def test_a_malformed_log_message_leaves_the_follow_to_polling_from_the_last_good_offset(bad):
    got: list[str] = []
    with frames_server([GOOD, bad, json.dumps({"type": "log", "offset": 12, "text": "after\n"})]) as url:
        assert _log_live(url, None, got.append, time.monotonic() + 30) == 6
    assert got == ["hello\n"]


@pytest.mark.parametrize("bad", list(BAD_FRAMES.values()), ids=list(BAD_FRAMES))
def test_a_malformed_log_message_async(bad):
    got: list[str] = []

    async def follow(url: str) -> int | None:
        return await _alog_live(url, None, got.append, time.monotonic() + 30)

    with frames_server([GOOD, bad]) as url:
        assert asyncio.run(follow(url)) == 6
    assert got == ["hello\n"]


def test_good_log_messages_are_followed_to_the_final_state():
    got: list[str] = []
    frames = [
        GOOD,
        json.dumps({"type": "log", "offset": 6, "text": ""}),  # the same offset again: fine
        json.dumps({"type": "log", "offset": 2_000_000, "text": "tail\n", "dropped": True}),  # a gap
        json.dumps({"type": "ping"}),  # a message of a kind it does not know: skipped
        json.dumps({"type": "state", "state": "failed", "logSize": 2_000_000}),
    ]
    with frames_server(frames) as url:
        assert _log_live(url, None, got.append, time.monotonic() + 30) == 2_000_000
    assert got == ["hello\n", "tail\n"]


def test_the_callbacks_own_error_is_not_taken_for_a_bad_message():
    def on_log(text: str) -> None:
        raise ValueError("the caller's")

    with pytest.raises(ValueError, match="the caller's"):
        _log_message(GOOD, on_log, None)
    with pytest.raises(_BadFrame):
        _log_message(BAD_FRAMES["offset-backwards"], on_log, 6)
