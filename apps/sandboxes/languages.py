"""How each language's code is run, and how `auto` picks a language.

The code travels on the command's stdin into /tmp/vbx-<execution id>.<ext> (so there is no
size limit from argv or env), is run, and the file is removed. A timeout's kill leaves no shell to
remove it: each run first removes the code files (and their build outputs) of executions that no
longer run (no process carries their VIBEBOX_EXEC_ID). A return value is printed after the
program's own output, on a line that starts with a per-execution random marker, and taken off
stdout by the server.
"""

import re
import secrets
from dataclasses import dataclass

from vibebox import exceptions as errors

ALIASES = {
    "js": "javascript",
    "node": "javascript",
    "nodejs": "javascript",
    "ts": "typescript",
    "py": "python",
    "python3": "python",
    "sh": "shell",
    "bash": "shell",
}
SHELL_BUILTINS = {
    ".", ":", "alias", "cd", "command", "echo", "eval", "exec", "exit", "export", "false", "hash", "printf",
    "pwd", "read", "set", "shift", "source", "test", "[", "trap", "true", "type", "ulimit", "umask", "unset",
    "wait", "kill", "sleep", "ls", "cat", "env",
}  # fmt: skip
# Words that start code in these languages and are never meant as a command.
KEYWORDS = {
    "javascript": {
        "const", "let", "var", "function", "async", "await", "return", "import", "export", "class", "if", "for",
        "while", "do", "try", "throw", "new", "switch", "console", "require", "module", "process",
    },
    "python": {
        "import", "from", "def", "class", "if", "for", "while", "with", "try", "return", "print", "lambda",
        "assert", "del", "pass", "raise", "yield", "global", "nonlocal", "async", "await",
    },
}  # fmt: skip
KEYWORDS["typescript"] = KEYWORDS["javascript"] | {"interface", "type", "enum", "declare", "namespace"}
_FIRST_WORD = re.compile(r"\s*([A-Za-z0-9_][A-Za-z0-9_.+/-]*)(?:\s|$)")
_ESM = re.compile(r"^\s*(import|export)\s", re.M)

JS_WRAPPER = """const __vbx_marker = %(marker)s;
(async () => {
%(code)s
})().then((value) => {
  if (value === undefined) return;
  let text;
  try { text = JSON.stringify(value); } catch (error) { text = JSON.stringify(require("util").inspect(value)); }
  if (text !== undefined) process.stdout.write("\\n" + __vbx_marker + text + "\\n");
}, (error) => { console.error(error); process.exitCode = 1; });
"""

PY_RUNNER = """import ast, json, sys
path, marker = sys.argv[1], sys.argv[2]
sys.argv = [path]
with open(path) as handle:
    tree = ast.parse(handle.read(), path)
last = ast.Expression(tree.body.pop().value) if tree.body and isinstance(tree.body[-1], ast.Expr) else None
scope = {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__}
exec(compile(tree, path, "exec"), scope)
if last is not None:
    value = eval(compile(last, path, "eval"), scope)
    if value is not None:
        try:
            text = json.dumps(value)
        except (TypeError, ValueError):
            text = json.dumps(repr(value))
        sys.stdout.flush()
        sys.stdout.write("\\n" + marker + text + "\\n")
"""

# Each: (file extension, shell program run with the code on stdin; $f is the file).
_PROGRAMS = {
    "javascript": ("cjs", 'node "$f"'),
    "javascript-esm": ("mjs", 'node "$f"'),
    "typescript": ("ts", 'esbuild --loader=ts --format=cjs --log-level=error < "$f" > "$f.cjs" && node "$f.cjs"'),
    "typescript-esm": (
        "mts",
        'esbuild --loader=ts --format=esm --log-level=error < "$f" > "$f.mjs" && node "$f.mjs"',
    ),
    "python": ("py", 'python3 -c "$VBX_RUNNER" "$f" "$VBX_MARKER"'),
    "shell": ("sh", 'if command -v bash >/dev/null 2>&1; then bash -l "$f"; else sh "$f"; fi'),
}


# Removes what a killed execution left: /tmp/vbx-exec_<id>.* of ids no process carries (the
# user's processes' environments are readable: an execution of theirs that runs keeps its files;
# another user's files stay, /tmp being sticky). Execution ids are [A-Za-z0-9_].
SWEEP = (
    'for g in /tmp/vbx-exec_*; do i=${g#/tmp/vbx-}; i=${i%%.*}; [ -e "$g" ] && '
    '! grep -qsz "^VIBEBOX_EXEC_ID=$i\\$" /proc/[0-9]*/environ && rm -f "$g"; done 2>/dev/null; '
)


@dataclass(frozen=True)
class Program:
    argv: tuple[str, ...]
    stdin: bytes
    env: dict[str, str]
    marker: str | None


def normalise(language: str) -> str:
    language = (language or "auto").strip().lower()
    return ALIASES.get(language, language)


def first_command_word(code: str, language: str) -> str | None:
    """The word a shell would run, when the code could be a command line; else None."""
    match = _FIRST_WORD.match(code)
    if not match or match.group(1) in KEYWORDS.get(language, set()):
        return None
    return match.group(1)


def check_supported(language: str, supported: list[str]) -> None:
    # A template may list a language the execution API has no runner for yet (go-1.24's `go`).
    supported = [name for name in supported if name in _PROGRAMS]
    if language not in supported:
        raise errors.UnsupportedLanguage(
            f"This template runs {', '.join(supported)}; not {language}.", details={"supported": supported}
        )


def program(language: str, code: str, execution_id: str) -> Program:
    marker = f"\x1evbx-return-{secrets.token_hex(8)}:"
    env = {}
    if language in ("javascript", "typescript"):
        if _ESM.search(code):  # ES modules cannot be wrapped in a function: no return value
            language, source, marker = f"{language}-esm", code, None
        else:
            source = JS_WRAPPER % {"marker": f'"{marker}"', "code": code}
    elif language == "python":
        source = code
        env = {"VBX_RUNNER": PY_RUNNER, "VBX_MARKER": marker}
    else:
        source, marker = code, None
    extension, run = _PROGRAMS[language]
    script = f'{SWEEP}f=/tmp/vbx-{execution_id}.{extension}; cat > "$f"; {run} < /dev/null; rc=$?; '
    script += 'rm -f "$f" "$f".*; exit $rc'
    return Program(argv=("sh", "-c", script), stdin=source.encode(), env=env, marker=marker)


def split_return_value(stdout: bytes, marker: str | None) -> tuple[bytes, str | None]:
    """Takes the marker line off stdout; returns (stdout, JSON text of the value or None)."""
    if not marker:
        return stdout, None
    token = b"\n" + marker.encode()
    index = stdout.rfind(token)
    if index < 0:
        return stdout, None
    end = stdout.find(b"\n", index + len(token))
    value = stdout[index + len(token) : end if end >= 0 else len(stdout)]
    rest = stdout[end + 1 :] if end >= 0 else b""
    return stdout[:index] + rest, value.decode(errors="replace")
