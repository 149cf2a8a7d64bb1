"""The marketplace's validation pipeline (apps/sandboxes/submissions.py), against the real engine:
a small private submission goes queued -> building -> smoke_testing -> published through a real
build and a real smoke sandbox; the refusals that need no build (an unsafe context tar, a base
that is not allowed) fail at their step with a message saying why; the build log streams over the
WebSocket. The slower builds (each failure after a build, malicious Dockerfiles) are in
test_pipeline_builds.py (`templates` marker)."""

import asyncio
import datetime as dt
import io
import os
import secrets
import shutil
import tarfile

import pytest
from asgiref.sync import async_to_sync, sync_to_async
from django.utils import timezone

from apps.marketplace import catalog
from apps.marketplace.models import Submission, Template, TemplateVersion
from apps.marketplace.services import submission_fail, submission_log_append, submission_start
from apps.orgs.services import personal_org_ensure
from apps.sandboxes import limits, submissions
from apps.sandboxes.models import Sandbox, Status
from apps.sandboxes.runtime import firewall, get_driver
from apps.sandboxes.runtime.docker import CAPABILITY_XATTR, build_base_refused, build_written, privileged_file
from apps.sandboxes.submissions import (
    BUILD_NETWORK_PREFIX,
    StepFailed,
    _context_file,
    extract_context,
    image_tag,
    plan_dockerfile,
    privileged_added,
    submission_validate,
    user_problem,
)
from tests.marketplace.pipeline_helpers import (
    SMALL_DOCKERFILE,
    assert_nothing_left,
    file_entry,
    make_submission,
    spec_for,
    tar_bytes,
)
from tests.waiting import async_wait_for
from tests.ws import Communicator
from vibebox.asgi import application

pytestmark = pytest.mark.django_db(transaction=True)


def test_private_submission_is_built_checked_smoke_tested_and_published(templates, owner, tmp_path):
    context = tar_bytes(
        [
            file_entry("notes/readme.txt", b"hello"),
            file_entry("Dockerfile", b"FROM scratch\n"),
            file_entry("extra-ca.crt", b"the submitter's own"),
        ]
    )
    dockerfile = SMALL_DOCKERFILE + "COPY notes/readme.txt extra-ca.crt /home/app/\n"
    # The server's extra CA bundle replaced the submitter's extra-ca.crt.
    smoke = "cat /etc/small-template && id -un && ! grep -q submitter /home/app/extra-ca.crt"
    spec = spec_for("tiny-tool", smoke=smoke)
    submission = make_submission(owner, tmp_path, dockerfile=dockerfile, spec=spec, context=context)
    tag = image_tag(submission)
    try:
        assert submission_validate(submission.pk) == "published"
        submission.refresh_from_db()
        assert (submission.state, submission.failed_step, submission.message) == ("published", "", "")
        assert submission.image == tag and submission.image_size > 0 and submission.build_seconds > 0
        assert "Step 1/" in submission.build_log and catalog.base_image("trixie") in submission.build_log
        assert "policy checks passed" in submission.build_log
        assert "built\napp" in submission.smoke_output
        assert submission.finished_at is not None
        version = TemplateVersion.objects.get(submission=submission)
        assert (version.state, version.image, version.version) == ("published", tag, "1.0.0")
        template = Template.objects.get(name="tiny-tool")
        assert template.is_active and template.latest_version == "1.0.0" and template.image == tag
        # The smoke sandbox was real, and is gone.
        smoke = Sandbox.objects.get(template=template)
        assert smoke.image == tag and smoke.status == Status.DESTROYED
        assert get_driver().inspect(smoke.container_name) is None
        # The submission's own Dockerfile replaced the one in its context.
        assert "FROM scratch" not in submission.build_log
        assert_nothing_left(submission)
        # A redelivered task finds it no longer queued and does nothing.
        assert submission_validate(submission.pk) is None
    finally:
        get_driver().image_remove(tag)


def _entry(name: str, kind: bytes, **fields) -> tuple[tarfile.TarInfo, None]:
    info = tarfile.TarInfo(name)
    info.type = kind
    for key, value in fields.items():
        setattr(info, key, value)
    return info, None


@pytest.mark.parametrize(
    ("entries", "says"),
    [
        ([file_entry("/etc/passwd", b"x")], "unsafe name"),
        ([file_entry("../outside", b"x")], "unsafe name"),
        ([file_entry("a/../../outside", b"x")], "unsafe name"),
        ([_entry("link", tarfile.SYMTYPE, linkname="/etc/shadow")], "points outside"),
        ([_entry("a/up", tarfile.SYMTYPE, linkname="../../etc")], "points outside"),
        ([_entry("hard", tarfile.LNKTYPE, linkname="../outside")], "points outside"),
        ([_entry("d", tarfile.SYMTYPE, linkname="sub"), file_entry("d/x", b"x")], "a file where a directory is"),
        ([_entry("dev", tarfile.CHRTYPE, devmajor=1, devminor=3)], "no devices"),
        ([_entry("fifo", tarfile.FIFOTYPE)], "no devices"),
        ([file_entry(f"f{i}", b"x") for i in range(5)], "more than 3 entries"),
        ([file_entry("big", b"x" * 11000)], "larger than"),
    ],
)
def test_an_unsafe_build_context_fails_at_upload(templates, owner, tmp_path, settings, entries, says):
    settings.VIBEBOX_TEMPLATE_CONTEXT_FILES = 3
    settings.VIBEBOX_TEMPLATE_CONTEXT_MAX = 12000  # a tar of one small file is 10240 bytes
    submission = make_submission(
        owner, tmp_path, dockerfile=SMALL_DOCKERFILE, spec=spec_for("bad-context"), context=tar_bytes(entries)
    )
    assert submission_validate(submission.pk) == "failed"
    submission.refresh_from_db()
    assert submission.failed_step == "upload"
    assert says in submission.message
    assert not (tmp_path / "outside").exists()
    assert "Step 1/" not in submission.build_log  # nothing was built
    assert_nothing_left(submission)


def test_a_compressed_context_with_links_inside_it_is_extracted(tmp_path):
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as archive:
        for info, data in [
            file_entry("bin/tool", b"#!/bin/sh\necho tool\n", mode=0o4755),
            _entry("bin/alias", tarfile.SYMTYPE, linkname="tool"),
            _entry("sub/up", tarfile.SYMTYPE, linkname="../bin"),
            _entry("copy", tarfile.LNKTYPE, linkname="bin/tool"),
        ]:
            if data is not None:
                info.size = len(data)
            archive.addfile(info, io.BytesIO(data) if data is not None else None)
    path = tmp_path / "context.tar.gz"
    path.write_bytes(buffer.getvalue())
    root = tmp_path / "out"
    root.mkdir()
    assert extract_context(str(path), root) == 4
    assert (root / "bin/tool").stat().st_mode & 0o7777 == 0o755  # no setuid bit kept
    assert os.readlink(root / "bin/alias") == "tool" and os.readlink(root / "sub/up") == "../bin"
    assert (root / "copy").read_bytes() == b"#!/bin/sh\necho tool\n" and not (root / "copy").is_symlink()


@pytest.mark.parametrize(
    ("dockerfile", "says"),
    [
        ("FROM ubuntu:24.04\n", "FROM ubuntu:24.04 is not allowed"),
        ("FROM docker.io/library/debian:trixie\n", "is not allowed"),
        ("FROM debian:sid\n", "is not allowed"),
        ("FROM --platform=linux/arm64 debian:trixie\n", "takes no flags"),
        ("ARG BASE=debian:trixie\nFROM $BASE\n", "may not use variables"),
        ("FROM debian:trixie\nCOPY --from=alpine:3 /bin/sh /x\n", "copying from an image is not allowed"),
        ("FROM debian:trixie\nCOPY --from=1 /bin/sh /x\n", "names no earlier stage"),
        ("FROM debian:trixie\nADD https://example.com/x.tgz /x\n", "ADD from a URL is not allowed"),
        ("FROM debian:trixie\nONBUILD RUN id\n", "ONBUILD is not allowed"),
        ("RUN id\n", "starts with FROM"),
        ("# just a comment\n", "has no FROM"),
        ("FROM vibebox/no-such-template\n", "no template 'no-such-template'"),
        ("FROM vibebox/theirs\n", "no template 'theirs'"),
        ("FROM vibebox/python-3.13:9.9.9\n", "has no version"),
    ],
)
def test_a_base_that_is_not_allowed_fails_the_build_step(templates, owner, outsider, tmp_path, dockerfile, says):
    # Another organization's private template: as if it did not exist.
    Template.objects.create(
        name="theirs",
        display_name="theirs",
        image=templates["python-3.13"].image,
        owner_org=personal_org_ensure(user=outsider),
        visibility="private",
        is_active=True,
    )
    submission = make_submission(owner, tmp_path, dockerfile=dockerfile, spec=spec_for("bad-base"))
    assert submission_validate(submission.pk) == "failed"
    submission.refresh_from_db()
    assert submission.failed_step == "build"
    assert says in submission.message, submission.message
    assert_nothing_left(submission)


def test_bases_are_rewritten_to_exact_local_images(templates, owner):
    org = personal_org_ensure(user=owner)
    text = (
        "# syntax is ignored\n"
        "FROM vibebox/python-3.13 AS Build\n"
        "RUN echo hi\n"
        "FROM debian:trixie \\\n"
        "  AS runtime\n"
        "COPY --from=build /etc/hostname /x\n"
        "COPY --from=0 /etc/hostname /y\n"
        "FROM runtime\n"
    )
    plan = plan_dockerfile(text, org=org)
    lines = plan.dockerfile.splitlines()
    assert lines[1] == f"FROM {templates['python-3.13'].image} AS build"
    assert lines[3] == f"FROM {catalog.base_image('trixie')} AS runtime"
    assert lines[4] == ""  # the continuation line of the rewritten FROM
    assert lines[7] == "FROM runtime"
    # trixie: `make setup` builds its base (bookworm's only `make images-all`, after `make test`).
    assert plan.base == catalog.base_image("trixie")  # the final stage's base, through its stage
    # An alias of a built-in template, and a pinned built-in version, name the same image.
    assert plan_dockerfile("FROM vibebox/python-3\n", org=org).base == templates["python-3.13"].image
    with pytest.raises(StepFailed):
        plan_dockerfile("FROM build\n", org=org)  # not a stage yet: refused as an image


def _ws(path: str, secret: str) -> Communicator:
    return Communicator(application, path, headers=[(b"authorization", f"Bearer {secret}".encode())])


def test_build_log_streams_over_the_websocket_then_the_final_state(owner, outsider, make_key, tmp_path):
    submission = make_submission(owner, tmp_path, dockerfile=SMALL_DOCKERFILE, spec=spec_for("streamed"))
    submission_start(submission.pk)
    submission_log_append(submission.pk, "Step 1/3 : FROM debian:trixie\n")
    _, secret = make_key(owner, scopes=["templates:read"])
    _, no_scope = make_key(owner, scopes=["sandboxes:read"])
    _, theirs = make_key(outsider, scopes=["templates:read"])
    path = f"/ws/v1/marketplace/submissions/{submission.pk}/log"

    async def scenario():
        comm = _ws(path, secret)
        assert (await comm.connect())[0]
        first = await comm.receive_json_from()
        assert first == {"type": "log", "offset": 30, "text": "Step 1/3 : FROM debian:trixie\n"}
        await _in_thread(submission_log_append, submission.pk, "Step 2/3 : RUN id\n")
        second = await comm.receive_json_from()
        assert second == {"type": "log", "offset": 48, "text": "Step 2/3 : RUN id\n"}
        await _in_thread(submission_fail, submission.pk, step="build", message="The command returned 1.")
        final = await comm.receive_json_from()
        assert final["type"] == "state" and final["state"] == "failed" and final["failedStep"] == "build"
        assert final["message"] == "The command returned 1." and final["logSize"] == 48
        assert (await comm.receive_output())["type"] == "websocket.close"

        # From an offset: only what came after it, then the state.
        comm = _ws(path + "?offset=30", secret)
        assert (await comm.connect())[0]
        assert (await comm.receive_json_from())["text"] == "Step 2/3 : RUN id\n"
        assert (await comm.receive_json_from())["type"] == "state"
        await comm.disconnect()

        refusals = []
        for key, url in ((no_scope, path), (theirs, path), (secret, "/ws/v1/marketplace/submissions/sub_nope/log")):
            comm = _ws(url, key)
            refusals.append(await comm.connect())
            await comm.disconnect()
        return refusals

    assert async_to_sync(scenario)() == [(False, 4403), (False, 4404), (False, 4404)]
    assert Submission.objects.get(pk=submission.pk).state == "failed"


async def _in_thread(function, *args, **kwargs):
    return await sync_to_async(function, thread_sensitive=False)(*args, **kwargs)


def test_a_dockerfile_the_engine_cannot_parse_fails_the_build_step(templates, owner, tmp_path):
    dockerfile = "FROM debian:trixie\nFROBNICATE the image\n"
    submission = make_submission(owner, tmp_path, dockerfile=dockerfile, spec=spec_for("unparsable"))
    assert submission_validate(submission.pk) == "failed"
    submission.refresh_from_db()
    assert submission.failed_step == "build"
    assert "unknown instruction" in submission.message.lower(), submission.message
    assert_nothing_left(submission)


def test_a_build_network_has_the_sandbox_firewall_without_the_model_gateway_port(settings):
    if not settings.VIBEBOX_FIREWALL or not shutil.which("iptables"):
        pytest.skip("no firewall on this host")
    settings.VIBEBOX_GATEWAY_PORT = settings.VIBEBOX_GATEWAY_PORT or 8089
    driver = get_driver()
    name = BUILD_NETWORK_PREFIX + secrets.token_hex(4)[:7]
    bridge = driver.ensure_network(name, {"vibebox.instance": settings.VIBEBOX_INSTANCE}, model_gateway=False)
    try:
        rules = firewall.rules(bridge)
        assert any(rule.endswith("-j DROP") for rule in rules), rules  # nothing new into the host
        assert any("10.0.0.0/8" in rule and "REJECT" in rule for rule in rules), rules  # nor private networks
        assert not any(f"--dport {settings.VIBEBOX_GATEWAY_PORT}" in rule for rule in rules), rules
    finally:
        driver.remove_network(name)
    assert firewall.rules(bridge) == []
    # A sandbox network, for comparison, has that port open on the gateway's address.
    name = BUILD_NETWORK_PREFIX + secrets.token_hex(4)[:7]
    bridge = driver.ensure_network(name, {"vibebox.instance": settings.VIBEBOX_INSTANCE})
    try:
        assert any(f"--dport {settings.VIBEBOX_GATEWAY_PORT}" in rule for rule in firewall.rules(bridge))
    finally:
        driver.remove_network(name)


def _context_tar(tmp_path, entries) -> str:
    path = tmp_path / "context.tar"
    path.write_bytes(tar_bytes(entries))
    return str(path)


@pytest.mark.parametrize("link_first", [False, True])
def test_a_link_through_another_link_is_refused_and_nothing_outside_is_written(tmp_path, link_first):
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    deep = "a/b/c/d/e/f/g"
    climb = _entry(f"{deep}/s", tarfile.SYMTYPE, linkname="../../../../../../../z")
    # As text the target stays inside (a/b/c/d/e/f/victim); on disk s is z, so it is tmp_path/victim.
    dockerfile = _entry("Dockerfile", tarfile.SYMTYPE, linkname=f"{deep}/s/../../victim")
    entries = [_entry("z", tarfile.DIRTYPE), *([dockerfile, climb] if link_first else [climb, dockerfile])]
    root = tmp_path / "out"
    root.mkdir()
    with pytest.raises(StepFailed) as refused:
        extract_context(_context_tar(tmp_path, entries), root)
    assert refused.value.step == "upload" and "link" in refused.value.message
    assert victim.read_bytes() == b"untouched"


def test_the_pipeline_writes_its_files_over_links_without_following_them(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"untouched")
    root = tmp_path / "context"
    root.mkdir()
    (root / "Dockerfile").symlink_to(victim)
    (root / "extra-ca.crt").mkdir()
    (root / "extra-ca.crt" / "inner").symlink_to(victim)
    _context_file(root / "Dockerfile", b"FROM x\n")
    _context_file(root / "extra-ca.crt", b"ca")
    assert victim.read_bytes() == b"untouched"
    assert not (root / "Dockerfile").is_symlink() and (root / "Dockerfile").read_bytes() == b"FROM x\n"
    assert (root / "extra-ca.crt").read_bytes() == b"ca"


@pytest.mark.parametrize(
    ("dockerfile", "says"),
    [
        ("FROM\tattacker/img\n", "FROM attacker/img is not allowed"),
        ("FROM \t debian:trixie\nFROM\x0battacker/img\n", "FROM attacker/img is not allowed"),
        ("FROM debian:trixie\nADD\thttp://example.com/x /m\n", "ADD from a URL is not allowed"),
        ('FROM debian:trixie\nADD ["http://example.com/x", "/m"]\n', "ADD from a URL is not allowed"),
        ("FROM debian:trixie\nCOPY\t--from=alpine:3 / /x\n", "copying from an image is not allowed"),
        ("FROM debian:trixie\nCOPY --from=\u00b2 / /x\n", "names no earlier stage"),
        ("FROM debian:trixie\nFROBNICATE the image\n", "unknown instruction 'FROBNICATE'"),
        ("FROM debian:trixie\nRUN\xa0id\n", "unknown instruction"),
        # After an unknown directive the engine reads no more: this escape= is a comment, so the
        # backquote continues nothing and the second FROM is an instruction of its own.
        ("# foo=bar\n# escape=`\nFROM debian:trixie\nRUN echo `\nFROM attacker/img\n", "is not allowed"),
        ("# escape=`\n\n# escape=\\\nFROM debian:trixie\nRUN echo \\\nFROM attacker/img\n", "is not allowed"),
        ("# escape=\\\n# escape=`\nFROM debian:trixie\n", "only one escape parser directive"),
    ],
)
def test_instructions_are_split_and_directives_read_as_the_engine_does(templates, owner, dockerfile, says):
    with pytest.raises(StepFailed) as refused:
        plan_dockerfile(dockerfile, org=personal_org_ensure(user=owner))
    assert refused.value.step == "build" and says in refused.value.message, refused.value.message


def test_a_blank_line_inside_a_continuation_continues_it_as_the_engine_does(templates, owner):
    plan = plan_dockerfile(
        "FROM debian:trixie\nRUN echo \\\n\nFROM attacker/img\n", org=personal_org_ensure(user=owner)
    )
    assert len(plan.stages) == 1  # the engine reads "RUN echo FROM attacker/img"


def test_a_build_step_from_an_image_the_plan_did_not_approve_is_refused():
    bases = ("vibebox/python-3.13:1", "build")
    assert build_base_refused("Step 1/4 : FROM vibebox/python-3.13:1 AS build", bases) is None
    assert build_base_refused("Step 3/4 : FROM Build", bases) is None
    assert build_base_refused("Step 2/4 : RUN id", bases) is None
    assert build_base_refused("Step 2/4 : FROM\tattacker/img", bases) == "attacker/img"
    assert build_base_refused("Step 2/4 : from alpine:3", bases) == "alpine:3"


PASSWD = b"root:x:0:0:root:/root:/bin/bash\napp:x:1000:1000::/home/app:/bin/sh\ntoor:x:0:0::/root:/bin/sh\n"
GROUP = b"root:x:0:\napp:x:1000:\nwheel:x:10:\n"


@pytest.mark.parametrize(
    ("user", "passwd", "group", "says"),
    [
        ("app", PASSWD, GROUP, None),
        ("1000", PASSWD, GROUP, None),
        ("app:app", PASSWD, GROUP, None),
        ("1000:10", PASSWD, GROUP, None),
        ("root", PASSWD, GROUP, "uid 0"),
        ("0", PASSWD, GROUP, "uid 0"),
        ("00", PASSWD, GROUP, "uid 0"),
        ("+0", PASSWD, GROUP, "uid 0"),
        ("0:0", PASSWD, GROUP, "uid 0"),
        ("root:root", PASSWD, GROUP, "uid 0"),
        ("toor", PASSWD, GROUP, "uid 0"),  # an alias of uid 0 added to /etc/passwd
        ("app:0", PASSWD, GROUP, "group 0"),
        ("app:root", PASSWD, GROUP, "group 0"),
        ("app:+00", PASSWD, GROUP, "group 0"),
        ("2000", PASSWD, GROUP, "group 0"),  # not in /etc/passwd: the runtime gives it gid 0
        ("2000:2000", PASSWD, GROUP, None),
        ("nobody-here", PASSWD, GROUP, "not in its /etc/passwd"),
        ("app:nogroup", PASSWD, GROUP, "not in its /etc/group"),
        ("app", PASSWD, GROUP.replace(b"root:x:0:", b"root:x:0:app"), "member of group 'root'"),
        ("evil", PASSWD + b"evil:x:zero:1000::/:/bin/sh\n", GROUP, "uid 0"),  # not a number reads as 0
        ("app", None, GROUP, "regular files"),
    ],
)
def test_the_final_user_is_resolved_against_the_images_passwd_and_group(user, passwd, group, says):
    problem = user_problem(user, passwd, group)
    if says is None:
        assert problem is None
    else:
        assert problem is not None and says in problem, problem


def test_a_non_ascii_or_huge_offset_is_refused_and_frees_its_stream_slot(owner, make_key, tmp_path, settings):
    settings.VIBEBOX_MAX_STREAMS_PER_OWNER = 1
    submission = make_submission(owner, tmp_path, dockerfile=SMALL_DOCKERFILE, spec=spec_for("offsets"))
    _, secret = make_key(owner, scopes=["templates:read"])
    path = f"/ws/v1/marketplace/submissions/{submission.pk}/log"

    async def scenario():
        codes = []
        for offset in ("%C2%B2", "%D9%A1", "9" * 5000, "-1"):  # "²", an Arabic-Indic 1
            comm = _ws(f"{path}?offset={offset}", secret)
            codes.append(await comm.connect())
            await comm.disconnect()
        # Each refusal gave its slot back: the one stream allowed still connects.
        await async_wait_for(
            lambda: asyncio.to_thread(lambda: limits.current(limits.STREAMS, owner.pk) == 0),
            what="the refused streams' slots to come back",
        )
        comm = _ws(path, secret)
        connected = (await comm.connect())[0]
        await comm.disconnect()
        return codes, connected

    assert async_to_sync(scenario)() == ([(False, 4400)] * 4, True)


def test_the_log_buffer_holds_a_bounded_head_and_newest_tail_between_flushes(owner, tmp_path, monkeypatch):
    monkeypatch.setattr(submissions, "LOG_FLUSH_SECONDS", 3600)  # nothing flushed until close()
    submission = make_submission(owner, tmp_path, dockerfile=SMALL_DOCKERFILE, spec=spec_for("chatty"))
    submission_start(submission.pk)
    buffer = submissions.LogBuffer(submission.pk, limit=10_000)
    for number in range(20_000):
        buffer(f"line {number:05d} " + "x" * 90)
    buffer("y" * 50_000)  # one huge line: cut
    buffer("the last line")
    held = len(buffer._take())
    assert held < 10_000 + 200, held
    for number in range(3):
        buffer(f"after {number}")
    buffer.close()
    submission.refresh_from_db()
    log = submission.build_log
    assert log == "after 0\nafter 1\nafter 2\n"  # what _take() answered was the held text; then the rest
    buffer = submissions.LogBuffer(submission.pk, limit=10_000)
    for number in range(20_000):
        buffer(f"line {number:05d} " + "x" * 90)
    buffer("the last line")
    buffer.close()
    submission.refresh_from_db()
    log = submission.build_log.removeprefix("after 0\nafter 1\nafter 2\n")
    assert log.startswith("line 00000 ") and log.endswith("line 19999 " + "x" * 90 + "\nthe last line\n")
    assert "log lines dropped ...]" in log and len(log) < 10_000 + 200


def test_the_size_watchdog_adds_up_the_builds_layers_and_its_running_step():
    gib = 1024**3
    limit = 4 * gib
    assert build_written([], [int(3.9 * gib)]) < limit
    # 300 steps of 3.9 GiB each: each under the limit, together far over it.
    assert build_written([int(3.9 * gib)] * 299, [int(3.9 * gib)]) > limit
    assert build_written([gib, gib, gib], [int(1.5 * gib)]) > limit
    assert build_written([gib, gib], [gib]) < limit


def test_a_submission_whose_worker_died_fails_and_its_build_network_goes(owner, tmp_path, settings):
    settings.VIBEBOX_TEMPLATE_BUILD_TIMEOUT = 60
    settings.VIBEBOX_TEMPLATE_SMOKE_TIMEOUT = 30
    driver = get_driver()
    labels = {"vibebox.managed": "1", "vibebox.instance": settings.VIBEBOX_INSTANCE}
    dead = make_submission(owner, tmp_path, dockerfile=SMALL_DOCKERFILE, spec=spec_for("dead-worker"))
    alive = make_submission(owner, tmp_path, dockerfile=SMALL_DOCKERFILE, spec=spec_for("live-worker"))
    networks = {}
    for submission in (dead, alive):
        submission_start(submission.pk)
        networks[submission.pk] = BUILD_NETWORK_PREFIX + secrets.token_hex(4)[:7]
        driver.ensure_network(networks[submission.pk], {**labels, "vibebox.build": submission.pk}, model_gateway=False)
    try:
        # The dead one's last sign of life is older than 60 s + 30 s + 5 min; the live one's is not.
        old = timezone.now() - dt.timedelta(seconds=60 + 30 + 300 + 5)
        Submission.objects.filter(pk=dead.pk).update(updated_at=old)
        Submission.objects.filter(pk=alive.pk).update(updated_at=timezone.now() - dt.timedelta(seconds=300))
        report = submissions.submissions_interrupted()
        assert report["failed"] == [dead.pk] and report["networks_removed"] == [networks[dead.pk]]
        dead.refresh_from_db()
        alive.refresh_from_db()
        assert (dead.state, dead.failed_step) == ("failed", "build")
        assert "the validation was interrupted" in dead.message.lower()
        assert alive.state == "building"
        left = driver.build_networks(labels)
        assert networks[dead.pk] not in left and left.get(networks[alive.pk]) == alive.pk
        assert submissions.submissions_interrupted()["failed"] == []  # the next pass finds nothing new
    finally:
        for name in networks.values():
            driver.build_network_remove(name)


def _exported(entries) -> dict[str, str]:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as archive:
        for name, data, mode, pax in entries:
            info = tarfile.TarInfo(name)
            info.mode, info.size, info.pax_headers = mode, len(data), pax
            archive.addfile(info, io.BytesIO(data))
    found: dict[str, str] = {}
    buffer.seek(0)
    with tarfile.open(fileobj=buffer, mode="r|") as archive:
        for member in archive:
            privileged_file(member, archive, found)
    return found


def test_a_setuid_path_of_the_base_with_other_contents_or_capabilities_is_flagged():
    cap = {CAPABILITY_XATTR: "\x01\x00\x00\x02\x00\x20\x00\x00"}  # cap_net_admin, as the export carries it
    base = _exported([("usr/bin/passwd", b"the real passwd", 0o4755, {}), ("bin/ls", b"ls", 0o755, {})])
    assert list(base) == ["/usr/bin/passwd"]
    same = _exported([("usr/bin/passwd", b"the real passwd", 0o4755, {}), ("bin/ls", b"ls", 0o755, {})])
    assert privileged_added(same, base, set()) == []
    swapped = _exported([("usr/bin/passwd", b"a root shell!!!", 0o4755, {})])  # same size, other bytes
    assert privileged_added(swapped, base, set()) == ["/usr/bin/passwd"]
    capable = _exported([("usr/bin/passwd", b"the real passwd", 0o4755, {}), ("bin/ls", b"ls", 0o755, cap)])
    assert privileged_added(capable, base, set()) == ["/bin/ls"] and ":cap=" in capable["/bin/ls"]
    assert privileged_added(capable, base, {"/bin/ls"}) == []  # the allow-list still applies by path
