"""Preview URLs' parts that need no sandbox: the /proc/net/tcp parser fed hostile text, the request
matcher, the tokens, and a host-form id that matches two sandboxes when lowercased."""

import logging
import time

import pytest

from apps.sandboxes.preview import ports, routing, tokens
from tests.conftest import sandbox_row

ANY = "0.0.0.0"  # noqa: S104 (an address listened on, read from the table)
HEADER = "  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode\n"


def test_the_tables_parser_keeps_listening_sockets_and_survives_hostile_text():
    text = HEADER + (
        "   0: 00000000:0BB8 00000000:0000 0A 00000000:00000000 00:00000000 00000000  1000 0 1 1\n"  # 0.0.0.0:3000
        "   1: 0100007F:1F90 00000000:0000 0A 0\n"  # 127.0.0.1:8080
        "   2: 0200A8C0:0BB8 0300A8C0:D431 01 0\n"  # established: not a listener
        "   3: 0100007F:0BB8 00000000:0000 0A 0\n"  # 3000 on loopback too: the wildcard wins
        "   4: 00000000000000000000000000000000:1F40 00000000000000000000000000000000:0000 0A 0\n"  # [::]:8000
        "   5: 0000000000000000FFFF00000100007F:2710 00000000000000000000000000000000:0000 0A 0\n"  # ::ffff:127.0.0.1
        "   6: 00000000000000000000000001000000:2328 00000000000000000000000000000000:0000 0A 0\n"  # [::1]:9000
        "   7: ZZZZZZZZ:0BB9 00000000:0000 0A 0\n"  # not hex
        "   8: 00000000:0000 00000000:0000 0A 0\n"  # port 0
        "   9: 00000000:FFFFF 00000000:0000 0A 0\n"  # too long
        "  10: 000000:0BBA 00000000:0000 0A 0\n"  # short address
        "garbage\n\x00\xff 0A\n"
        "  11: 00000000:C36F 00000000:0000 0A\n"  # 50031: a listener with few fields
    )
    assert ports.parse_tables(text) == {
        3000: ANY,
        8080: "127.0.0.1",
        8000: "::",
        10000: "127.0.0.1",
        9000: "::1",
        50031: ANY,
    }
    assert ports.parse_tables("0A " * 100000) == {}
    assert ports.reachable(ANY) and ports.reachable("::") and ports.reachable("172.17.0.5")
    assert not ports.reachable("127.0.0.1") and not ports.reachable("::1")


def test_tokens_name_one_sandbox_one_port_until_they_expire():
    now = time.time()
    token = tokens.token_make(sandbox_id="sbx_A", port=3000, expires_at=int(now) + 60)
    assert tokens.token_check(token, sandbox_id="sbx_A", port=3000) is None
    assert tokens.token_check(token, sandbox_id="sbx_B", port=3000) == "invalid"
    assert tokens.token_check(token, sandbox_id="sbx_A", port=3001) == "invalid"
    assert tokens.token_check(token, sandbox_id="sbx_A", port=3000, now=now + 61) == "expired"
    forged = token.replace(":3000:", ":3001:")
    assert tokens.token_check(forged, sandbox_id="sbx_A", port=3001) == "invalid"
    assert tokens.token_check("x" * 500, sandbox_id="sbx_A", port=3000) == "invalid"
    assert tokens.token_expiry(token) == int(now) + 60


def _scope(path="/", host="localhost:8000", query=b""):
    return {"type": "http", "path": path, "raw_path": path.encode(), "query_string": query,
            "headers": [(b"host", host.encode())]}  # fmt: skip


def test_requests_are_matched_by_host_or_path():
    assert routing.match(_scope("/api/v1/sandboxes")) is None
    assert routing.match(_scope("/previewer/x")) is None
    target = routing.match(_scope("/a/b", host="3000-sbx_abc.preview.localhost:8000", query=b"q=1&vibebox_token=t"))
    assert (target.form, target.sandbox_ref, target.port_text, target.path, target.tokens) == (
        "host", "sbx_abc", "3000", "/a/b?q=1", ["t"]
    )  # fmt: skip
    target = routing.match(_scope("/preview/sbx_Abc/3000/x%20y/", query=b"vibebox_token=t"))
    assert (target.form, target.sandbox_ref, target.prefix, target.path) == (
        "path", "sbx_Abc", "/preview/sbx_Abc/3000", "/x%20y/"
    )  # fmt: skip
    assert routing.match(_scope("/preview/sbx_Abc/3000")).slash_missing
    assert routing.match(_scope("/", host="a.b.preview.localhost")).sandbox_ref == ""  # not ours: a 404 page
    assert routing.match(_scope("/preview/")).sandbox_ref == ""


@pytest.mark.django_db
def test_a_host_form_id_that_two_sandboxes_share_when_lowercased_is_not_found(owner, templates):
    sandbox_row(owner, templates["python-3"], id="sbx_CaseTwin0000000000", name="one")
    sandbox_row(owner, templates["python-3"], id="sbx_casetwin0000000000", name="two")
    scope = _scope(host="3000-sbx_casetwin0000000000.preview.localhost")
    with pytest.raises(routing.Refused) as refused:
        routing.admit(scope, routing.match(scope))
    assert refused.value.status == 404 and refused.value.code == "preview_not_found"


def test_the_servers_access_log_never_shows_a_preview_token():
    import vibebox.asgi  # noqa: F401 (installs the filter on uvicorn's access logger)

    logger = logging.getLogger("uvicorn.access")
    path = f"/preview/sbx/3000/?a=1&{tokens.QUERY_PARAMETER}=sbx:3000:99:sig&b=2"
    # uvicorn's own access-log call: the format and arguments it logs with
    record = logger.makeRecord(
        logger.name,
        logging.INFO,
        __file__,
        1,
        '%s - "%s %s HTTP/%s" %d',
        ("127.0.0.1:5", "GET", path, "1.1", 302),
        None,
    )
    assert all(log_filter.filter(record) for log_filter in logger.filters)
    line = record.getMessage()
    assert "sig" not in line and f"?a=1&{tokens.QUERY_PARAMETER}=[redacted]&b=2" in line
