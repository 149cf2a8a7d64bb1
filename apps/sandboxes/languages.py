"""How each language's code is run, and how `auto` picks a language.

The code travels on the command's stdin into /tmp/vbx-<execution id>.<ext> (so there is no
size limit from argv or env), is run, and the file is removed. A timeout's kill leaves no shell to
remove it: each run first removes the code files (and their build outputs) of executions that no
longer run (no process carries their VIBEBOX_EXEC_ID). A return value is printed after the
program's own output, on a line that starts with a per-execution random marker, and taken off
stdout by the server.

Compiled languages (Go, Rust, Java; TypeScript's type stripping too) print another per-execution
marker line on stdout once the build succeeded, just before the program starts: an answer whose
stdout does not start with it failed (or timed out) while compiling (`phase: "compile"`). Go, Rust
and Java builds are kept in the sandbox user's ~/.cache/vibebox/<language>/<key>, the key a hash
of the source as it is compiled: the same snippet runs again without compiling. The compiler's
own messages are kept beside the build and printed again on stderr when the build is reused, so a
warm run answers what the cold one did.
"""

import hashlib
import posixpath
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
    "golang": "go",
    "rs": "rust",
    "rb": "ruby",
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
    "go": {
        "package", "import", "func", "var", "const", "type", "for", "if", "defer", "switch", "select", "return",
    },
    "rust": {
        "fn", "let", "use", "struct", "enum", "impl", "mod", "pub", "const", "static", "match", "if", "for",
        "while", "loop", "extern", "trait", "type", "return",
    },
    "ruby": {
        "puts", "print", "p", "pp", "require", "require_relative", "def", "class", "module", "if", "unless",
        "while", "until", "case", "begin", "return", "attr_accessor", "raise",
    },
    "java": {
        "public", "private", "protected", "class", "interface", "enum", "record", "import", "package", "static",
        "final", "var", "int", "long", "double", "float", "boolean", "char", "String", "for", "while", "if", "try",
        "throw", "new", "return", "System",
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


RUBY_RUNNER = """-> (path, marker) {
  $0 = path
  value = TOPLEVEL_BINDING.eval(File.read(path, encoding: "UTF-8"), path, 1)
  unless value.nil?
    require "json"
    plain = lambda do |v, depth|
      return false if depth > 64
      case v
      when nil, true, false, Integer, String, Symbol then true
      when Float then v.finite?
      when Array then v.all? { |x| plain.(x, depth + 1) }
      when Hash then v.all? { |k, x| (k.is_a?(String) || k.is_a?(Symbol)) && plain.(x, depth + 1) }
      else false
      end
    end
    text = plain.(value, 0) ? JSON.generate(value) : JSON.generate(value.inspect)
    $stdout.flush
    $stdout.write("\\n" + marker + text + "\\n")
  end
}.call(ARGV.shift, ARGV.shift)
"""

# A compiled language's build, kept in the sandbox user's cache: `vbx_build` compiles $f into the
# directory $t (its messages, stdout and stderr, go to $t/.log and then to stderr: stdout starts
# with the program's run marker); a finished build is renamed to $o (atomic: two runs
# of the same snippet at once both work, one build is kept) and the oldest builds beyond
# CACHE_KEEP are removed. A reused build prints the messages of its compile again.
CACHE_KEEP = 64
_CACHED_BUILD = (
    'vbx() { d="${XDG_CACHE_HOME:-${HOME:-/tmp}/.cache}/vibebox/%(language)s"; o="$d/$VBX_KEY"; '
    'if [ -e "$o/.ok" ]; then touch "$o" 2>/dev/null; [ -s "$o/.log" ] && cat "$o/.log" >&2; else '
    # a build stopped by its timeout left "$o.<its execution id>": removed once no process carries that id
    'for g in "$d"/*.exec_*; do [ -e "$g" ] || continue; i=${g##*.}; '
    'grep -qsz "^VIBEBOX_EXEC_ID=$i\\$" /proc/[0-9]*/environ || rm -rf "$g"; done 2>/dev/null; '
    't="$o.%(execution)s"; mkdir -p "$d" && rm -rf "$t" && mkdir "$t" '
    '|| { echo "vibebox: cannot write to $d" >&2; return 70; }; '
    'vbx_build >"$t/.log" 2>&1; rc=$?; cat "$t/.log" >&2; '
    'if [ $rc -ne 0 ]; then rm -rf "$t"; return $rc; fi; '
    ': > "$t/.ok"; mv -T "$t" "$o" 2>/dev/null || rm -rf "$t"; '
    'ls -1t "$d" | tail -n +%(keep)d | while read -r n; do rm -rf "${d:?}/$n"; done; fi; '
    'printf "%%s\\n" "$VBX_RUN"; %(run)s; }; vbx'
)

# Each: (file extension, shell program run with the code on stdin; $f is the file). Compiled
# languages are (extension, build into $t, run from $o).
_PROGRAMS = {
    "javascript": ("cjs", 'node "$f"'),
    "javascript-esm": ("mjs", 'node "$f"'),
    "typescript": (
        "ts",
        'esbuild --loader=ts --format=cjs --log-level=error < "$f" > "$f.cjs" && printf "%s\\n" "$VBX_RUN" '
        '&& node "$f.cjs"',
    ),
    "typescript-esm": (
        "mts",
        'esbuild --loader=ts --format=esm --log-level=error < "$f" > "$f.mjs" && printf "%s\\n" "$VBX_RUN" '
        '&& node "$f.mjs"',
    ),
    "python": ("py", 'python3 -c "$VBX_RUNNER" "$f" "$VBX_MARKER"'),
    "ruby": ("rb", 'ruby -e "$VBX_RUNNER" "$f" "$VBX_MARKER"'),
    "shell": ("sh", 'if command -v bash >/dev/null 2>&1; then bash -l "$f"; else sh "$f"; fi'),
}
# Go builds outside any module (the standard library only), with Go's own build cache (GOCACHE,
# ~/.cache/go-build) shared by every snippet; Rust as a debug build (rustc's default: compiling
# fast matters more for snippets), edition 2021; Java with javac into a jar, run with a
# class-data-sharing archive of the program's own classes (it needs a jar) made on its first run.
# Each compiler sees the file as main.go (by //line), main.rs, Main.java: its messages name that.
_COMPILED = {
    "go": ("go", 'vbx_build() { go -C "$t" build -o main "$f"; }', '"$o/main"'),
    "rust": (
        "rs",
        'vbx_build() { cp "$f" "$t/main.rs" && (cd "$t" && rustc --edition 2021 -o main main.rs); }',
        '"$o/main"',
    ),
    "java": (
        "java",
        'vbx_build() { cp "$f" "$t/$VBX_JAVA_FILE" && (cd "$t" && javac -encoding UTF-8 -d classes '
        '"$VBX_JAVA_FILE" && jar --create --file app.jar -C classes .); }',
        'java -XX:SharedArchiveFile="$o/app.jsa" -XX:+AutoCreateSharedArchive -Xlog:cds=off -Xlog:cds+dynamic=off '
        '-cp "$o/app.jar" "$VBX_JAVA_MAIN"',
    ),
}
COMPILED = frozenset(_COMPILED) | {"typescript"}
# What /execute can run; a template lists the ones it has (template.yaml `languages`).
RUNNABLE = ("javascript", "typescript", "python", "shell", "go", "rust", "ruby", "java")
# Changes whenever the build commands change, so older builds are not reused.
BUILD_VERSION = "3"


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
    run_marker: str | None = None  # compiled languages: printed when the build succeeded


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
    # A template may list a language the execution API has no runner for (only RUNNABLE ones run).
    supported = [name for name in supported if name in RUNNABLE]
    if language not in supported:
        raise errors.UnsupportedLanguage(
            f"This template runs {', '.join(supported)}; not {language}.", details={"supported": supported}
        )


def program(language: str, code: str, execution_id: str) -> Program:
    token = secrets.token_hex(8)
    marker, run_marker = f"\x1evbx-return-{token}:", f"\x1evbx-run-{token}"
    env = {"VBX_RUN": run_marker}
    if language not in ("python", "shell", "ruby"):
        code = strip_shebang(code)
    if language in ("javascript", "typescript"):
        if _ESM.search(code):  # ES modules cannot be wrapped in a function: no return value
            language, source, marker = f"{language}-esm", code, None
        else:
            source = JS_WRAPPER % {"marker": f'"{marker}"', "code": code}
    elif language == "python":
        source = code
        env |= {"VBX_RUNNER": PY_RUNNER, "VBX_MARKER": marker}
    elif language == "ruby":
        source = code
        env |= {"VBX_RUNNER": RUBY_RUNNER, "VBX_MARKER": marker}
    else:
        source, marker = code, None
    if language in _COMPILED:
        extension, build, run = _COMPILED[language]
        if language == "go":
            source = wrap_go(source)
        elif language == "rust":
            source = wrap_rust(source)
        else:
            source, main_class, file_name = wrap_java(source)
            env |= {"VBX_JAVA_MAIN": main_class, "VBX_JAVA_FILE": file_name}
        key = hashlib.sha256(f"{BUILD_VERSION}\0{language}\0{env.get('VBX_JAVA_MAIN', '')}\0".encode())
        key.update(source.encode())
        env["VBX_KEY"] = key.hexdigest()[:40]
        run = f"{build}; " + _CACHED_BUILD % {
            "language": language, "keep": CACHE_KEEP + 1, "run": run, "execution": execution_id,
        }  # fmt: skip
    else:
        extension, run = _PROGRAMS[language]
    script = f'{SWEEP}f=/tmp/vbx-{execution_id}.{extension}; cat > "$f"; {run} < /dev/null; rc=$?; '
    script += 'rm -f "$f" "$f".*; exit $rc'
    compiled = language in COMPILED or language.startswith("typescript")
    return Program(
        argv=("sh", "-c", script), stdin=source.encode(), env=env, marker=marker,
        run_marker=run_marker if compiled else None,
    )  # fmt: skip


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


def split_phase(stdout: bytes, run_marker: str | None) -> tuple[bytes, str]:
    """Takes the run marker line off the start of stdout; returns (stdout, "compile" or "run"):
    a compiled program that never printed it failed, or was stopped, before it ran."""
    if not run_marker:
        return stdout, "run"
    line = run_marker.encode() + b"\n"
    if stdout.startswith(line):
        return stdout[len(line) :], "run"
    return stdout, "compile"


def strip_shebang(code: str) -> str:
    """A `#!` first line is only a comment to Python, shell and Ruby; elsewhere it becomes an empty
    line (Rust's `#![attribute]` is not a shebang)."""
    if code.startswith("#!") and not code.startswith("#!["):
        return code[code.find("\n") :] if "\n" in code else ""
    return code


# -- snippets without a main ------------------------------------------------------------------

# Go: a snippet with no `package` clause is made a program: `package main`, the imports it names
# (its own `import` lines, and the packages of GO_IMPORTS it uses as `name.Exported` and does not
# import), its top-level `func` and `type` declarations (at column 0) as they are, and, when it
# has no `func main`, every other line as the body of one.
GO_IMPORTS = {
    "fmt": "fmt", "os": "os", "strings": "strings", "strconv": "strconv", "math": "math", "time": "time",
    "sort": "sort", "errors": "errors", "bytes": "bytes", "bufio": "bufio", "io": "io", "regexp": "regexp",
    "sync": "sync", "unicode": "unicode", "slices": "slices", "maps": "maps", "context": "context",
    "json": "encoding/json", "rand": "math/rand", "filepath": "path/filepath", "utf8": "unicode/utf8",
    "http": "net/http", "exec": "os/exec", "atomic": "sync/atomic", "big": "math/big", "log": "log",
    "hex": "encoding/hex", "base64": "encoding/base64", "sha256": "crypto/sha256", "runtime": "runtime",
}  # fmt: skip
_GO_PACKAGE = re.compile(r"^\s*package\s+\w+", re.M)
_GO_MAIN = re.compile(r"^func\s+main\s*\(\s*\)", re.M)
_GO_USE = re.compile(r"(?<![\w.])([a-z][a-z0-9]*)\.[A-Z]")
_GO_IMPORT_LINE = re.compile(r'^import\s+(?:([\w.]+)\s+)?"([^"]+)"\s*$')
_GO_IMPORT_SPEC = re.compile(r'^\s*(?:([\w.]+)\s+)?"([^"]+)"')
_COMMENTS_AND_STRINGS = re.compile(r'//[^\n]*|/\*.*?\*/|"(?:\\.|[^"\\\n])*"|`[^`]*`|\'(?:\\.|[^\'\\\n])*\'', re.S)


def _blank(text: str) -> str:
    """Comments and string literals (C-like) turned into spaces, line breaks kept."""
    return _COMMENTS_AND_STRINGS.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)


def _top_level_blocks(lines: list[tuple[int, str]], starts: tuple[str, ...]):
    """Splits numbered lines into (declarations starting at column 0 with one of `starts`, through
    their balanced braces and parentheses; the other lines)."""
    declarations, others, index = [], [], 0
    while index < len(lines):
        if not lines[index][1].startswith(starts):
            others.append(lines[index])
            index += 1
            continue
        depth, opened = 0, False
        while index < len(lines):
            text = _blank(lines[index][1])
            depth += text.count("{") + text.count("(") - text.count("}") - text.count(")")
            opened = opened or "{" in text or "(" in text
            declarations.append(lines[index])
            index += 1
            if depth <= 0 and (opened or not lines[index - 1][1].rstrip().endswith(("{", "(", ","))):
                break
    return declarations, others


def _go_positions(entries: list[tuple[int | None, str]]) -> str:
    """The lines, with a `//line` directive wherever the next line is not the one after the last
    (numbered lines are the snippet's, main.go:N; the others VibeBox's, prelude.go:N), so Go's
    messages point into the snippet as it was sent."""
    out, expect, ours = [], None, 0
    for number, text in entries:
        if number is None:
            ours += 1
            position = ("prelude.go", ours)
        else:
            position = ("main.go", number)
        if position != expect:
            out.append(f"//line {position[0]}:{position[1]}:1")
        out.append(text)
        expect = (position[0], position[1] + 1)
    return "\n".join(out) + "\n"


def wrap_go(code: str) -> str:
    if _GO_PACKAGE.search(_blank(code)):
        return "//line main.go:1:1\n" + code
    lines = list(enumerate(code.split("\n"), 1))
    imported, import_lines, rest, index = {}, [], [], 0
    while index < len(lines):
        line = lines[index][1]
        single = _GO_IMPORT_LINE.match(line)
        if single:
            imported[single.group(1) or posixpath.basename(single.group(2))] = single.group(2)
            import_lines.append(lines[index])
        elif re.match(r"^import\s*\(\s*$", line):
            import_lines.append(lines[index])
            while index + 1 < len(lines):
                index += 1
                import_lines.append(lines[index])
                if lines[index][1].strip().startswith(")"):
                    break
                spec = _GO_IMPORT_SPEC.match(lines[index][1])
                if spec:
                    imported[spec.group(1) or posixpath.basename(spec.group(2))] = spec.group(2)
        else:
            rest.append(lines[index])
        index += 1
    used = {name for name in _GO_USE.findall(_blank("\n".join(text for _, text in rest))) if name in GO_IMPORTS}
    added = [f'\t"{GO_IMPORTS[name]}"' for name in sorted(used) if name not in imported]
    header = [(None, "package main"), *import_lines]
    if added:
        header += [(None, "import ("), *[(None, spec) for spec in added], (None, ")")]
    if _GO_MAIN.search(_blank("\n".join(text for _, text in rest))):
        return _go_positions([*header, *rest])
    declarations, body = _top_level_blocks(rest, ("func ", "type "))
    return _go_positions([*header, *declarations, (None, "func main() {"), *body, (None, "}")])


# Rust: a snippet without `fn main` becomes the body of one (items such as `fn`, `struct`, `use`
# and `impl` may stand inside a function); `#![...]` attributes and `extern crate` move before it.
# `fn main() {` is put on the snippet's first line, so rustc's line numbers are the snippet's.
_RUST_MAIN = re.compile(r"\bfn\s+main\s*\(")


def wrap_rust(code: str) -> str:
    if _RUST_MAIN.search(_blank(code)):
        return code
    lines = code.split("\n")
    outer = [line.strip() for line in lines if line.lstrip().startswith(("#![", "extern crate "))]
    body = ["" if line.lstrip().startswith(("#![", "extern crate ")) else line for line in lines]
    body[0] = " ".join([*outer, "fn main() {", body[0]])
    return "\n".join(body) + "\n}\n"


# Java: a snippet without a `main` method becomes the body of `public static void main` in a class
# `Main` (local classes, records, enums and interfaces may stand inside a method), with the
# imports JShell starts with plus the snippet's own `import` lines, all on the snippet's first
# line (javac's line numbers are the snippet's). Code with a main method runs the top-level type
# that declares it (where `java File.java` would run the first one).
JAVA_IMPORTS = (
    "java.io.*", "java.math.*", "java.net.*", "java.nio.file.*", "java.util.*", "java.util.concurrent.*",
    "java.util.function.*", "java.util.prefs.*", "java.util.regex.*", "java.util.stream.*",
)  # fmt: skip
_JAVA_MAIN = re.compile(r"\bvoid\s+main\s*\(")
_JAVA_TOKENS = re.compile(
    r"[{}]|((?:\b(?:public|protected|private|abstract|final|sealed|non-sealed|strictfp|static)\s+)*)"
    r"(?:\bclass|\binterface|\benum|\brecord|@interface)\s+([A-Za-z_$][\w$]*)|\bvoid\s+main\s*\("
)
_JAVA_PACKAGE = re.compile(r"^\s*package\s+([\w.]+)\s*;", re.M)
_JAVA_HEADER = re.compile(r"^\s*(import\s+(static\s+)?[\w.*\s]+|package\s+[\w.]+)\s*;\s*$")


def wrap_java(code: str) -> tuple[str, str, str]:
    """(source, the class to run, the file name javac needs)."""
    text = _blank(code)
    if not _JAVA_MAIN.search(text):
        lines = code.split("\n")
        own = [line.strip() for line in lines if _JAVA_HEADER.match(line)]
        own.sort(key=lambda line: not line.startswith("package"))
        body = ["" if _JAVA_HEADER.match(line) else line for line in lines]
        imports = [f"import {name};" for name in JAVA_IMPORTS]
        main = "public class Main { public static void main(String[] args) throws Exception {"
        body[0] = " ".join([*own[:1], *imports, *own[1:], main, body[0]])
        package = _JAVA_PACKAGE.search("\n".join(own))
        main_class = f"{package.group(1)}.Main" if package else "Main"
        return "\n".join(body) + "\n}}\n", main_class, "Main.java"
    depth, current, main_class, public = 0, None, None, None
    for token in _JAVA_TOKENS.finditer(text):
        word = token.group(0)
        if word == "{":
            depth += 1
        elif word == "}":
            depth -= 1
        elif token.group(2):
            if depth == 0:
                current = token.group(2)
                if public is None and "public" in (token.group(1) or "").split():
                    public = current
        elif main_class is None and current:
            main_class = current
    main_class = main_class or current or "Main"
    package = _JAVA_PACKAGE.search(text)
    qualified = f"{package.group(1)}.{main_class}" if package else main_class
    return code, qualified, f"{public or main_class}.java"


# -- `auto`: which language is this code? -----------------------------------------------------

# A `#!` line's program (its name without a version: python3.12 is python).
SHEBANGS = {
    "python": "python", "pypy": "python", "node": "javascript", "nodejs": "javascript", "bun": "javascript",
    "ts-node": "typescript", "tsx": "typescript", "deno": "typescript", "sh": "shell", "bash": "shell",
    "dash": "shell", "zsh": "shell", "ksh": "shell", "ash": "shell", "ruby": "ruby", "go": "go", "gorun": "go",
    "rust-script": "rust", "cargo": "rust", "java": "java",
}  # fmt: skip
# Programs a line of code that starts with them is meant to run (beside SHELL_BUILTINS); the
# sandbox's PATH is asked about other words by the exec service, not here.
COMMANDS = {
    "git", "npm", "npx", "yarn", "pnpm", "pip", "pip3", "uv", "apt", "apt-get", "curl", "wget", "grep", "sed",
    "awk", "mkdir", "rm", "cp", "mv", "touch", "chmod", "chown", "find", "tar", "head", "tail", "wc", "sort",
    "uniq", "xargs", "which", "whoami", "uname", "df", "du", "ps", "date", "id", "hostname", "ln", "make",
    "cargo", "rustc", "mvn", "gem", "bundle", "javac", "psql", "redis-cli", "tree", "diff", "seq", "basename",
    "dirname", "mktemp", "sha256sum", "base64", "unzip", "zip", "ping", "ss", "top", "free", "lsof",
}  # fmt: skip
M = re.M
# (pattern, weight): a language's score is the sum of the weights of its patterns the code matches
# (each once). TypeScript scores JavaScript's patterns too.
MARKERS: dict[str, list[tuple[re.Pattern, int]]] = {
    "python": [
        (r"^\s*(async\s+)?def\s+\w+\s*\(.*\)\s*(->\s*[^:]+)?:\s*(#.*)?$", 5),
        (r"^\s*import\s+[\w.]+(\s+as\s+\w+)?(\s*,\s*[\w.]+(\s+as\s+\w+)?)*\s*$", 4),
        (r"^\s*from\s+[.\w]+\s+import\s+[\w*, ()]+\s*$", 4),
        (r"^\s*(if|elif|while|for|with|try|except|else|finally|class)\b[^{};]*:\s*(#.*)?$", 3),
        (r"(?<![\w.])print\(", 2),
        (r"\b(True|False)\b", 2),
        (r"\bNone\b", 1),
        (r"\b(elif|lambda|nonlocal|__name__|__init__|isinstance)\b", 3),
        (r"\bf['\"]", 2),
        (r"\[[^\]]+\sfor\s+\w+(\s*,\s*\w+)*\s+in\s[^\]]+\]", 4),
        (r"\b(range|len|enumerate|str|dict)\(", 1),
        (r"\bself\.\w+\s*=", 1),
    ],
    "javascript": [
        (r"\bconsole\.(log|error|warn|info|table)\(", 5),
        (r"^\s*(const|let|var)\s+[\w$]+\s*=", 1),
        (r"^\s*(const|let|var)\s+[\[{]", 3),
        (r"\brequire\(\s*['\"]", 5),
        (r"\bfunction\b\s*\*?\s*[\w$]*\s*\(", 3),
        (r"===|!==", 3),
        (r"(\([\w\s,]*\)|\b\w+)\s*=>\s*[^\s>]", 1),
        (r"\b(module\.exports|exports\.\w+|process\.(argv|env|exit|stdout|cwd)|document\.|window\.)", 4),
        (r"\b(JSON\.(stringify|parse)|Promise\.|setTimeout\(|Math\.\w+\(|Object\.(keys|entries|assign)\()", 3),
        (r"^\s*import\s+.+\s+from\s+['\"]|^\s*import\s+['\"]", 4),
        (r"`[^`]*\$\{[^`]*`", 3),
        (r"\.(forEach|map|filter|reduce|then)\(\s*(async\s+)?(\w+|\([^)]*\))\s*=>", 3),
        (r"\b(undefined|null)\b", 1),
    ],
    "typescript": [
        (r"[\w)\]?]\s*:\s*(string|number|boolean|any|unknown|void|never|bigint)(\[\])?\s*[,)=;{|>]", 5),
        (r"^\s*(export\s+)?interface\s+\w+(<[^>]*>)?(\s+extends\s+[\w, ]+)?\s*\{", 3),
        (r"^\s*(export\s+)?type\s+\w+(<[^>]*>)?\s*=\s*[{\w'\"(|]", 3),
        (r"\bas\s+(string|number|const|any|unknown|boolean)\b", 4),
        (r"\b(readonly|declare|namespace|keyof)\s", 3),
        (r"\)\s*:\s*(Promise<|[a-z]+\b|[A-Z]\w*)(<[^>]*>)?(\[\])?\s*(=>|\{)", 3),
        (r"\b(const|let|var)\s+\w+\s*:\s*[A-Za-z]\w*(<[^>]*>)?(\[\])?\s*=", 2),
    ],
    "shell": [
        (r"^\s*(fi|done|esac)\s*$|^\s*if\s+\[|;\s*then\b|;\s*do\b|^\s*then\s*$", 5),
        (r"^\s*export\s+[A-Za-z_]\w*=", 4),
        (r"\$[A-Z_]{2,}\b|\$\{[A-Za-z_]\w*[:#%/}]", 2),
        (r"\|\s*(grep|sed|awk|sort|head|tail|wc|xargs|tee|cut|tr|uniq|jq|less)\b", 4),
        (r"\d?>&\d|>\s*/dev/null|\b2>", 3),
        (r"\$\((\w|-)+[\s)]", 3),
        (r"^\s*[A-Za-z_]\w*=\S", 1),
        (r"^\s*(echo|printf|cd|ls|mkdir|rm)\s", 2),
    ],
    "go": [
        (r"^\s*package\s+\w+\s*$", 6),
        (r"^func\s+(\(\w+\s+\*?\w+\)\s*)?\w+\s*\(", 5),
        (r"\bfmt\.[A-Z]\w*\(", 5),
        (r"\w\s*:=\s*", 2),
        (r"^\s*import\s+(\(\s*$|(\w+\s+)?\"[\w/.-]+\"\s*$)", 4),
        (r"\berr\s*!=\s*nil\b", 5),
        (r"^\s*defer\s|\bchan\s+\w|\bgo\s+func\b|\bselect\s*\{", 4),
        (r"\[\]\w+\{", 3),
        (r"\bmake\((\[\]|map\[|chan\s)", 4),
        (r"\bfor\s+(\w+(\s*,\s*\w+)?\s*:=\s*)?range\s", 4),
        (r"\b(strings|strconv|os|time|sort|errors|math)\.[A-Z]\w*", 3),
        (r"\bnil\b", 1),
    ],
    "rust": [
        (r"\bfn\s+\w+\s*(<[^>]*>)?\s*\(", 5),
        (r"\blet\s+mut\b", 5),
        (r"\b(println|print|eprintln|eprint|format|vec|panic|assert_eq|assert|write|writeln|dbg|todo)!\s*[(\[]", 5),
        (r"^\s*use\s+\w+(::[\w{}*, ]+)+;", 5),
        (r"^\s*impl\b(<[^>]*>)?\s+\w+", 4),
        (r"&(mut\s+)?(str|self)\b|\bString::(from|new)\b|\.to_string\(\)|\.unwrap\(\)|\.iter\(\)|\.collect::", 3),
        (r"\b(i8|i16|i32|i64|u8|u16|u32|u64|usize|isize|f32|f64)\b", 3),
        (r"#\[(derive|test|allow)\(|#!\[", 5),
        (r"\bmatch\s+[^{]+\{", 2),
        (r"\b(Some|Ok|Err)\(", 2),
        (r"\bpub\s+(fn|struct|enum|mod)\b", 4),
        (r"\b(Vec|Option|Result|Box|Rc)<", 3),
        (r"\|\w+(\s*,\s*\w+)*\|\s*[\w{(]", 2),
    ],
    "ruby": [
        (r"^\s*puts\b|\bputs\s", 4),
        (r"^\s*def\s+(self\.)?\w+[?!=]?(\s*\(.*\))?\s*$", 4),
        (r"^\s*end\s*$", 3),
        (r"\bdo\s*\|[\w, *]+\|", 5),
        (r"\{\s*\|[\w, *]+\|", 4),
        (r"^\s*require(_relative)?\s+['\"]", 4),
        (r"#\{", 3),
        (r"\b(elsif|unless|attr_accessor|attr_reader|attr_writer|module_function)\b", 4),
        (r"\.(each|each_with_index|times|map|select|reject|inject|reduce|each_pair|upto)\s*(do\b|\{)", 4),
        (r":\w+\s*=>", 3),
        (r"^\s*(class|module)\s+[A-Z]\w*(\s*<\s*[A-Z][\w:]*)?\s*$", 4),
        (r"@\w+\s*=[^=]", 2),
        (r"\.(to_s|to_i|to_a|to_sym|to_h)\b|\.(nil|empty|include|key)\?", 3),
        (r"\bnil\b", 1),
        (r"^\s*(p|pp)\s+\S", 2),
    ],
    "java": [
        (r"\bpublic\s+static\s+void\s+main\s*\(", 6),
        (r"\bSystem\.(out|err)\.print(ln|f)?\(", 6),
        (r"^\s*import\s+(static\s+)?javax?\.[\w.*]+;", 6),
        (r"^\s*((public|final|abstract)\s+)*class\s+\w+(\s+extends\s+\w+)?(\s+implements\s+[\w, <>]+)?\s*\{", 2),
        (r"(^|[;{(]\s*)(int|long|double|float|boolean|char|byte|short)(\[\])*\s+\w+\s*(=|;|:)", 3),
        (r"\b(String|Integer|Long|Double|List|Map|Set|ArrayList|HashMap)(<[^>]*>)?(\[\])?\s+\w+\s*(=|;)", 4),
        (r"@Override\b|\bthrows\s+\w+|\bfinal\s+\w+(<[^>]*>)?\s+\w+\s*=", 4),
        (r"\bnew\s+\w+(<[^>]*>)?(\(|\[)", 1),
        (r"\bvar\s+\w+\s*=\s*new\s", 2),
        (r"\bString\.(format|valueOf|join)\(|\.stream\(\)|\bArrays\.\w+\(|\bCollectors\.|\bMath\.\w+\(", 3),
        (r"\bpublic\s+(static\s+)?(final\s+)?\w+(<[^>]*>)?\s+\w+\s*\(", 3),
    ],
}  # fmt: skip
MARKERS = {language: [(re.compile(p, M), weight) for p, weight in patterns] for language, patterns in MARKERS.items()}
_SHEBANG = re.compile(r"#!\s*(\S+)(.*)")
_COMMAND_LINE = re.compile(r"[ \t]*([A-Za-z0-9_][\w.+/-]*)([ \t]+[^\n]*)?$", M)


def shebang_language(code: str) -> str | None:
    """The language a `#!` first line names (`#!/usr/bin/env -S python3 -u` is python)."""
    match = _SHEBANG.match(code.split("\n", 1)[0])
    if not match:
        return None
    words = [match.group(1), *match.group(2).split()]
    program = posixpath.basename(words[0])
    if program == "env":
        words = [word for word in words[1:] if not word.startswith("-") and "=" not in word]
        program = posixpath.basename(words[0]) if words else ""
    if program in ("npx", "bunx", "pnpx") and len(words) > 1:  # #!/usr/bin/env -S npx tsx
        program = words[1]
    name = re.match(r"[a-z]+(-[a-z]+)*", program)
    return SHEBANGS.get(name.group(0)) if name else None


def _command_line(code: str, candidates: list[str]) -> bool:
    """The first line is a command line: a shell builtin or a well-known program, followed by
    arguments (not by `=`, `(`, `.` or `:` as code would be), and not a word of a candidate."""
    match = _COMMAND_LINE.match(code.lstrip("\n"))
    if not match:
        return False
    word, rest = match.group(1), (match.group(2) or "").strip()
    if word not in SHELL_BUILTINS and word not in COMMANDS:
        return False
    if any(word in KEYWORDS.get(language, ()) for language in candidates if language != "shell"):
        return False
    return not rest.startswith(("=", "(", ":", ".", "[", "{", "+=", "-="))


def scores(code: str, candidates: list[str]) -> dict[str, int]:
    """Each candidate's score: the weights of the markers its code matches."""
    text = code.replace("\r\n", "\n")
    result = {}
    for language in candidates:
        patterns = MARKERS.get(language, [])
        if language == "typescript":
            patterns = MARKERS["javascript"] + patterns
        result[language] = sum(weight for pattern, weight in patterns if pattern.search(text))
    if "shell" in result and _command_line(text, candidates):
        result["shell"] += 5
    return result


def detect(code: str, candidates: list[str], default: str | None) -> str | None:
    """The language of `code` among `candidates` (what the template runs): the `#!` line's, else
    the one whose syntax markers score highest (above the others: on a tie the default wins, then
    the earlier candidate; TypeScript over JavaScript only on TypeScript's own markers), else
    `default` (what nothing marks). Pure: no sandbox is asked."""
    named = shebang_language(code)
    if named in candidates:
        return named
    score = scores(code, candidates)
    best = max(score.values(), default=0)
    if best <= 0:
        return default
    if default in score and score[default] == best:
        return default
    return next(language for language in candidates if score[language] == best)
