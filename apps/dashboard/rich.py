"""Rich results of code contexts (docs/api.md, "Code contexts"), made safe to show in a page.

Everything in a result came from code in the sandbox, so it is hostile:
- images (PNG, JPEG, GIF, WebP) must be valid base64 and are shown as `data:` URIs in `<img>`;
- SVG is shown as a `data:` image too, never inline (an `<img>` runs no script and loads nothing);
- HTML goes into `<iframe sandbox="" srcdoc="…">` (no scripts, no forms, an opaque origin: it
  cannot reach the dashboard's cookies or DOM), never into the page;
- Markdown goes through the dashboard's safe renderer (raw HTML off: apps/dashboard/markdown.py);
- JSON and text are escaped text.
One representation per result, the richest first, as a notebook shows them.
"""

import base64
import binascii
import json
import re

from .markdown import render_markdown

IMAGES = ("image/png", "image/jpeg", "image/gif", "image/webp")
MAX_IMAGE = 10 * 1024 * 1024  # base64 characters
ANSI = re.compile(r"\x1b\[[0-9;?]*[ -/]*[@-~]")


def strip_ansi(text) -> str:
    """A traceback's or a stream's text without terminal colour codes (IPython colours tracebacks)."""
    return ANSI.sub("", text) if isinstance(text, str) else ""


def _base64(value) -> str | None:
    if not isinstance(value, str) or len(value) > MAX_IMAGE:
        return None
    compact = "".join(value.split())
    try:
        base64.b64decode(compact, validate=True)
    except (binascii.Error, ValueError):
        return None
    return compact


def rich_item(data: dict) -> dict:
    """`{"kind": "image"|"html"|"markdown"|"json"|"text", …}` for one result's `data`."""
    for mime in IMAGES:
        if mime in data and (encoded := _base64(data[mime])):
            return {"kind": "image", "src": f"data:{mime};base64,{encoded}", "alt": str(data.get("text/plain", ""))}
    if isinstance(data.get("image/svg+xml"), str):
        encoded = base64.b64encode(data["image/svg+xml"].encode()).decode()
        return {"kind": "image", "src": f"data:image/svg+xml;base64,{encoded}", "alt": str(data.get("text/plain", ""))}
    if isinstance(data.get("text/html"), str):
        return {"kind": "html", "html": data["text/html"]}
    if isinstance(data.get("text/markdown"), str):
        return {"kind": "markdown", "html": render_markdown(data["text/markdown"])}
    if "application/json" in data:
        return {"kind": "json", "text": json.dumps(data["application/json"], indent=2, ensure_ascii=False, default=str)}
    return {"kind": "text", "text": str(data.get("text/plain", ""))}


def rich_results(results) -> list[dict]:
    """The items to render for an execution's `results` (each also says `main`)."""
    items = []
    for result in results or []:
        data = result.get("data") if isinstance(result, dict) else None
        if isinstance(data, dict) and data:
            items.append({**rich_item(data), "main": bool(result.get("isMainResult"))})
    return items
