"""A LangChain tool-calling agent on Claude.

    python -m agent.main "What files are in the workspace, and how many words does README.md have?"

In a VibeBox sandbox with Claude enabled (`POST /api/v1/sandboxes/{id}/claude/enable`), VibeBox sets
ANTHROPIC_BASE_URL (its model gateway) and ANTHROPIC_API_KEY (a per-sandbox gateway token, not an
Anthropic key): the gateway adds the real key and records usage. ANTHROPIC_MODEL picks the model.
"""

import os
import sys

from langchain.agents import create_agent
from langchain_anthropic import ChatAnthropic

from agent.tools import TOOLS

DEFAULT_MODEL = "claude-sonnet-4-5"
SYSTEM_PROMPT = (
    "You are a helpful assistant working in a sandbox's /workspace. "
    "Use the tools to look at files instead of guessing. Answer briefly."
)


def build_agent():
    base_url = os.environ.get("ANTHROPIC_BASE_URL")
    api_key = os.environ.get("ANTHROPIC_API_KEY")
    if not base_url or not api_key:
        raise SystemExit(
            "ANTHROPIC_BASE_URL and ANTHROPIC_API_KEY are not set: enable Claude for this sandbox "
            "(POST /api/v1/sandboxes/{id}/claude/enable), which points them at VibeBox's model gateway."
        )
    model = ChatAnthropic(
        model=os.environ.get("ANTHROPIC_MODEL", DEFAULT_MODEL),
        base_url=base_url,
        api_key=api_key,
        max_tokens=1024,
        max_retries=2,
        timeout=120,
    )
    return create_agent(model, tools=TOOLS, system_prompt=SYSTEM_PROMPT)


def final_text(message) -> str:
    """The text of the agent's last message (its content is a string or a list of blocks)."""
    if isinstance(message.content, str):
        return message.content
    return "".join(b.get("text", "") for b in message.content if isinstance(b, dict) and b.get("type") == "text")


def ask(question: str) -> str:
    result = build_agent().invoke({"messages": [{"role": "user", "content": question}]})
    return final_text(result["messages"][-1])


def main() -> None:
    question = " ".join(sys.argv[1:]) or "List the files in the workspace."
    print(ask(question))


if __name__ == "__main__":
    main()
