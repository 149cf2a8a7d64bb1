"""Answers 413 for oversized uploads before the body is read (Django would spool it first)."""

import json
import re

from django.conf import settings

UPLOAD_PATH = re.compile(r"^/api/v1/sandboxes/[^/]+/files/?$")


class BodyLimitMiddleware:
    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http" and scope["method"] == "POST" and UPLOAD_PATH.match(scope["path"]):
            length = dict(scope.get("headers") or []).get(b"content-length")
            limit = settings.VIBEBOX_UPLOAD_MAX_BYTES
            if length and length.isdigit() and int(length) > limit:
                body = json.dumps(
                    {
                        "error": {
                            "code": "payload_too_large",
                            "message": "The request body is too large.",
                            "details": {"limit": limit},
                        },
                        "requestId": "",
                    }
                ).encode()
                headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
                await send({"type": "http.response.start", "status": 413, "headers": headers})
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)
