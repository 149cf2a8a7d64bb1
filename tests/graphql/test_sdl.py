"""docs/schema.graphql is the code's schema: a change to the types without regenerating it fails."""

import pytest
from django.core.management import CommandError, call_command

from apps.graphql_api.management.commands.graphql_schema import DEFAULT_PATH, sdl


def test_docs_schema_graphql_matches_the_code():
    assert DEFAULT_PATH.read_text() == sdl(), "run: python manage.py graphql_schema"


def test_check_fails_on_drift_and_the_command_rewrites_the_file(tmp_path):
    target = tmp_path / "schema.graphql"
    target.write_text(sdl().replace("type Sandbox ", "type Sandbx "))
    with pytest.raises(CommandError, match="out of date"):
        call_command("graphql_schema", "--check", "--path", str(target))
    call_command("graphql_schema", "--path", str(target))
    assert target.read_text() == sdl()
    call_command("graphql_schema", "--check", "--path", str(target))


def test_the_sdl_has_the_issues_queries():
    text = sdl()
    for field in ("viewer:", "organization:", "sandboxes(", "sandbox(", "node("):
        assert field in text, field
