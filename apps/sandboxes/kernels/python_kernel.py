"""VibeBox's Python kernel for code contexts (docs/api.md, "Code contexts"). Standard library only.

It runs INSIDE a sandbox, as the sandbox user, started by the server as sandboxd's background
process `python3 -I -c <this file> kernel <name>`: it listens on the abstract Unix socket
`@vibebox-context-<name>` (private to the sandbox's network namespace) and runs one request at a
time on its main thread, keeping the namespace between requests. python_client.py (the server's
per-execute command, a sandboxd stream) copies its stdin (one JSON request) to the kernel and the
kernel's answer (JSON lines) to its stdout.

A request: {"code": str, "timeout": seconds, "outputLimit": bytes, "resultLimit": bytes,
"resultsLimit": bytes, "maxResults": int}. The answer, one JSON object a line: {"type": "stdout"|"stderr", "data"},
{"type": "result", "data": {mime: value}, "isMainResult": bool}, {"type": "error", "name", "value",
"traceback"}, then {"type": "done", "executionCount", "truncated"}.

Nothing here is trusted by the server: the code it runs can rewrite any of it.
"""

import ast
import asyncio
import base64
import builtins
import contextlib
import fcntl
import importlib
import io
import json
import linecache
import os
import select
import signal
import socket
import sys
import termios
import threading
import traceback
import types
import warnings

MIME_METHODS = (
    ("text/html", "_repr_html_"),
    ("text/markdown", "_repr_markdown_"),
    ("image/svg+xml", "_repr_svg_"),
    ("image/png", "_repr_png_"),
    ("application/json", "_repr_json_"),
)
FLUSH_SECONDS = 0.05
CHUNK = 16 * 1024
DRAIN_SECONDS = 10  # at most, at a request's end, for output its code wrote to fds 1 and 2
_real_stderr = os.fdopen(os.dup(2), "w", buffering=1)


def address(name: str) -> str:
    return "\0vibebox-context-" + name


class Timeout(BaseException):
    """The request's time ran out (a BaseException, as KeyboardInterrupt, so `except Exception`
    in the user's code does not swallow it)."""


class Execution:
    """One request's connection: output, results and the end go there, capped."""

    def __init__(self, conn, request):
        self.conn = conn
        self.lock = threading.Lock()
        self.broken = False
        self.output_limit = int(request.get("outputLimit") or 1 << 20)
        self.result_limit = int(request.get("resultLimit") or 8 << 20)
        self.results_limit = int(request.get("resultsLimit") or 16 << 20)
        self.results_size = 0
        self.max_results = int(request.get("maxResults") or 100)
        self.sizes = {"stdout": 0, "stderr": 0}
        self.pending = {"stdout": [], "stderr": []}
        self.results = 0
        self.truncated = False

    def send(self, message: dict) -> None:
        line = (json.dumps(message, default=str, ensure_ascii=False) + "\n").encode("utf-8", "replace")
        # An interrupt or a timeout is held while a line goes out: one cut in half would garble
        # the answer (it is raised once the line is sent).
        held = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGALRM})
        try:
            with self.lock:
                if self.broken:
                    return
                try:
                    self.conn.sendall(line)
                except OSError:
                    self.broken = True  # the client went away: the code runs on, its output is dropped
        finally:
            signal.pthread_sigmask(signal.SIG_SETMASK, held)

    def write(self, stream: str, text: str) -> None:
        with self.lock:
            room = self.output_limit - self.sizes[stream]
            if room <= 0:
                self.truncated = True
                return
            if len(text) > room:
                text, self.truncated = text[:room], True
            self.sizes[stream] += len(text)
            self.pending[stream].append(text)
            if sum(map(len, self.pending[stream])) < CHUNK:
                return
        self.flush()

    def flush(self) -> None:
        for stream in ("stdout", "stderr"):
            with self.lock:
                data, self.pending[stream] = "".join(self.pending[stream]), []
            if data:
                self.send({"type": stream, "data": data})

    def result(self, data: dict, main: bool) -> None:
        self.flush()
        size = sum(len(v) if isinstance(v, str) else len(json.dumps(v, default=str)) for v in data.values())
        if (
            self.results >= self.max_results
            or size > self.result_limit
            or self.results_size + size > self.results_limit
        ):
            self.truncated = True
            return
        self.results += 1
        self.results_size += size
        self.send({"type": "result", "data": data, "isMainResult": main})


class Stream(io.TextIOBase):
    """sys.stdout / sys.stderr: writes go to the running request (dropped between requests)."""

    def __init__(self, kernel, name: str, fileno: int):
        self.kernel, self.name_, self.fileno_ = kernel, name, fileno

    def write(self, text):
        if not isinstance(text, str):
            raise TypeError(f"write() argument must be str, not {type(text).__name__}")
        current = self.kernel.current
        if current is not None and text:
            current.write(self.name_, text)
        return len(text)

    def writable(self):
        return True

    def fileno(self):
        return self.fileno_

    def isatty(self):
        return False

    @property
    def encoding(self):
        return "utf-8"

    def flush(self):
        current = self.kernel.current
        if current is not None:
            current.flush()


class Kernel:
    def __init__(self, name: str):
        self.name = name
        self.count = 0
        self.current = None
        self.running = False  # the user's code runs: SIGINT and SIGALRM interrupt it
        self.module = types.ModuleType("__main__")
        self.module.__dict__.update({"__builtins__": builtins, "display": self.display})
        sys.modules["__main__"] = self.module
        builtins.display = self.display
        self.loop = asyncio.new_event_loop()
        self.pipes = {}
        self.forwarded = {}  # bytes read from each pipe and passed on (under `pumped`)
        self.pumped = threading.Condition()

    # ---- output written to file descriptors 1 and 2 (subprocesses, C code) ----

    def capture_fds(self) -> None:
        for fd, stream in ((1, "stdout"), (2, "stderr")):
            read, write = os.pipe()
            os.dup2(write, fd)
            os.close(write)
            os.set_blocking(read, False)
            self.pipes[stream] = read
            self.forwarded[stream] = 0
            threading.Thread(target=self._pump, args=(read, stream), daemon=True).start()

    def _pump(self, fd: int, stream: str) -> None:
        """Forwards what is written to fd 1 or 2 to the running request. A read and its forwarding
        happen under `pumped` (the wait for data does not), and `forwarded` counts the bytes: a byte
        that left the pipe is always forwarded too once `pumped` is free, which `_drain` relies on."""
        while True:
            try:
                select.select([fd], [], [])
            except InterruptedError:
                continue
            except (OSError, ValueError):
                return
            with self.pumped:
                try:
                    data = os.read(fd, CHUNK)
                except BlockingIOError:
                    continue
                except OSError:
                    return
                if not data:
                    return
                current = self.current
                if current is not None:
                    current.write(stream, data.decode("utf-8", "replace"))
                self.forwarded[stream] += len(data)
                self.pumped.notify_all()

    def _drain(self) -> None:
        """Waits until what was written to fds 1 and 2 before now is forwarded: the bytes forwarded
        so far plus those still in the pipe, counted at once under `pumped`. A byte the pump has read
        but not yet passed on cannot be missed (it reads and forwards under `pumped`), however late a
        busy machine runs its thread. Bounded (a pump stuck on a client that stopped reading)."""
        with self.pumped:
            targets = {}
            for stream, fd in self.pipes.items():
                buf = bytearray(4)
                try:
                    fcntl.ioctl(fd, termios.FIONREAD, buf)
                except OSError:
                    continue
                targets[stream] = self.forwarded[stream] + int.from_bytes(buf, sys.byteorder)
            self.pumped.wait_for(
                lambda: all(self.forwarded[stream] >= target for stream, target in targets.items()),
                timeout=DRAIN_SECONDS,
            )

    # ---- rich output ----

    def display(self, *objects, **_):
        current = self.current
        for obj in objects:
            data = self.format(obj)
            if current is not None and data:
                current.result(data, False)

    def format(self, obj) -> dict:
        data = {}
        try:
            data["text/plain"] = repr(obj)
        except Exception as exc:  # an interrupt or a timeout (BaseExceptions) goes through
            data["text/plain"] = f"<unrepresentable {type(obj).__name__}: {exc!r}>"
        if self._is_figure(obj):
            png = self._figure_png(obj)
            if png:
                data["image/png"] = png
            return data
        for mime, method in MIME_METHODS:
            if getattr(type(obj), method, None) is None:
                continue
            try:
                value = getattr(obj, method)()
            except Exception:  # noqa: S112
                continue
            if isinstance(value, tuple) and value:
                value = value[0]
            if value is None:
                continue
            if mime == "image/png":
                value = base64.b64encode(value).decode() if isinstance(value, bytes) else str(value)
            elif mime == "application/json":
                try:
                    value = json.loads(json.dumps(value))
                except (TypeError, ValueError):
                    continue
            elif not isinstance(value, str):
                value = str(value)
            data[mime] = value
        return data

    @staticmethod
    def _is_figure(obj) -> bool:
        kind = type(obj)
        return kind.__name__ == "Figure" and kind.__module__.startswith("matplotlib")

    @staticmethod
    def _figure_png(figure) -> str | None:
        try:
            buffer = io.BytesIO()
            figure.savefig(buffer, format="png", bbox_inches="tight")
        except Exception:
            return None
        finally:
            plt = sys.modules.get("matplotlib.pyplot")
            if plt is not None:
                with contextlib.suppress(Exception):
                    plt.close(figure)
        return base64.b64encode(buffer.getvalue()).decode()

    def show_figures(self, *_, **__) -> None:
        """plt.show(), and the end of each request: every open figure, as a PNG."""
        plt = sys.modules.get("matplotlib.pyplot")
        current = self.current
        if plt is None or current is None:
            return
        try:
            figures = [plt.figure(number) for number in plt.get_fignums()]
        except Exception:
            return
        for figure in figures:
            png = self._figure_png(figure)
            if png:
                current.result({"text/plain": repr(figure), "image/png": png}, False)

    def pyplot_show(self):
        """pyplot.show's stand-in: a plain function (matplotlib sets attributes on it)."""

        def show_figures(*args, **kwargs):
            self.show_figures()

        return show_figures

    def find_spec(self, name, path=None, target=None):
        """An import hook (on sys.meta_path) for matplotlib.pyplot: once loaded, its show() is
        show_figures, from the very request that imports it."""
        if name != "matplotlib.pyplot":
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(name, path, target)
            if spec is not None and spec.loader is not None and hasattr(spec.loader, "exec_module"):
                load = spec.loader.exec_module

                def exec_module(module, load=load):
                    load(module)
                    module.show = self.pyplot_show()

                spec.loader.exec_module = exec_module
                return spec
        return None

    def _patch_pyplot(self) -> None:
        plt = sys.modules.get("matplotlib.pyplot")
        if plt is not None and getattr(plt.show, "__name__", "") != "show_figures":
            plt.show = self.pyplot_show()

    # ---- running a request ----

    def on_signal(self, signum, frame):
        if not self.running:
            return  # between requests, or in the kernel's own code: nothing to interrupt
        if signum == signal.SIGALRM:
            raise Timeout()
        raise KeyboardInterrupt()

    def serve(self) -> None:
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(address(self.name))
        server.listen(64)
        signal.signal(signal.SIGINT, self.on_signal)
        signal.signal(signal.SIGALRM, self.on_signal)
        while True:
            try:
                conn, _ = server.accept()
            except InterruptedError:
                continue
            try:
                self.handle(conn)
            except BaseException as exc:
                print(f"vibebox kernel: {exc!r}", file=_real_stderr)
            finally:
                self.current = None
                conn.close()

    def handle(self, conn) -> None:
        conn.settimeout(30)
        raw = b""
        while not raw.endswith(b"\n") and len(raw) < (64 << 20):
            chunk = conn.recv(1 << 20)
            if not chunk:
                break
            raw += chunk
        conn.settimeout(None)
        request = json.loads(raw)
        execution = Execution(conn, request)
        self.count += 1
        self.current = execution
        importlib.invalidate_caches()  # packages installed since the last request (pip install) import
        self._patch_pyplot()
        code = str(request.get("code", ""))
        timeout = float(request.get("timeout") or 0)
        try:
            self.run(code, timeout)
        finally:
            signal.setitimer(signal.ITIMER_REAL, 0)
            self.running = False
        self._drain()
        self.show_figures()
        self._patch_pyplot()
        execution.flush()
        execution.send({"type": "done", "executionCount": self.count, "truncated": execution.truncated})
        self.current = None

    def run(self, code: str, timeout: float) -> None:
        execution = self.current
        filename = f"<cell-{self.count}>"
        linecache.cache[filename] = (len(code), None, code.splitlines(True), filename)
        try:
            tree = ast.parse(code, filename, "exec")
            last = None
            if tree.body and isinstance(tree.body[-1], ast.Expr):
                last = ast.Expression(tree.body.pop().value)
            flags = ast.PyCF_ALLOW_TOP_LEVEL_AWAIT
            body = compile(tree, filename, "exec", flags=flags, dont_inherit=True)
            tail = compile(last, filename, "eval", flags=flags, dont_inherit=True) if last else None
        except (SyntaxError, ValueError, OverflowError, MemoryError) as exc:
            self.error(exc, syntax=True)
            return
        namespace = self.module.__dict__
        try:
            if timeout > 0:
                signal.setitimer(signal.ITIMER_REAL, timeout)
            self.running = True
            value = self._evaluate(body, namespace)
            if tail is not None:
                value = self._evaluate(tail, namespace)
                if value is not None:
                    namespace["_"] = value
                    data = self.format(value)  # still interruptible: a __repr__ may hang
                    self.running = False
                    execution.result(data, True)
        except Timeout:
            self.running = False
            execution.flush()
            execution.send(
                {
                    "type": "error",
                    "name": "TimeoutError",
                    "value": f"Execution timed out after {timeout:g} s",
                    "traceback": f"TimeoutError: Execution timed out after {timeout:g} s\n",
                }
            )
        except BaseException as exc:
            self.running = False
            self.error(exc)
        finally:
            self.running = False

    def _evaluate(self, code, namespace):
        result = eval(code, namespace)  # noqa: S307 (running the user's code is the point)
        if code.co_flags & 0x80:  # CO_COROUTINE: top-level await
            result = self.loop.run_until_complete(result)
        return result

    def error(self, exc: BaseException, syntax: bool = False) -> None:
        execution = self.current
        execution.flush()
        if syntax:
            lines = traceback.format_exception_only(type(exc), exc)
        else:
            tb = exc.__traceback__
            while tb is not None and not tb.tb_frame.f_code.co_filename.startswith("<cell-"):
                tb = tb.tb_next  # the kernel's own frames are not the user's business
            summary = traceback.TracebackException(type(exc), exc, tb)
            # The kernel's own frames (its file is "<string>": `-c`), and what they called, are
            # not the user's business: the stack ends where the user's code called into them.
            frames = []
            for frame in summary.stack:
                if frame.filename == "<string>":
                    break
                frames.append(frame)
            summary.stack = traceback.StackSummary.from_list(frames)
            lines = list(summary.format())
        execution.send(
            {"type": "error", "name": type(exc).__name__, "value": str(exc)[:65536], "traceback": "".join(lines)}
        )


def kernel(name: str) -> None:
    os.environ.setdefault("MPLBACKEND", "Agg")
    warnings.filterwarnings("ignore", message=".*non-interactive.*")
    kernel = Kernel(name)
    kernel.capture_fds()
    sys.meta_path.insert(0, kernel)
    sys.stdout = Stream(kernel, "stdout", 1)
    sys.stderr = Stream(kernel, "stderr", 2)
    sys.stdin = io.StringIO("")
    # What `python` gives a script: the working directory on sys.path (`-I` left it out so that
    # the user's files cannot shadow the modules the kernel itself imports, above).
    sys.path.insert(0, "")
    for entry in reversed([p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]):
        sys.path.insert(1, entry)
    if sys.prefix == sys.base_prefix:  # not a virtualenv: `pip install --user` packages too
        import site

        user_site = site.getusersitepackages()
        if os.path.isdir(user_site):
            site.addsitedir(user_site)
    sys.argv = [""]
    kernel.serve()


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "kernel":
        kernel(sys.argv[2])
    else:
        print("usage: kernel NAME", file=sys.stderr)
        sys.exit(2)
