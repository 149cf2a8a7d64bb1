"""Request-body limit for every HTTP request, enforced on the bytes as they arrive.

Django's ASGI handler (and the MCP app) read the whole body before a view runs, so a limit
checked in a view comes too late: a 60 MB body is already in memory or spooled to disk. This
ASGI middleware sits in front of both. A declared `Content-Length` above the limit is answered
413 at once, without reading a byte; a body without one (chunked) is counted as it streams in,
and the first chunk past the limit ends it: the app sees the client go away (it never gets a
truncated body) and the caller gets `413 request_too_large`.

Uploads (the API's `POST …/files`, the dashboard's upload, and GraphQL's multipart requests:
`POST /graphql` as multipart/form-data) have VIBEBOX_UPLOAD_MAX_BYTES;
template submissions (the API's `POST /api/v1/marketplace/submissions` and the dashboard's submit
form, multipart with a build context) VIBEBOX_TEMPLATE_CONTEXT_MAX plus room for the Dockerfile,
the template.yaml and the form's framing; the unauthenticated auto-pull webhook (POST
/api/v1/git-hooks/{id}) VIBEBOX_GIT_HOOK_MAX_BYTES; everything else VIBEBOX_REQUEST_MAX_BYTES.
"""

import json
import re

from django.conf import settings

from .asgiheaders import header

UPLOAD_PATHS = (
    re.compile(r"^/api/v1/sandboxes/[^/]+/files/?$"),
    re.compile(r"^/sandboxes/[^/]+/files/upload/?$"),
)
SUBMISSION_PATHS = (
    re.compile(r"^/api/v1/marketplace/submissions/?$"),
    re.compile(r"^/marketplace/submit/?$"),
)
GIT_HOOK_PATH = re.compile(r"^/api/v1/git-hooks/[^/]+/?$")  # unauthenticated: a small cap
GRAPHQL_PATH = re.compile(r"^/graphql/?$")  # multipart: the GraphQL multipart request spec's uploads
SUBMISSION_ROOM = 2 * 1024**2  # the Dockerfile (64 KiB), template.yaml (128 KiB), multipart framing


def limit_for(method: str, path: str, content_type: str = "") -> int:
    if method == "POST" and any(pattern.match(path) for pattern in UPLOAD_PATHS):
        return settings.VIBEBOX_UPLOAD_MAX_BYTES
    if method == "POST" and GRAPHQL_PATH.match(path) and content_type.startswith("multipart/form-data"):
        return settings.VIBEBOX_UPLOAD_MAX_BYTES + SUBMISSION_ROOM  # a file, plus the operations and map
    if method == "POST" and any(pattern.match(path) for pattern in SUBMISSION_PATHS):
        return max(settings.VIBEBOX_REQUEST_MAX_BYTES, settings.VIBEBOX_TEMPLATE_CONTEXT_MAX + SUBMISSION_ROOM)
    if method == "POST" and GIT_HOOK_PATH.match(path):
        return min(settings.VIBEBOX_REQUEST_MAX_BYTES, settings.VIBEBOX_GIT_HOOK_MAX_BYTES)
    return settings.VIBEBOX_REQUEST_MAX_BYTES


def _request_id(scope) -> str:
    from vibebox import logs  # the id vibebox.logs.RequestContext chose for this request

    return logs.current_request_id() or logs.request_id_from(header(scope, b"x-request-id"))


async def send_too_large(scope, send, limit: int) -> None:
    request_id = _request_id(scope)
    body = json.dumps(
        {
            "error": {
                "code": "request_too_large",
                "message": f"The request body is too large (at most {limit} bytes).",
                "details": {"limit": limit},
            },
            "requestId": request_id,
        }
    ).encode()
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        (b"x-request-id", request_id.encode()),
        # The rest of the body is never read, so the connection cannot carry another request.
        (b"connection", b"close"),
    ]
    await send({"type": "http.response.start", "status": 413, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimitMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        content_type = header(scope, b"content-type").strip().lower()
        limit = limit_for(scope["method"], scope["path"], content_type)
        length = header(scope, b"content-length").strip()
        if length.isdigit() and int(length) > limit:
            await send_too_large(scope, send, limit)
            return

        received = 0
        over = False
        started = False

        async def counting_receive():
            nonlocal received, over
            if over:
                return {"type": "http.disconnect"}
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    # The app must not see a truncated body as a whole one: to it, the client left.
                    over = True
                    return {"type": "http.disconnect"}
            return message

        async def guarded_send(message):
            nonlocal started
            if over and not started:
                return  # whatever the app answers to a body it never got whole; ours follows
            started = started or message["type"] == "http.response.start"
            await send(message)

        await self.app(scope, counting_receive, guarded_send)
        if over and not started:
            await send_too_large(scope, send, limit)
