"""`language: "auto"`: which language a snippet is, by `languages.detect` (a pure function: no
sandbox, no Docker). Each row: the code, the candidates (what the template runs; ALL: every
language /execute knows), the default (the template's language; None: nothing marks it) and the
answer. Ambiguous snippets are pinned too: what a template's candidates and default make of them."""

import pytest

from apps.sandboxes import languages

ALL = list(languages.RUNNABLE)
NODE = ["javascript", "typescript", "shell"]
PYTHON = ["python", "shell"]

TABLE = [
    # -- python
    ("print('hello')", ALL, None, "python"),
    ("import os\nprint(os.getcwd())", ALL, None, "python"),
    ("def add(a, b):\n    return a + b\n\nadd(2, 3)", ALL, None, "python"),
    ("from pathlib import Path\nsorted(p.name for p in Path('.').iterdir())", ALL, None, "python"),
    ("squares = [n * n for n in range(10)]\nsquares", ALL, None, "python"),
    ("class Point:\n    def __init__(self, x):\n        self.x = x\n\nPoint(1).x", ALL, None, "python"),
    ("for i in range(3):\n    print(f'{i}!')", ALL, None, "python"),
    ("#!/usr/bin/env python3\nx = 1", ALL, None, "python"),  # nothing but the shebang says python
    # -- javascript
    ("console.log('hello')", ALL, None, "javascript"),
    ("const fs = require('fs');\nreturn fs.readdirSync('.');", ALL, None, "javascript"),
    ("function add(a, b) { return a + b }\nadd(1, 2) === 3", ALL, None, "javascript"),
    ("const xs = [1, 2, 3];\nreturn xs.map((x) => x * 2);", ALL, None, "javascript"),
    ("await new Promise((r) => setTimeout(r, 10));\nreturn 42", ALL, None, "javascript"),
    ("import os from 'node:os';\nconsole.log(os.cpus().length)", ALL, None, "javascript"),
    ("const name = 'vibe';\nconsole.log(`hi ${name}`)", ALL, None, "javascript"),
    ("#!/usr/bin/env node\nlet n = 1", ALL, None, "javascript"),
    # -- typescript
    ("const n: number = 42;\nconsole.log(n)", ALL, None, "typescript"),
    ("interface P { x: number }\nconst p: P = { x: 2 };\nconsole.log(p.x)", ALL, None, "typescript"),
    ("type Id = string | number;\nconst id: Id = 'a';\nconsole.log(id)", ALL, None, "typescript"),
    ("function greet(name: string): string {\n  return `hi ${name}`;\n}\ngreet('a')", ALL, None, "typescript"),
    ("const xs = [1, 2] as const;\nconsole.log(xs)", ALL, None, "typescript"),
    ("export interface User { id: number; name: string }", NODE, "javascript", "typescript"),
    ("const f = async (u: string): Promise<void> => { console.log(u) };", ALL, None, "typescript"),
    ("#!/usr/bin/env -S npx tsx\nlet a = 1", ALL, None, "typescript"),
    ("enum Color { Red, Green }\nlet names: string[] = [];\nnames.push('a');", ALL, None, "typescript"),
    # -- shell
    ("echo hello", ALL, None, "shell"),
    ("ls -la /workspace", ALL, None, "shell"),
    ("cd /tmp && pwd", ALL, None, "shell"),
    ('for f in *.txt; do\n  wc -l "$f"\ndone', ALL, None, "shell"),
    ("if [ -f package.json ]; then\n  npm test\nfi", ALL, None, "shell"),
    ("export NODE_ENV=production\nnode server.js > /dev/null 2>&1 &", ALL, None, "shell"),
    ("cat /etc/os-release | grep PRETTY", ALL, None, "shell"),
    ("#!/bin/bash\nset -euo pipefail\nmake build", ALL, None, "shell"),
    # -- go
    ('package main\n\nimport "fmt"\n\nfunc main() {\n\tfmt.Println("hi")\n}', ALL, None, "go"),
    ('fmt.Println("hello")', ALL, None, "go"),
    ('x := 42\nfmt.Printf("%d\\n", x)', ALL, None, "go"),
    ("func add(a, b int) int { return a + b }\nfmt.Println(add(1, 2))", ALL, None, "go"),
    ("nums := []int{3, 1, 2}\nsort.Ints(nums)\nfmt.Println(nums)", ALL, None, "go"),
    ('f, err := os.Open("x")\nif err != nil {\n\tpanic(err)\n}\ndefer f.Close()', ALL, None, "go"),
    ("ch := make(chan int)\ngo func() { ch <- 1 }()\nfmt.Println(<-ch)", ALL, None, "go"),
    ('for i, s := range []string{"a", "b"} {\n\tfmt.Println(i, s)\n}', ALL, None, "go"),
    # -- rust
    ('fn main() {\n    println!("hi");\n}', ALL, None, "rust"),
    ('println!("hello");', ALL, None, "rust"),
    ('let mut v = vec![3, 1, 2];\nv.sort();\nprintln!("{:?}", v);', ALL, None, "rust"),
    ("use std::collections::HashMap;\nlet mut m = HashMap::new();\nm.insert(1, 2);", ALL, None, "rust"),
    ("fn square(x: i32) -> i32 { x * x }\nassert_eq!(square(3), 9);", ALL, None, "rust"),
    ('#[derive(Debug)]\nstruct P { x: i32 }\nprintln!("{:?}", P { x: 1 });', ALL, None, "rust"),
    ('let s = String::from("a");\nlet n: usize = s.len();', ALL, None, "rust"),
    ('let total: i64 = (1..=10).map(|x| x * x).sum();\nprintln!("{total}");', ALL, None, "rust"),
    # -- ruby
    ("puts 'hello'", ALL, None, "ruby"),
    ("[1, 2, 3].each do |n|\n  puts n * 2\nend", ALL, None, "ruby"),
    ("def greet(name)\n  \"hi #{name}\"\nend\ngreet('a')", ALL, None, "ruby"),
    ("require 'json'\nJSON.generate({a: 1})", ALL, None, "ruby"),
    ("class Dog < Animal\n  attr_reader :name\nend", ALL, None, "ruby"),
    ("5.times { |i| print i }", ALL, None, "ruby"),
    ("h = { :a => 1 }\nh.map { |k, v| [k.to_s, v] }.to_h", ALL, None, "ruby"),
    ("x = 3\nif x > 2\n  puts 'big'\nelsif x > 1\n  puts 'mid'\nend", ALL, None, "ruby"),
    # -- java
    ('System.out.println("hello");', ALL, None, "java"),
    ("public class Main {\n  public static void main(String[] args) {\n    run();\n  }\n}", ALL, None, "java"),
    ('String s = "abc";\nSystem.out.println(s.length());', ALL, None, "java"),
    ("import java.util.*;\nList<Integer> xs = new ArrayList<>();\nxs.add(1);", ALL, None, "java"),
    ("int total = 0;\nfor (int i = 0; i < 10; i++) total += i;\nSystem.out.println(total);", ALL, None, "java"),
    ('var names = new ArrayList<String>();\nnames.add("a");\nnames.stream().count();', ALL, None, "java"),
    ("record Point(int x, int y) {}\nSystem.out.println(new Point(1, 2));", ALL, None, "java"),
    ("#!/usr/bin/java --source 21\nclass A {}", ALL, None, "java"),
    # -- ambiguous: markers of several languages, or none; the template's candidates and default decide
    ("x = 1", PYTHON, "python", "python"),  # Python, Ruby, shell-ish: nothing marks it
    ("x = 1", ["ruby", "shell"], "ruby", "ruby"),
    ("x = 1", ALL, None, None),
    ("print('hi')", ["ruby", "shell"], "ruby", "ruby"),  # Ruby's print('hi') too
    ("let x = 5;", NODE, "javascript", "javascript"),  # let: JavaScript and Rust
    ("let x = 5;", ["rust", "shell"], "rust", "rust"),
    ("const a = [1, 2];", NODE, "javascript", "javascript"),  # JS is TS: JavaScript wins the tie
    ("class Foo {}", ["java", "shell"], "java", "java"),  # TS, JS and Java class
    ("class Foo {}", NODE, "javascript", "javascript"),
    ("p 1", ALL, "ruby", "ruby"),
    ("echo $HOME", PYTHON, "python", "shell"),
    ("test = 5", PYTHON, "python", "python"),  # `test` is a shell builtin, but `= 5` is code
    ("missingcommand", NODE, "javascript", "javascript"),
    ("go version", ["go", "shell"], "go", "go"),  # detect leaves PATH to the exec service
    ("npm --version", NODE, None, "shell"),  # a well-known program
    ("vibe-tool --help", NODE, None, None),  # any other word: the exec service asks the sandbox's PATH
    ("fmt.Println(1)", PYTHON, "python", "python"),  # only the template's languages are candidates
    ("#!/usr/bin/env ruby\nputs 1", PYTHON, "python", "python"),  # a shebang it cannot run: markers
    ("#!/usr/bin/env python3.12\nprint(1)", ALL, "ruby", "python"),
    ("if x:\n    pass", ["ruby", "python"], "ruby", "python"),
    ("if x\n  y\nend", ["python", "ruby"], "python", "ruby"),
    ("let v: Vec<i32> = Vec::new();", ALL, None, "rust"),  # a type annotation, as TypeScript's
    ("Map<String, Integer> m = new HashMap<>();", ALL, None, "java"),
]


@pytest.mark.parametrize(("code", "candidates", "default", "expected"), TABLE)
def test_detect(code, candidates, default, expected):
    assert languages.detect(code, candidates, default) == expected, languages.scores(code, candidates)


def test_the_table_has_eight_snippets_of_each_language_at_least():
    counts = {language: 0 for language in languages.RUNNABLE}
    for _code, candidates, _default, expected in TABLE:
        if candidates is ALL and expected:
            counts[expected] += 1
    assert min(counts.values()) >= 8, counts


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        ("#!/usr/bin/python3", "python"),
        ("#!/usr/bin/env -S python3 -u", "python"),
        ("#!/usr/bin/env NODE_OPTIONS=x node", "javascript"),
        ("#! /bin/sh", "shell"),
        ("#!/usr/local/bin/ruby3.3 -w", "ruby"),
        ("#!/usr/bin/env rust-script", "rust"),
        ("#!/usr/bin/perl", None),
        ("#![allow(unused)]", None),
        ("print(1)", None),
    ],
)
def test_shebang(line, expected):
    assert languages.shebang_language(line + "\nrest") == expected
