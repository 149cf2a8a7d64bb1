"""Schemathesis hooks of the schema fuzz run (tests/test_schema_fuzz.py), loaded by the CLI through
SCHEMATHESIS_HOOKS. Each one encodes a rule the API states but OpenAPI 3.0 cannot express, or
keeps the run from harming itself; nothing else is relaxed.
"""

import json
import os

import schemathesis
from hypothesis.internal import lambda_sources

# CPython 3.11 before 3.11.8 can raise "SystemError: AST constructor recursion depth mismatch"
# from ast.parse deep in a stack (gh-106905); hypothesis parses lambdas there only to describe
# a strategy, so a description is dropped rather than the run.
_describe_lambda = lambda_sources.lambda_description


def _lambda_description(function):
    try:
        return _describe_lambda(function)
    except SystemError:
        return "lambda: <source unavailable>"


lambda_sources.lambda_description = _lambda_description

# Durations and sizes may be human strings ("400d", "64g"): their pattern is in the document,
# their range cannot be (it is for the numbers), so the server's range check answers these codes.
RANGE_CODES = {"invalid_duration", "invalid_size", "invalid_resources"}
DURATION_OR_SIZE = {"timeout", "autoPause", "expiresIn", "gracePeriod", "memory", "disk"}
# Rules on state or on names that a schema cannot state (each field's description says them):
STATE_CODES = {
    "unknown_template",  # `template` must name a template installed on this server
    # No string (path, query, body, map key) holds a NUL character: PostgreSQL stores none
    # (docs/api.md; a pattern on every string of the document would say it, at a price).
    "nul_character",
    "invalid_metadata",  # metadata keys: 1-64 of letters, digits, _.:/- (OpenAPI 3.0 has no propertyNames)
    "metadata_too_large",  # at most VIBEBOX_METADATA_MAX_BYTES of JSON in all
    "invalid_env",  # environment variable names (no propertyNames either)
    "disk_limit_unsupported",  # whether this engine's storage driver can limit disk size
    "user_required",  # a new member is named by username or by email (3.0 cannot require one of two)
    "unknown_role",  # a role is a built-in one or one of the organization's custom roles
    "invalid_webhook_url",  # a webhook URL: http(s)://host[:port]/path, https unless VIBEBOX_WEBHOOK_ALLOW_HTTP
    "webhook_target_refused",  # ... whose host resolves to no private address (VIBEBOX_WEBHOOK_ALLOW_PRIVATE)
    # Billing windows: `from` before `to`, at most VIBEBOX_BILLING_MAX_WINDOW apart; a plan change
    # starts now or later (the clock).
    "invalid_billing_window",
    "billing_window_too_long",
    "invalid_effective_from",
    # A marketplace submission's template.yaml, Dockerfile and tar are documents checked by content
    # (docs/marketplace.md), not by the schema's types.
    "invalid_template_yaml",
    "invalid_dockerfile",
    "invalid_build_context",
    "build_context_too_large",
}
# expiresAt depends on the clock; a page cursor must be one the server gave (opaque to a schema).
# A deprecation's replacement must name a template; a rejection needs a reason (approve: false).
# An egress policy's entry must be a domain, '*.domain', an IP or a CIDR (one pattern cannot say it).
# An organization's erasure must repeat its slug (`confirm`).
STATE_FIELD_CODES = {
    "in_the_past",
    "invalid_cursor",
    "unknown_template",
    "reason_required",
    "invalid_network_entry",
    "confirm_mismatch",
}


def _strings_for_ranges(body) -> bool:
    """Whether the body gives some duration or size as a human string."""
    stack = [body]
    while stack:
        item = stack.pop()
        if isinstance(item, dict):
            for key, value in item.items():
                if key in DURATION_OR_SIZE and isinstance(value, str):
                    return True
                stack.append(value)
        elif isinstance(item, list):
            stack.extend(item)
    return False


def _error(response) -> dict:
    try:
        error = json.loads(response.content or b"{}").get("error")
    except (ValueError, AttributeError):
        return {}
    return error if isinstance(error, dict) else {}


def _value_at(body, path: str):
    for part in path.split("."):
        if isinstance(body, dict):
            body = body.get(part)
        elif isinstance(body, list) and part.isdigit() and int(part) < len(body):
            body = body[int(part)]
        else:
            return None
    return body


def _excused(error: dict, body) -> bool:
    """Whether every problem the server names is one of the rules above."""
    if error.get("code") in STATE_CODES:
        return True
    if error.get("code") in RANGE_CODES and _strings_for_ranges(body):
        return True
    fields = (error.get("details") or {}).get("fields") or {}
    problems = [(name, problem) for name, found in fields.items() for problem in found if isinstance(problem, dict)]
    return bool(problems) and all(
        problem.get("code") in STATE_FIELD_CODES
        or (problem.get("code") in RANGE_CODES and isinstance(_value_at(body, name), str))
        for name, problem in problems
    )


@schemathesis.hook
def filter_failure(ctx, failure, case, response):
    """Keeps every failure but a refused schema-valid request whose refusal is one of the rules above."""
    if type(failure).__name__ != "RejectedPositiveData" or response.status_code != 400:
        return True
    return not _excused(_error(response), case.body)


@schemathesis.hook
def before_call(ctx, case, kwargs):
    """The run's own key is never revoked or rotated by the run (a grace period of 0 expires it,
    and everything after would be a 401): in every phase, its id is swapped for one that does not
    exist just before the call. Keys the run creates itself are fair game."""
    if (case.path_parameters or {}).get("key_id") == os.environ["VIBEBOX_FUZZ_KEY_ID"]:
        case.path_parameters["key_id"] = "key_notthefuzzkey"


@schemathesis.hook("filter_body").apply_to(method="POST", path="/api/v1/sandboxes")
def no_real_sandboxes(ctx, body):
    """A body naming an installed template would create a real sandbox, and with it fuzzed git
    URLs (traffic off this machine, which tests may not send), commands and files: those are
    tested with real values elsewhere. Random template names are still sent (400 unknown_template)."""
    if not isinstance(body, dict):
        return True
    return body.get("template") not in os.environ["VIBEBOX_FUZZ_TEMPLATES"].split(",")
