"""Compiled snippets through /execute, cold and warm (issue 22's build cache): for Go, Rust and
Java, the same small program

- compiled and run by raw docker-py exec_run in the same kind of sandbox (the baseline: what the
  compiler costs with no VibeBox in the way, compiling every time),
- through the API with a new source each time (a changed comment: no build to reuse; for Go its
  own build cache of the standard packages is warm after the first run: "cold"),
- through the API with the same source again ("warm": the kept build runs, nothing compiles),

plus, once, the first build in a fresh sandbox (Go builds the standard packages it needs then).
Ratios are against the baseline; `warm_vs_cold` is the warm p50 over the cold p50.

.venv/bin/python bench/compile.py [--repeat 5] [--languages go,rust,java]
"""

import argparse
import io
import json
import tarfile
import time

import docker
from common import api, live_server, summary, timed

PROGRAMS = {
    "go": (
        "go-1.24",
        'words := strings.Fields("a b c")\nsort.Strings(words)\nfmt.Println(strings.Join(words, ","), %d)\n',
        'package main\n\nimport (\n\t"fmt"\n\t"sort"\n\t"strings"\n)\n\nfunc main() {\n'
        '\twords := strings.Fields("a b c")\n\tsort.Strings(words)\n\tfmt.Println(strings.Join(words, ","), %d)\n}\n',
        "main.go",
        "cd /home/sandbox/bench && go build -o main main.go && ./main",
    ),
    "rust": (
        "rust-1.85",
        'let mut v = vec!["c", "a", "b"];\nv.sort();\nprintln!("{} {}", v.join(","), %d);\n',
        'fn main() {\n    let mut v = vec!["c", "a", "b"];\n    v.sort();\n'
        '    println!("{} {}", v.join(","), %d);\n}\n',
        "main.rs",
        "cd /home/sandbox/bench && rustc --edition 2021 -o main main.rs && ./main",
    ),
    "java": (
        "java-21",
        'var v = new ArrayList<>(List.of("c", "a", "b"));\nCollections.sort(v);\n'
        'System.out.println(String.join(",", v) + " " + %d);\n',
        "import java.util.*;\npublic class Main { public static void main(String[] args) {\n"
        'var v = new ArrayList<>(List.of("c", "a", "b"));\nCollections.sort(v);\n'
        'System.out.println(String.join(",", v) + " " + %d);\n} }\n',
        "Main.java",
        "cd /home/sandbox/bench && javac -d classes Main.java && java -cp classes Main",
    ),
}


def put_file(container, name: str, text: str) -> None:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w") as tar:
        folder = tarfile.TarInfo("bench")
        folder.type, folder.mode, folder.uid, folder.gid = tarfile.DIRTYPE, 0o755, 1000, 1000
        tar.addfile(folder)
        data = text.encode()
        info = tarfile.TarInfo(f"bench/{name}")
        info.size, info.mode, info.uid, info.gid = len(data), 0o644, 1000, 1000
        tar.addfile(info, io.BytesIO(data))
    container.put_archive("/home/sandbox", buffer.getvalue())


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--languages", default="go,rust,java")
    args = parser.parse_args()
    client = docker.from_env()
    results = {}
    with live_server("bench-cc") as (url, key, _pid):
        for language in args.languages.split(","):
            template, snippet, program, file_name, raw = PROGRAMS[language]
            _, sandbox = api(url, key, "POST", "/api/v1/sandboxes", {"template": template})
            path = f"/api/v1/sandboxes/{sandbox['id']}/execute"
            counter = iter(range(1_000_000))

            def run(code: str, language=language, path=path) -> dict:
                status, body = api(url, key, "POST", path, {"code": code, "language": language, "timeout": 600})
                assert status == 200 and body["exitCode"] == 0, body
                return body

            try:
                start = time.perf_counter()
                run(snippet % next(counter))
                first = round((time.perf_counter() - start) * 1000, 2)
                container = client.containers.get(sandbox["id"])

                def baseline(container=container, program=program, name=file_name, raw=raw, n=counter) -> None:
                    put_file(container, name, program % next(n))
                    result = container.exec_run(["sh", "-c", raw], user="sandbox")
                    assert result.exit_code == 0, result.output

                baseline()  # the same warm-up for the compiler outside VibeBox
                base = summary(f"{language}: docker-py exec_run compile + run (baseline)", timed(baseline, args.repeat))
                cold = summary(f"{language}: API execute, new source (compiles)", timed(
                    lambda run=run, snippet=snippet, n=counter: run(snippet % next(n)), args.repeat
                ))  # fmt: skip
                same = snippet % 0
                run(same)
                warm = summary(f"{language}: API execute, same source again (build cache)", timed(
                    lambda run=run, same=same: run(same), args.repeat * 2
                ))  # fmt: skip
            finally:
                api(url, key, "DELETE", f"/api/v1/sandboxes/{sandbox['id']}")
            for row in (cold, warm):
                row["ratio_p50_vs_baseline"] = round(row["p50_ms"] / base["p50_ms"], 2)
            results[language] = {
                "first_build_in_a_fresh_sandbox_ms": first,
                "baseline": base,
                "results": [cold, warm],
                "warm_vs_cold": round(warm["p50_ms"] / cold["p50_ms"], 3),
            }
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
