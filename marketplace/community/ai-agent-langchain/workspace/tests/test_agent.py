import pytest
from agent import main
from agent.tools import list_files, read_file, word_count

from tests.stub_anthropic import StubAnthropic


def test_tools():
    assert word_count.invoke({"text": "a b c"}) == 3
    assert "requirements.txt" in list_files.invoke({"directory": "."})
    assert "langchain" in read_file.invoke({"path": "requirements.txt"})
    with pytest.raises(ValueError):
        read_file.invoke({"path": "../etc/passwd"})


def test_the_agent_calls_a_tool_and_answers_through_the_base_url(monkeypatch):
    with StubAnthropic() as stub:
        # What VibeBox's `claude/enable` sets: the gateway's URL and a gateway token.
        monkeypatch.setenv("ANTHROPIC_BASE_URL", stub.url)
        monkeypatch.setenv("ANTHROPIC_API_KEY", "vbgw_test_token")
        answer = main.ask("How many words are in 'the quick brown fox'?")

    assert answer == "The text has 4 words."
    assert [r["path"].split("?")[0] for r in stub.requests] == ["/v1/messages", "/v1/messages"]
    assert {r["api_key"] for r in stub.requests} == {"vbgw_test_token"}, stub.requests[0]["headers"]
    assert stub.requests[0]["body"]["model"] == main.DEFAULT_MODEL
    assert [t["name"] for t in stub.requests[0]["body"]["tools"]] == ["list_files", "read_file", "word_count"]


def test_without_the_gateway_it_says_how_to_enable_it(monkeypatch):
    monkeypatch.delenv("ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    with pytest.raises(SystemExit, match="claude/enable"):
        main.build_agent()
