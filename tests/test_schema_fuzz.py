"""Schema fuzzing: schemathesis over the whole OpenAPI document, against the real server (uvicorn,
as in the Procfile), with every check, and it must end with 0 failures (issue 17, item 19).

What the run covers: every operation, with valid and invalid data (wrong types, out-of-range
numbers, strings off their pattern, unknown fields, missing required ones, NUL bytes...), unusual
methods (the `Allow` header of each 405), and sequences that follow the answers (create a key,
rotate it, revoke it). Checks: no 5xx, answers and their headers as documented, schema-violating
requests refused, schema-valid ones accepted (tests/schema_fuzz_hooks.py lists the few rules a
schema cannot state), no use after delete, no ignored authentication.

The key has every scope and no rate limit, its user (staff, for GET pools) a quota of 2 sandboxes. Exclusions, each
needed for the run to be sound or safe (tests/schema_fuzz_hooks.py):
- the run's own key is never revoked or rotated by the run (everything after would be a 401);
- a sandbox-create body naming an installed template is not sent: it would make a real sandbox
  and, with it, fuzzed git URLs that leave this machine. So every sandbox-scoped operation is
  fuzzed against ids that do not exist (404) or belong to nobody; their bodies are tested with
  real sandboxes in tests/sandboxes/ and tests/test_request_limits.py.
The engine is swept of this instance's containers at the end, whatever happened.

Reproducible: a fixed seed and deterministic generation. The coverage phase (boundaries, wrong
types, missing and unknown fields of every operation) does not depend on the example count; the
fuzzing phase's 8 examples an operation (12 until session 55: a third of its time for operations
most of which answer 404 for ids that do not exist) keep `make test` within its budget. Run it by
hand with more examples: VIBEBOX_FUZZ_EXAMPLES=40 .venv/bin/pytest tests/test_schema_fuzz.py
"""

import os
import subprocess
import sys

import pytest

from apps.keys.scopes import ALL_SCOPES
from apps.marketplace.models import Template
from apps.marketplace.services import template_use_record
from apps.orgs.services import personal_org_ensure

from .conftest import ROOT, _remove_all, live_server

EXAMPLES = int(os.environ.get("VIBEBOX_FUZZ_EXAMPLES", "8"))


@pytest.fixture
def fuzz_key(transactional_db, templates, make_key, django_user_model):
    # Staff: GET /api/v1/pools is for operators, and the run should reach it too.
    user = django_user_model.objects.create_user(username="fuzz", password="pw-fuzz", is_staff=True)
    # Reviews are only for users who created a sandbox from the template: as if they had, so the
    # run reaches POST …/reviews whatever order it creates in (else only 403s: "Authentication failed").
    org = personal_org_ensure(user=user)
    for template in Template.objects.all():
        template_use_record(template=template, org=org, user=user)
    return make_key(user, ALL_SCOPES, name="fuzz", rate_limit="1000000/s")


@pytest.mark.timeout(900)
def test_schemathesis_finds_nothing(fuzz_key, docker_client, tmp_path):
    key, secret = fuzz_key
    names = set(Template.objects.values_list("name", flat=True))
    names |= {alias for aliases in Template.objects.values_list("aliases", flat=True) for alias in aliases or []}
    try:
        with live_server(VIBEBOX_MAX_SANDBOXES_PER_OWNER="2") as (url, _pid):
            result = subprocess.run(
                [
                    str(ROOT / ".venv" / "bin" / "st"),
                    "run",
                    f"{url}/api/v1/schema",
                    "--checks",
                    "all",
                    # "all" includes a 10 s response-time limit, a timing assertion that fails on a
                    # loaded machine and says nothing about the schema: set to the request timeout.
                    "--max-response-time",
                    "60",
                    "--max-examples",
                    str(EXAMPLES),
                    "--seed",
                    "17",
                    "--generation-deterministic",
                    "--workers",
                    "2",
                    "--request-timeout",
                    "60",
                    "--no-color",
                    "--header",
                    f"Authorization: Bearer {secret}",
                ],
                cwd=tmp_path,
                env={
                    **os.environ,
                    "PYTHONPATH": str(ROOT),
                    "SCHEMATHESIS_HOOKS": "tests.schema_fuzz_hooks",
                    "VIBEBOX_FUZZ_KEY_ID": key.id,
                    "VIBEBOX_FUZZ_TEMPLATES": ",".join(sorted(names)),
                },
                capture_output=True,
                text=True,
                timeout=840,
            )
    finally:
        # What the fuzzing made, not the session's git servers: this worker's later tests (and
        # the fixtures' teardown) still use them (removing them was the "vanished git fixture").
        _remove_all(docker_client, fixtures=False)
    report = result.stdout[-20000:] + result.stderr[-5000:]
    print(report, file=sys.stderr)
    assert result.returncode == 0, report
    assert "Authentication failed" not in report, "the run's key stopped working"
