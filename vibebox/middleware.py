import secrets

from asgiref.local import Local

_current = Local()


def current_request_id() -> str:
    return getattr(_current, "request_id", "")


class RequestIdMiddleware:
    """Gives every request an id (`X-Request-Id`), echoed in error envelopes and logs."""

    def __init__(self, get_response):
        self.get_response = get_response

    def __call__(self, request):
        incoming = request.headers.get("X-Request-Id", "")
        if incoming and len(incoming) <= 64 and incoming.replace("-", "").replace("_", "").isalnum():
            request_id = incoming
        else:
            request_id = "req_" + secrets.token_hex(8)
        request.request_id = request_id
        _current.request_id = request_id
        response = self.get_response(request)
        response["X-Request-Id"] = request_id
        return response
