"""A local stand-in for Anthropic's Messages API (POST /v1/messages), enough for the tests to run
the agent end to end without a key or a network: the first call of a conversation asks for the
word_count tool, the call after the tool's result answers with text. Streaming (SSE) and plain
JSON answers are both served. Every request is recorded."""

import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class StubAnthropic:
    def __init__(self):
        self.requests: list[dict] = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["content-length"])))
                # The key as Anthropic's SDK sends it: `x-api-key`, or `Authorization: Bearer` (VibeBox's
                # gateway takes either).
                bearer = (self.headers.get("authorization") or "").removeprefix("Bearer ").strip()
                api_key = self.headers.get("x-api-key") or bearer or None
                stub.requests.append(
                    {"path": self.path, "api_key": api_key, "headers": dict(self.headers), "body": body}
                )
                if self.path.split("?")[0] != "/v1/messages":
                    self.send_response(404)
                    self.end_headers()
                    return
                message = stub.answer(body)
                if body.get("stream"):
                    self._send_sse(message)
                else:
                    data = json.dumps(message).encode()
                    self.send_response(200)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    self.end_headers()
                    self.wfile.write(data)

            def _send_sse(self, message):
                self.send_response(200)
                self.send_header("content-type", "text/event-stream")
                self.end_headers()

                def event(kind, data):
                    self.wfile.write(f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode())

                start = {**message, "content": [], "stop_reason": None}
                event("message_start", {"message": start})
                for i, block in enumerate(message["content"]):
                    if block["type"] == "text":
                        event("content_block_start", {"index": i, "content_block": {"type": "text", "text": ""}})
                        event(
                            "content_block_delta", {"index": i, "delta": {"type": "text_delta", "text": block["text"]}}
                        )
                    else:
                        event("content_block_start", {"index": i, "content_block": {**block, "input": {}}})
                        delta = {"type": "input_json_delta", "partial_json": json.dumps(block["input"])}
                        event("content_block_delta", {"index": i, "delta": delta})
                    event("content_block_stop", {"index": i})
                event(
                    "message_delta",
                    {
                        "delta": {"stop_reason": message["stop_reason"], "stop_sequence": None},
                        "usage": {"output_tokens": 5},
                    },
                )
                event("message_stop", {})

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def answer(self, body: dict) -> dict:
        last = body["messages"][-1]
        blocks = last["content"] if isinstance(last["content"], list) else []
        results = [b for b in blocks if b.get("type") == "tool_result"]
        if results:
            content = results[0]["content"]
            count = content if isinstance(content, str) else "".join(c.get("text", "") for c in content)
            reply = {"type": "text", "text": f"The text has {count} words."}
            stop = "end_turn"
        else:
            reply = {
                "type": "tool_use",
                "id": "toolu_stub_1",
                "name": "word_count",
                "input": {"text": "the quick brown fox"},
            }
            stop = "tool_use"
        return {
            "id": f"msg_stub_{len(self.requests)}",
            "type": "message",
            "role": "assistant",
            "model": body["model"],
            "content": [reply],
            "stop_reason": stop,
            "stop_sequence": None,
            "usage": {"input_tokens": 10, "output_tokens": 5},
        }

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
