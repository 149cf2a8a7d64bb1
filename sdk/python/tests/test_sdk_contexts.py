"""Code contexts through the Python SDK (sync and async) against the live server: state kept
between runs, rich results (the IPython display protocol, without third-party packages), errors
with tracebacks, streaming callbacks over the exec WebSocket, interrupt, restart, delete."""

from __future__ import annotations

import asyncio
import base64
import threading
import time

import pytest
from vibebox_sdk import AsyncVibeBox, NotFoundError, Result, Sandbox, SandboxNotFoundError, VibeBox

# A 1x1 PNG, made in the sandbox with the standard library only.
RICH = r"""
import struct, zlib
def _chunk(kind, data):
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
PNG = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", struct.pack(">IIBBBBB", 1, 1, 8, 2, 0, 0, 0)) \
    + _chunk(b"IDAT", zlib.compress(b"\x00\xff\x00\x00")) + _chunk(b"IEND", b"")
class Table:
    def _repr_html_(self):
        return "<table><tr><th>a</th></tr><tr><td>1</td></tr></table>"
    def __repr__(self):
        return "Table(a=[1])"
class Picture:
    def _repr_png_(self):
        return PNG
class Drawing:
    def _repr_svg_(self):
        return '<svg xmlns="http://www.w3.org/2000/svg" width="4" height="4"><rect width="4" height="4"/></svg>'
"""


def test_state_results_errors_and_lifecycle(sandbox: Sandbox) -> None:
    ctx = sandbox.contexts.create(language="python")
    assert ctx.id.startswith("ctx_") and ctx.language == "python" and ctx.status == "idle"
    assert [c.id for c in sandbox.contexts.list()] == [ctx.id]
    assert sandbox.contexts.get(ctx.id).id == ctx.id

    assert ctx.run("x = 41").results == []
    answer = ctx.run("x + 1")
    assert (answer.text, answer.error, answer.results[0].is_main_result) == ("42", None, True)
    assert answer.execution_count and answer.duration_ms is not None
    assert sandbox.execution(answer.execution_id).execution_id == answer.execution_id  # in the history

    printed = ctx.run("import sys\nprint('out')\nprint('err', file=sys.stderr)\n'last'")
    assert (printed.stdout, printed.stderr, printed.text) == ("out\n", "err\n", "'last'")

    ctx.run(RICH)
    table = ctx.run("Table()")
    assert table.results[0].html.startswith("<table>") and table.results[0].text == "Table(a=[1])"
    picture = ctx.run("Picture()").results[0]
    assert picture.png_bytes().startswith(b"\x89PNG") and "image/png" in picture.formats
    assert ctx.run("Drawing()").results[0].svg.startswith("<svg")
    shown = ctx.run("display(Table())\ndisplay(Picture())\nNone")
    assert [r.is_main_result for r in shown.results] == [False, False]
    assert shown.results[0].html and shown.results[1].png

    failed = ctx.run("1 / 0")
    assert failed.error is not None and failed.error.name == "ZeroDivisionError"
    assert "division by zero" in failed.error.value and "ZeroDivisionError" in failed.error.traceback
    assert not failed.ok and failed.results == []

    ctx.restart()
    assert ctx.run("'x' in globals()").text == "False"
    ctx.delete()
    with pytest.raises(NotFoundError):
        sandbox.contexts.get(ctx.id)


def test_streaming_callbacks(sandbox: Sandbox) -> None:
    ctx = sandbox.contexts.create(language="python")
    chunks: list[str] = []
    results: list[Result] = []
    execution = ctx.run(
        "import time\nfor i in range(3):\n    print(i, flush=True)\n    time.sleep(0.1)\n'done'",
        on_stdout=chunks.append,
        on_result=results.append,
    )
    assert "".join(chunks) == "0\n1\n2\n" == execution.stdout
    assert execution.execution_id and execution.execution_count
    assert [r.text for r in results] == ["'done'"] == [r.text for r in execution.results]
    errors: list[str] = []
    failed = ctx.run("import sys; print('e', file=sys.stderr); raise KeyError('k')", on_stderr=errors.append)
    assert "".join(errors).startswith("e\n") and failed.error.name == "KeyError"


def test_interrupt_stops_running_code_and_keeps_state(sandbox: Sandbox) -> None:
    ctx = sandbox.contexts.create(language="python")
    ctx.run("kept = 'yes'")
    outcome: dict = {}
    code = "import time\nopen('/tmp/sleeping', 'w').close()\ntime.sleep(120)"
    running = threading.Thread(target=lambda: outcome.setdefault("run", ctx.run(code)))
    running.start()
    # "busy" starts before the kernel runs the code, and a kernel between cells ignores the
    # interrupt: wait for the code itself to say it runs
    deadline = time.monotonic() + 60
    while sandbox.exec("test -f /tmp/sleeping").exit_code != 0:
        assert time.monotonic() < deadline, "the code never started"
        time.sleep(0.1)
    assert ctx.refresh().status == "busy"
    ctx.interrupt()
    running.join(60)
    assert not running.is_alive()
    assert outcome["run"].error.name == "KeyboardInterrupt"
    assert ctx.run("kept").text == "'yes'"


def test_javascript_context(node_sandbox: Sandbox) -> None:
    ctx = node_sandbox.contexts.create(language="javascript")
    ctx.run("let n = 40")
    assert ctx.run("n + 2").text == "42"
    assert ctx.run("console.log('hi')").stdout == "hi\n"
    assert ctx.run("throw new TypeError('bad')").error.name == "TypeError"


def test_outsider_cannot_reach_contexts(sandbox: Sandbox, server, outsider_key: str) -> None:
    ctx = sandbox.contexts.create()
    with VibeBox(api_key=outsider_key, base_url=server.url) as other:
        stranger = Sandbox(other, sandbox.info)
        for attempt in (stranger.contexts.list, stranger.contexts.create, lambda: stranger.contexts.get(ctx.id)):
            with pytest.raises(SandboxNotFoundError):
                attempt()


def test_async_contexts(server, vb: VibeBox) -> None:
    async def scenario() -> None:
        async with AsyncVibeBox(api_key=server.key, base_url=server.url) as avb:
            box = await avb.sandbox("python-3")
            try:
                ctx = await box.contexts.create(language="python")
                await ctx.run("y = 6")
                assert (await ctx.run("y * 7")).text == "42"
                seen: list[str] = []

                async def collect(data: str) -> None:  # a coroutine callback is awaited
                    seen.append(data)

                streamed = await ctx.run("print('a'); print('b')", on_stdout=collect)
                assert "".join(seen) == "a\nb\n" == streamed.stdout
                png = (await ctx.run(RICH + "\nPicture()")).results[0].png
                assert base64.b64decode(png).startswith(b"\x89PNG")
                assert [c.id for c in await box.contexts.list()] == [ctx.id]
                await ctx.restart()
                await ctx.delete()
                assert await box.contexts.list() == []
            finally:
                await box.destroy()

    asyncio.run(scenario())
