"""Go, Rust, Ruby and Java through /execute, against the real engine and the real templates:
hello world, a snippet without a main, a compile error (`phase: "compile"`), Ruby's return value,
`auto`, and the build cache (a second run of the same snippet does not compile again)."""

import pytest

pytestmark = pytest.mark.templates  # go-1.24, rust-1.85, ruby-3.3, java-21: built by make test-templates


def execute(api_client, sandbox_id, expect=200, **body):
    response = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/execute", body, format="json")
    assert response.status_code == expect, response.content
    return response.json()


def shell(api_client, sandbox_id, command: str) -> str:
    response = api_client.post(f"/api/v1/sandboxes/{sandbox_id}/exec", {"command": command}, format="json")
    assert response.status_code == 200, response.content
    return response.json()["stdout"]


# Compiling is slow on a loaded 2-core machine (Go builds its standard packages on a first run).
TIMEOUT = 300


def test_go(api_client, create_sandbox):
    sandbox = create_sandbox(template="go-1.24")["id"]
    assert execute(api_client, sandbox, code="go version")["language"] == "shell"  # on PATH

    program = 'package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("hello from go")\n}\n'
    body = execute(api_client, sandbox, code=program, language="go", timeout=TIMEOUT)
    assert body["stdout"] == "hello from go\n", body
    assert (body["language"], body["phase"], body["exitCode"], body["status"]) == ("go", "run", 0, "completed")

    # no package, no main: imports inferred, top-level func kept, the rest in main; auto finds Go
    snippet = (
        "func square(n int) int {\n\treturn n * n\n}\n"
        'words := strings.Fields("a b c")\nfmt.Println(len(words), square(7))\n'
    )
    body = execute(api_client, sandbox, code=snippet, timeout=TIMEOUT)
    assert (body["language"], body["stdout"], body["phase"]) == ("go", "3 49\n", "run"), body

    body = execute(api_client, sandbox, code='fmt.Println("x" + 1)', language="go", timeout=TIMEOUT)
    assert (body["phase"], body["status"]) == ("compile", "failed") and body["exitCode"] != 0, body
    assert "mismatched types" in body["stderr"] or "cannot convert" in body["stderr"], body
    assert body["stdout"] == ""

    # a non-zero exit of the program itself is the run phase
    body = execute(api_client, sandbox, code="os.Exit(3)", language="go", timeout=TIMEOUT)
    assert (body["phase"], body["exitCode"]) == ("run", 3), body


def test_rust_and_its_build_cache(api_client, create_sandbox):
    sandbox = create_sandbox(template="rust-1.85")["id"]
    program = 'fn main() {\n    println!("hello from rust");\n}\n'
    body = execute(api_client, sandbox, code=program, language="rust", timeout=TIMEOUT)
    assert (body["stdout"], body["phase"], body["exitCode"]) == ("hello from rust\n", "run", 0), body

    snippet = 'let mut v = vec![3, 1, 2];\nv.sort();\nprintln!("{:?}", v);'
    cold = execute(api_client, sandbox, code=snippet, timeout=TIMEOUT)
    assert (cold["language"], cold["stdout"], cold["phase"]) == ("rust", "[1, 2, 3]\n", "run"), cold
    warm = execute(api_client, sandbox, code=snippet, timeout=TIMEOUT)
    assert (warm["stdout"], warm["stderr"], warm["phase"]) == (cold["stdout"], cold["stderr"], "run"), warm
    # the second run used the kept build: one build in the cache for it
    builds = shell(api_client, sandbox, "ls ~/.cache/vibebox/rust").split()
    assert len(builds) == 2, builds  # the program and the snippet

    # a build its timeout stops is the compile phase (2^26 macro expansions: never done in 1 s)
    explode = "macro_rules! e { () => {}; (x $($t:tt)*) => { e!($($t)*); e!($($t)*); }; }\n"
    explode += "fn main() { e!(" + "x " * 26 + "); }\n"
    body = execute(api_client, sandbox, code=explode, language="rust", timeout=1)
    assert (body["status"], body["phase"], body["stdout"]) == ("timeout", "compile", ""), body

    # a warning of the build is on stderr, in the cold and the warm run alike
    warned = 'let unused = 1;\nprintln!("ok");'
    first = execute(api_client, sandbox, code=warned, language="rust", timeout=TIMEOUT)
    again = execute(api_client, sandbox, code=warned, language="rust", timeout=TIMEOUT)
    assert first["stdout"] == again["stdout"] == "ok\n"
    assert "unused variable" in first["stderr"] and again["stderr"] == first["stderr"]

    # the build happens elsewhere; the program runs in the request's cwd
    code = 'println!("{}", std::env::current_dir().unwrap().display());'
    assert execute(api_client, sandbox, code=code, cwd="/tmp", timeout=TIMEOUT)["stdout"] == "/tmp\n"

    body = execute(api_client, sandbox, code='let x: i32 = "a";', language="rust", timeout=TIMEOUT)
    assert (body["phase"], body["status"]) == ("compile", "failed") and body["exitCode"] != 0, body
    assert "mismatched types" in body["stderr"], body
    # a failed build is not kept, and nothing is left in /tmp
    assert len(shell(api_client, sandbox, "ls ~/.cache/vibebox/rust").split()) == 4
    assert shell(api_client, sandbox, "ls -a /tmp | grep vbx- || true") == ""


def test_ruby(api_client, create_sandbox):
    sandbox = create_sandbox(template="ruby-3.3")["id"]
    body = execute(api_client, sandbox, code="puts 'hello from ruby'", language="ruby")
    assert (body["stdout"], body["phase"], body["exitCode"], body["returnValue"]) == (
        "hello from ruby\n", "run", 0, None,
    ), body  # fmt: skip

    code = "require 'set'\nputs 'hi'\n{ name: 'vibe', tags: [1, 2.5, nil, true], set: Set[1].size }"
    body = execute(api_client, sandbox, code=code)  # auto
    assert body["language"] == "ruby" and body["stdout"] == "hi\n", body
    assert body["returnValue"] == {"name": "vibe", "tags": [1, 2.5, None, True], "set": 1}
    assert execute(api_client, sandbox, code="x = 41\nx + 1", language="rb")["returnValue"] == 42
    value = execute(api_client, sandbox, code="Object.new", language="ruby")["returnValue"]
    assert value.startswith("#<Object:"), value
    assert execute(api_client, sandbox, code="__FILE__ == $0", language="ruby")["returnValue"] is True

    body = execute(api_client, sandbox, code="raise ArgumentError, 'bad'", language="ruby")
    assert (body["status"], body["exitCode"], body["phase"]) == ("failed", 1, "run"), body
    assert "bad (ArgumentError)" in body["stderr"]
    assert execute(api_client, sandbox, code="exit 4", language="ruby")["exitCode"] == 4
    # a command line is still shell under auto
    assert execute(api_client, sandbox, code="echo $HOME")["language"] == "shell"


def test_java(api_client, create_sandbox):
    sandbox = create_sandbox(template="java-21")["id"]
    program = (
        "public class Hello {\n"
        '    public static void main(String[] args) { System.out.println("hello from java"); }\n'
        "}\n"
    )
    body = execute(api_client, sandbox, code=program, language="java", timeout=TIMEOUT)
    assert (body["stdout"], body["phase"], body["exitCode"]) == ("hello from java\n", "run", 0), body
    assert body["stderr"] == "", body  # nothing of the class-data archive's

    snippet = (
        "record Point(int x, int y) {}\n"
        "var points = new ArrayList<Point>(List.of(new Point(2, 1), new Point(1, 2)));\n"
        "points.sort(Comparator.comparingInt(Point::x));\n"
        'System.out.println(points.stream().map(Point::toString).collect(Collectors.joining(",")));'
    )
    cold = execute(api_client, sandbox, code=snippet, timeout=TIMEOUT)  # auto
    expected = "Point[x=1, y=2],Point[x=2, y=1]\n"
    assert (cold["language"], cold["stdout"], cold["phase"]) == ("java", expected, "run"), cold
    kept = shell(api_client, sandbox, "ls ~/.cache/vibebox/java").split()
    warm = execute(api_client, sandbox, code=snippet, timeout=TIMEOUT)
    assert (warm["stdout"], warm["stderr"]) == (expected, ""), warm
    assert shell(api_client, sandbox, "ls ~/.cache/vibebox/java").split() == kept  # no new build

    code = 'System.out.println(System.getProperty("user.dir"));'
    assert execute(api_client, sandbox, code=code, timeout=TIMEOUT)["stdout"] == "/workspace\n"

    body = execute(api_client, sandbox, code='int x = "a";', language="java", timeout=TIMEOUT)
    assert (body["phase"], body["status"]) == ("compile", "failed") and body["exitCode"] != 0, body
    assert "incompatible types" in body["stderr"], body
    body = execute(api_client, sandbox, code="System.exit(5);", language="java", timeout=TIMEOUT)
    assert (body["phase"], body["exitCode"]) == ("run", 5), body


@pytest.mark.parametrize("language", ["go", "rust", "java", "kotlin"])
def test_a_language_the_template_does_not_run(api_client, create_sandbox, language):
    sandbox = create_sandbox(template="ruby-3.3")["id"]
    body = execute(api_client, sandbox, expect=400, code="x", language=language)
    assert body["error"]["code"] == "unsupported_language"
    assert body["error"]["details"]["supported"] == ["ruby", "shell"]
