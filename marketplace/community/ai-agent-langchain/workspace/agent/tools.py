"""The agent's tools: plain functions with type hints and docstrings (LangChain builds each tool's
schema from them). They only read inside the workspace."""

from pathlib import Path

from langchain.tools import tool

WORKSPACE = Path("/workspace")


def _inside(path: str) -> Path:
    resolved = (WORKSPACE / path).resolve()
    if resolved != WORKSPACE and WORKSPACE not in resolved.parents:
        raise ValueError(f"{path} is outside the workspace")
    return resolved


@tool
def list_files(directory: str = ".") -> str:
    """List the files in a directory of the workspace (relative path)."""
    root = _inside(directory)
    names = sorted(p.name + ("/" if p.is_dir() else "") for p in root.iterdir() if not p.name.startswith("."))
    return "\n".join(names) or "(empty)"


@tool
def read_file(path: str, max_chars: int = 4000) -> str:
    """Read a text file of the workspace (relative path), at most max_chars characters."""
    return _inside(path).read_text(errors="replace")[:max_chars]


@tool
def word_count(text: str) -> int:
    """Count the words in a text."""
    return len(text.split())


TOOLS = [list_files, read_file, word_count]
