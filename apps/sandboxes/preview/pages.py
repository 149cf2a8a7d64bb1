"""The pages the preview proxy answers with when it does not relay: small, self-contained HTML
(no scripts), never cached, with the reason in words and a stable code (also in a header,
`X-VibeBox-Preview-Error`, for clients that do not read HTML)."""

from html import escape

from django.conf import settings

# The path form shares the dashboard's origin: what it serves runs in an opaque origin.
SANDBOX_CSP = b"sandbox allow-scripts allow-forms allow-popups allow-modals allow-downloads"

TITLES = {
    302: "Redirecting",
    400: "Bad request",
    401: "Sign-in needed",
    403: "Access refused",
    404: "Not found",
    409: "Sandbox not running",
    500: "Preview failed",
    502: "Nothing answers",
    503: "Unavailable",
    504: "No answer in time",
}


def render(status: int, code: str, message: str) -> bytes:
    title = TITLES.get(status, "Preview")
    product = settings.VIBEBOX_BRAND_NAME
    return (
        "<!doctype html><html lang=en><head><meta charset=utf-8>"
        '<meta name="viewport" content="width=device-width, initial-scale=1">'
        f"<title>{status} {escape(title)} · {escape(product)} preview</title>"
        "<style>body{font:16px/1.5 system-ui,sans-serif;max-width:40rem;margin:4rem auto;padding:0 1rem;color:#222}"
        "h1{font-size:1.4rem}code{background:#f3f3f3;padding:0 .25rem}</style></head><body>"
        f"<h1>{status} · {escape(title)}</h1><p>{escape(message)}</p>"
        f"<p><small>{escape(product)} preview proxy · <code>{escape(code)}</code></small></p></body></html>\n"
    ).encode()


def headers(code: str, body: bytes, *, extra=()) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        (b"x-content-type-options", b"nosniff"),
        (b"content-security-policy", SANDBOX_CSP),
        (b"x-vibebox-preview-error", code.encode()),
        *extra,
    ]


async def send_page(send, status: int, code: str, message: str, *, extra=(), head: bool = False) -> None:
    body = render(status, code, message)
    await send({"type": "http.response.start", "status": status, "headers": headers(code, body, extra=extra)})
    await send({"type": "http.response.body", "body": b"" if head else body})
