"""The README's Python quick start, run as written against the live server."""

from __future__ import annotations

import re
import subprocess
import sys

from conftest import ROOT


def test_readme_python_block_runs(server, vb):
    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Three lines of Python", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S).group(1)
    env = {"VIBEBOX_API_URL": server.url, "VIBEBOX_API_KEY": server.key, "PATH": "/usr/bin:/bin", "HOME": "/tmp"}
    done = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout == "42\n"
    assert vb.list() == []  # the `with` block destroyed its sandbox
