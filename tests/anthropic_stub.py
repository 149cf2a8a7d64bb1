"""A local stub of the Anthropic Messages API for tests (there is never a real key).

It answers `POST /v1/messages` (streaming SSE or JSON), `POST /v1/messages/count_tokens` and
`GET /v1/models`, records every request it receives whatever its method (method, path, the raw
request `target` as it came on the request line, headers, body), and follows
scripts: a script is matched by a trigger word in the conversation's first user message and
answers the conversation's Nth assistant turn with its Nth step (a list of content blocks),
so a Write tool call then a final text is two steps; turns past the script, and unmatched
conversations, get a short text.
"""

import json
import threading
import uuid
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

USAGE_IN = 120
USAGE_OUT = 30


def text(value: str) -> dict:
    return {"type": "text", "text": value}


def tool_use(name: str, **arguments) -> dict:
    return {"type": "tool_use", "id": f"toolu_{uuid.uuid4().hex[:20]}", "name": name, "input": arguments}


@dataclass
class Stub:
    url: str = ""
    requests: list = field(default_factory=list)
    scripts: dict = field(default_factory=dict)  # trigger -> [step: [content blocks]]
    lock: threading.Lock = field(default_factory=threading.Lock)

    def script(self, trigger: str, *steps: list) -> None:
        with self.lock:
            self.scripts[trigger] = list(steps)

    def messages_requests(self) -> list:
        with self.lock:
            return [
                r for r in self.requests if r["path"].startswith("/v1/messages") and "count_tokens" not in r["path"]
            ]

    def conversation_requests(self, trigger: str) -> list:
        return [r for r in self.messages_requests() if trigger in _first_user_text(r["body"])]

    def answer(self, body: dict) -> list:
        first = _first_user_text(body)
        turn = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
        with self.lock:
            for trigger, steps in self.scripts.items():
                if trigger in first:
                    # A resumed conversation carries the earlier turns: past the script, plain text.
                    return steps[turn] if turn < len(steps) else [text("OK")]
        return [text("OK")]


def _content_text(content) -> str:
    if isinstance(content, str):
        return content
    return "\n".join(block.get("text", "") for block in content if isinstance(block, dict))


def _first_user_text(body: dict) -> str:
    """All user text of the conversation (Claude Code prepends context blocks to prompts)."""
    parts = []
    for message in body.get("messages", []):
        if message.get("role") == "user":
            parts.append(_content_text(message.get("content", "")))
    return "\n".join(parts)


def _sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data)}\n\n".encode()


def _stream(model: str, blocks: list) -> bytes:
    stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
    usage = {
        "input_tokens": USAGE_IN,
        "output_tokens": 1,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    message = {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
        "usage": usage,
    }
    out = [_sse("message_start", {"type": "message_start", "message": message})]
    for index, block in enumerate(blocks):
        if block["type"] == "text":
            start = {"type": "text", "text": ""}
            delta = {"type": "text_delta", "text": block["text"]}
        else:
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
        out.append(_sse("content_block_start", {"type": "content_block_start", "index": index, "content_block": start}))
        out.append(_sse("content_block_delta", {"type": "content_block_delta", "index": index, "delta": delta}))
        out.append(_sse("content_block_stop", {"type": "content_block_stop", "index": index}))
    out.append(
        _sse(
            "message_delta",
            {
                "type": "message_delta",
                "delta": {"stop_reason": stop, "stop_sequence": None},
                "usage": {"output_tokens": USAGE_OUT},
            },
        )
    )
    out.append(_sse("message_stop", {"type": "message_stop"}))
    return b"".join(out)


def _message(model: str, blocks: list) -> dict:
    stop = "tool_use" if any(b["type"] == "tool_use" for b in blocks) else "end_turn"
    return {
        "id": f"msg_{uuid.uuid4().hex[:24]}",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks,
        "stop_reason": stop,
        "stop_sequence": None,
        "usage": {"input_tokens": USAGE_IN, "output_tokens": USAGE_OUT},
    }


def _handler(stub: Stub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True  # headers and body are two writes: no 40 ms delayed-ACK stall

        def log_message(self, *args):
            pass

        def _record(self, body) -> None:
            # http.server rewrites a leading "//" in self.path: the request line keeps what came.
            parts = self.requestline.split(" ")
            target = parts[1] if len(parts) == 3 else self.path
            with stub.lock:
                stub.requests.append(
                    {
                        "method": self.command,
                        "path": self.path,
                        "target": target,
                        "headers": dict(self.headers),
                        "body": body,
                    }
                )

        def _not_found(self) -> None:
            self._reply(404, b'{"type":"error","error":{"type":"not_found_error","message":"no"}}', "application/json")

        def _reply(self, status: int, payload: bytes, content_type: str) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("request-id", f"req_{uuid.uuid4().hex[:20]}")
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self):
            self._record(None)
            if self.path.startswith("/v1/models"):
                models = [
                    {"type": "model", "id": m, "display_name": m} for m in ("claude-sonnet-4-5", "claude-haiku-4-5")
                ]
                return self._reply(200, json.dumps({"data": models, "has_more": False}).encode(), "application/json")
            self._not_found()

        def _other(self):
            """Any other method: recorded (a test can then tell it arrived), answered 404."""
            length = int(self.headers.get("Content-Length") or 0)
            self._record(self.rfile.read(length) if length else None)
            self._not_found()

        do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _other

        def do_HEAD(self):
            self._record(None)
            self.send_response(404)
            self.send_header("Content-Length", "0")
            self.end_headers()

        def do_POST(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) or b"{}"
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw
            self._record(body)
            if not isinstance(body, dict) or not self.path.startswith("/v1/messages"):
                return self._not_found()
            if self.path.startswith("/v1/messages/count_tokens"):
                return self._reply(200, json.dumps({"input_tokens": USAGE_IN}).encode(), "application/json")
            model = body.get("model", "claude-sonnet-4-5")
            blocks = stub.answer(body)
            if body.get("stream"):
                return self._reply(200, _stream(model, blocks), "text/event-stream")
            return self._reply(200, json.dumps(_message(model, blocks)).encode(), "application/json")

    return Handler


def start(host: str = "127.0.0.1") -> tuple[Stub, ThreadingHTTPServer]:
    stub = Stub()
    server = ThreadingHTTPServer((host, 0), _handler(stub))
    server.daemon_threads = True
    stub.url = f"http://{host}:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, daemon=True, name="anthropic-stub").start()
    return stub, server
