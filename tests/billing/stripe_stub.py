"""A local stub of the Stripe API endpoints VibeBox uses (there is never a real key in tests).

A threaded HTTP server on loopback answering what apps/billing/stripe_api.py calls: customers
(create, update), Checkout sessions (create), setup intents (retrieve), invoice items (create),
invoices (create, finalize). It records every request (method, path, headers, the form-encoded
body parsed as Stripe encodes it: `metadata[vibebox_org]=…`), honours Idempotency-Key (a repeated
key gets the first answer again, as Stripe does), and can be told to fail the next N requests
(to a path) with a 500 (`fail_next`). Objects it made are kept in `objects` by id.

`sign(payload, secret)` makes a Stripe-Signature header with the stripe library's own helper,
and `event(type, obj)` a webhook event body like Stripe's.
"""

import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qsl, urlsplit

import stripe


def _id(prefix: str) -> str:
    return f"{prefix}_test_{secrets.token_hex(8)}"


@dataclass
class Stub:
    url: str = ""
    requests: list = field(default_factory=list)
    objects: dict = field(default_factory=dict)
    idempotent: dict = field(default_factory=dict)  # Idempotency-Key -> (status, body)
    failures: int = 0
    failing: str = ""  # only requests whose path starts with this fail ("": any)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def fail_next(self, count: int = 1, path: str = "") -> None:
        """The next `count` requests (to paths starting with `path`) get a 500."""
        with self.lock:
            self.failures, self.failing = count, path

    def calls(self, method: str, path: str) -> list:
        """The requests to exactly `path` (a path ending in "/": every path under it)."""
        with self.lock:
            return [
                r
                for r in self.requests
                if r["method"] == method and (r["path"] == path or (path.endswith("/") and r["path"].startswith(path)))
            ]

    def answer(self, method: str, path: str, form: dict) -> tuple[int, dict]:
        parts = [p for p in path.split("/") if p]
        now = int(time.time())
        if method == "POST" and parts == ["v1", "customers"]:
            obj = {"id": _id("cus"), "object": "customer", "created": now, **_plain(form)}
            return self._keep(obj)
        if method == "POST" and len(parts) == 3 and parts[:2] == ["v1", "customers"]:
            obj = self.objects.get(parts[2])
            if obj is None:
                return _missing(parts[2])
            obj.setdefault("invoice_settings", {})
            if "invoice_settings[default_payment_method]" in form:
                obj["invoice_settings"]["default_payment_method"] = form["invoice_settings[default_payment_method]"]
            return 200, obj
        if method == "POST" and parts == ["v1", "checkout", "sessions"]:
            session_id = _id("cs")
            obj = {
                "id": session_id,
                "object": "checkout.session",
                "mode": form.get("mode"),
                "customer": form.get("customer"),
                "url": f"{self.url}/pay/{session_id}",
                "setup_intent": _id("seti"),
                "status": "open",
            }
            self.objects[obj["setup_intent"]] = {
                "id": obj["setup_intent"],
                "object": "setup_intent",
                "payment_method": _id("pm"),
                "customer": form.get("customer"),
                "status": "succeeded",
            }
            return self._keep(obj)
        if method == "GET" and len(parts) == 3 and parts[:2] == ["v1", "setup_intents"]:
            obj = self.objects.get(parts[2])
            return (200, obj) if obj else _missing(parts[2])
        if method == "POST" and parts == ["v1", "invoices"]:
            obj = {
                "id": _id("in"),
                "object": "invoice",
                "status": "draft",
                "customer": form.get("customer"),
                "currency": form.get("currency"),
                "metadata": _sub(form, "metadata"),
                "amount_due": 0,
                "lines": {"object": "list", "data": []},
                "hosted_invoice_url": None,
            }
            return self._keep(obj)
        if method == "POST" and parts == ["v1", "invoiceitems"]:
            invoice = self.objects.get(form.get("invoice", ""))
            if invoice is None:
                return _missing(form.get("invoice", ""))
            if invoice["status"] != "draft":
                return 400, {"error": {"type": "invalid_request_error", "message": "invoice is not a draft"}}
            obj = {
                "id": _id("ii"),
                "object": "invoiceitem",
                "amount": int(form["amount"]),
                "currency": form.get("currency"),
                "description": form.get("description"),
                "invoice": invoice["id"],
            }
            invoice["lines"]["data"].append(obj)
            invoice["amount_due"] += obj["amount"]
            return self._keep(obj)
        if method == "POST" and len(parts) == 4 and parts[:2] == ["v1", "invoices"] and parts[3] == "finalize":
            invoice = self.objects.get(parts[2])
            if invoice is None:
                return _missing(parts[2])
            if invoice["status"] != "draft":
                return 400, {"error": {"type": "invalid_request_error", "message": "already finalized"}}
            invoice["status"] = "open"
            invoice["hosted_invoice_url"] = f"{self.url}/i/{invoice['id']}"
            return 200, invoice
        return 404, {"error": {"type": "invalid_request_error", "message": f"Unrecognized request URL ({path})"}}

    def _keep(self, obj: dict) -> tuple[int, dict]:
        self.objects[obj["id"]] = obj
        return 200, obj


def _missing(object_id: str) -> tuple[int, dict]:
    return 404, {
        "error": {
            "type": "invalid_request_error",
            "code": "resource_missing",
            "message": f"No such object: '{object_id}'",
        }
    }


def _plain(form: dict) -> dict:
    return {k: v for k, v in form.items() if "[" not in k}


def _sub(form: dict, name: str) -> dict:
    prefix = f"{name}["
    return {k[len(prefix) : -1]: v for k, v in form.items() if k.startswith(prefix) and k.endswith("]")}


def _handler(stub: Stub):
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"
        disable_nagle_algorithm = True

        def log_message(self, *args):
            pass

        def _handle(self):
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length).decode() if length else ""
            split = urlsplit(self.path)
            form = dict(parse_qsl(raw or split.query, keep_blank_values=True))
            key = self.headers.get("Idempotency-Key")
            with stub.lock:
                stub.requests.append(
                    {
                        "method": self.command,
                        "path": split.path,
                        "headers": dict(self.headers),
                        "form": form,
                        "raw": raw,
                    }
                )
                if stub.failures > 0 and split.path.startswith(stub.failing):
                    stub.failures -= 1
                    status, body = 500, {"error": {"type": "api_error", "message": "stub failure"}}
                elif key and (self.command, key) in stub.idempotent:
                    status, body = stub.idempotent[(self.command, key)]
                else:
                    status, body = stub.answer(self.command, split.path, form)
                    if key and status < 500:
                        stub.idempotent[(self.command, key)] = (status, json.loads(json.dumps(body)))
                payload = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.send_header("Request-Id", f"req_{secrets.token_hex(8)}")
            if key:
                self.send_header("Idempotency-Key", key)
            self.end_headers()
            self.wfile.write(payload)

        do_GET = do_POST = do_DELETE = _handle

    return Handler


def start() -> tuple[Stub, ThreadingHTTPServer]:
    stub = Stub()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(stub))
    server.daemon_threads = True
    stub.url = f"http://127.0.0.1:{server.server_address[1]}"
    threading.Thread(target=server.serve_forever, name="stripe-stub", daemon=True).start()
    return stub, server


def event(event_type: str, obj: dict, *, event_id: str | None = None) -> str:
    """A webhook body as Stripe sends it (a snapshot event)."""
    return json.dumps(
        {
            "id": event_id or _id("evt"),
            "object": "event",
            "api_version": stripe.api_version if hasattr(stripe, "api_version") else None,
            "created": int(time.time()),
            "type": event_type,
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "data": {"object": obj},
        }
    )


def sign(payload: str, secret: str, timestamp: int | None = None) -> str:
    """The Stripe-Signature header for `payload`, made by the stripe library's helper (t=…,v1=…)."""
    return stripe.WebhookSignature.generate_signature_header(payload, secret, timestamp=timestamp)
