"""The ASGI app in front of Django (vibebox/asgi.py) that recognises preview requests, admits
them and hands them to the relay (proxy.py); everything else goes on to VibeBox.

- Host form: `Host: <port>-<sandboxId>.<VIBEBOX_PREVIEW_DOMAIN>[:port]` (browsers lowercase the
  host, so the id is looked up case-insensitively; an ambiguous one is a 404).
- Path form: `/preview/<sandboxId>/<port>/…`, forwarded without the prefix (X-Forwarded-Prefix
  names it) and answered with a `Content-Security-Policy: sandbox …` header: the path form shares
  the dashboard's origin, and sandbox code must not act as the signed-in user.

Admission, in this order: the port (1..65535, not reserved) and the sandbox (live) exist, else
404; then a token (`?vibebox_token=`: a GET or HEAD sets a cookie and is redirected to the URL
without it), the preview cookie, the port's public flag, or (path form) the dashboard session of
someone who may read the sandbox, else 401 (403 for a token that is expired or not this port's);
then a paused sandbox is resumed if its autoResume is on (else 409), activity is recorded as the
API records it, and the port must be listening on an address reachable from outside the sandbox,
else 502.
"""

import logging
import re
import threading
import time
from dataclasses import dataclass, field
from importlib import import_module
from types import SimpleNamespace
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from asgiref.sync import sync_to_async
from django.conf import settings
from django.contrib.auth import get_user
from django.db import DatabaseError, connection

from apps.orgs.actors import actor_in
from apps.orgs.models import Membership
from vibebox import exceptions as errors

from .. import idle, states
from ..models import Sandbox, Status
from ..selectors import READ, check_access
from ..services.exec import require_not_paused
from . import links, pages, ports, proxy, tokens

logger = logging.getLogger(__name__)

HOST_LABEL = re.compile(r"^(?P<port>[0-9]{1,5})-(?P<id>sbx_[0-9a-z]{1,40})$")
PATH = re.compile(r"^/preview/(?P<id>[^/]{1,64})/(?P<port>[^/]{1,10})(?P<rest>/.*)?$", re.S)
MAX_COOKIE_HEADER = 16 * 1024


@dataclass
class Target:
    form: str  # "host" or "path"
    sandbox_ref: str
    port_text: str
    path: str  # what is forwarded: the path (raw, percent-encoded) and the query without the token
    prefix: str = ""  # the path form's /preview/<id>/<port>
    tokens: list[str] = field(default_factory=list)
    slash_missing: bool = False


def _header(scope, name: bytes) -> bytes | None:
    for key, value in scope.get("headers") or ():
        if key == name:
            return value
    return None


def _split_query(query: bytes) -> tuple[bytes, list[str]]:
    """The query without vibebox_token parameters (left byte for byte when there is none), and their values."""
    if tokens.QUERY_PARAMETER.encode() not in query:
        return query, []
    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    found = [value for key, value in pairs if key == tokens.QUERY_PARAMETER]
    kept = [(key, value) for key, value in pairs if key != tokens.QUERY_PARAMETER]
    return urlencode(kept, safe="/:@!$'()*,;", encoding="latin-1").encode("latin-1"), found


def match(scope) -> Target | None:
    """The preview target of an HTTP or WebSocket scope, or None when it is VibeBox's own."""
    raw_host = (_header(scope, b"host") or b"").decode("latin-1").strip().lower()
    host = raw_host.rsplit(":", 1)[0] if not raw_host.startswith("[") else raw_host
    domain = settings.VIBEBOX_PREVIEW_DOMAIN
    query, found = _split_query(scope.get("query_string") or b"")
    raw_path = scope.get("raw_path") or quote(scope["path"]).encode()
    raw_path = raw_path.split(b"?", 1)[0]
    if domain and host.endswith("." + domain):
        label = host[: -len(domain) - 1]
        matched = HOST_LABEL.match(label)
        path = raw_path.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
        if matched is None:
            return Target(form="host", sandbox_ref="", port_text="", path=path, tokens=found)
        return Target(form="host", sandbox_ref=matched["id"], port_text=matched["port"], path=path, tokens=found)
    if not scope["path"].startswith(links.PATH_PREFIX):
        return None
    matched = PATH.match(scope["path"])
    if matched is None:
        return Target(form="path", sandbox_ref="", port_text="", path="/", tokens=found)
    prefix = f"/preview/{matched['id']}/{matched['port']}"
    # The rest of the raw path (percent-encoding kept) after the prefix's own segments.
    segments = raw_path.split(b"/", 4)
    rest = b"/" + segments[4] if len(segments) == 5 else b"/"
    path = rest.decode("latin-1") + ("?" + query.decode("latin-1") if query else "")
    return Target(
        form="path",
        sandbox_ref=matched["id"],
        port_text=matched["port"],
        path=path,
        prefix=prefix,
        tokens=found,
        slash_missing=matched["rest"] is None,
    )


# ---- admission (synchronous: the database, sandboxd) ----


@dataclass
class Admitted:
    sandbox_id: str
    port: int
    address: str
    set_cookie: str | None = None  # a token was accepted: the cookie to set (and the redirect to make)
    relay: object = None  # a sandbox on a node: its relay (a sandboxd_client.Relayed), which proxy.py dials through


class Refused(Exception):
    def __init__(self, status: int, code: str, message: str, close_code: int):
        super().__init__(message)
        self.status, self.code, self.message, self.close_code = status, code, message, close_code


def _refuse_not_found(message="No such sandbox or port.") -> Refused:
    return Refused(404, "preview_not_found", message, 4404)


_ids: dict[str, tuple[float, str | None]] = {}  # lowercased id -> (when, the id, None: none or ambiguous)
_ids_lock = threading.Lock()
ID_CACHE_SECONDS = 60.0


def _sandbox(sandbox_id: str) -> Sandbox | None:
    try:  # get(), not first(): no ORDER BY (a preview request is on the hot path)
        return Sandbox.objects.get(pk=sandbox_id)
    except Sandbox.DoesNotExist:
        return None


def _sandbox_by_host_id(lowered: str) -> Sandbox | None:
    now = time.monotonic()
    with _ids_lock:
        cached = _ids.get(lowered)
    if cached is None or now - cached[0] > ID_CACHE_SECONDS:
        found = list(Sandbox.objects.filter(pk__iexact=lowered).values_list("pk", flat=True)[:2])
        cached = (now, found[0] if len(found) == 1 else None)
        with _ids_lock:
            if len(_ids) > 100000:
                _ids.clear()
            _ids[lowered] = cached
    if cached[1] is None:
        return None
    return _sandbox(cached[1])


def _cookies(scope) -> list[tuple[str, str]]:
    raw = b"; ".join(value for key, value in scope.get("headers") or () if key == b"cookie")
    if not raw or len(raw) > MAX_COOKIE_HEADER:
        return []
    found = []
    for part in raw.decode("latin-1").split(";"):
        name, sep, value = part.strip().partition("=")
        if sep:
            found.append((name.strip(), value.strip().strip('"')))
    return found


def _session_user(scope):
    """The signed-in dashboard user of the request's session cookie, or None."""
    key = next((value for name, value in _cookies(scope) if name == settings.SESSION_COOKIE_NAME), None)
    if not key or len(key) > 100:
        return None
    store = import_module(settings.SESSION_ENGINE).SessionStore(key)
    user = get_user(SimpleNamespace(session=store))
    return user if user.is_authenticated and user.is_active else None


def _session_may_read(scope, sandbox: Sandbox) -> bool:
    user = _session_user(scope)
    if user is None or not Membership.objects.filter(org_id=sandbox.org_id, user=user).exists():
        return False
    try:
        check_access(actor_in(user=user, org=sandbox.org), owner_id=sandbox.owner_id, need=READ, sandbox_id=sandbox.pk)
    except errors.PermissionDenied:
        return False
    return True


SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _cross_origin(scope) -> bool:
    """A request that may change things (an unsafe method, a WebSocket) sent by a page of another
    origin. Every preview host is the same site as its siblings (and often as the dashboard), so
    SameSite=Lax cookies go with such requests: a public preview could otherwise drive a private one
    with its visitor's cookie. Browsers send Origin on all of these; a client that sends none is not
    a page being abused."""
    if scope["type"] == "http" and scope.get("method", "GET") in SAFE_METHODS:
        return False
    headers = dict(scope.get("headers") or [])
    origin = headers.get(b"origin")
    if origin is None:
        return False
    own = headers.get(b"host", b"").decode("latin-1").lower()
    try:
        return urlsplit(origin.decode("latin-1")).netloc.lower() != own  # "null" (a sandboxed page) included
    except ValueError:
        return True


def _cookie_for(target: Target, token: str, *, secure: bool) -> str:
    expires = tokens.token_expiry(token) or 0
    max_age = max(0, int(expires - time.time()))
    path = target.prefix + "/" if target.form == "path" else "/"
    cookie = f"{tokens.COOKIE}={token}; Path={path}; Max-Age={max_age}; HttpOnly; SameSite=Lax"
    return cookie + "; Secure" if secure else cookie


def admit(scope, target: Target, *, redirect: bool = False) -> Admitted:
    """`redirect`: a request that a token would turn into a cookie and a redirect (an HTTP GET or
    HEAD): admitted as soon as the token is checked, before the sandbox is resumed or asked."""
    try:
        return _admit(scope, target, redirect=redirect)
    except DatabaseError:
        connection.close()  # a broken connection is opened again by the next request on this thread
        raise


def _admit(scope, target: Target, *, redirect: bool) -> Admitted:
    if not target.sandbox_ref or not (target.port_text.isascii() and target.port_text.isdigit()):
        raise _refuse_not_found()
    try:
        port = ports.parse_port(target.port_text)
    except errors.InvalidPort:
        raise _refuse_not_found("The port is out of 1..65535, or reserved by the server.") from None
    find = _sandbox_by_host_id if target.form == "host" else _sandbox
    sandbox = find(target.sandbox_ref)
    if sandbox is None or sandbox.status in (Status.DESTROYING, Status.DESTROYED):
        raise _refuse_not_found()

    # Who may pass.
    set_cookie = None
    public = ports.is_public(sandbox, port)
    if target.tokens:
        problems = [tokens.token_check(t, sandbox_id=sandbox.pk, port=port) for t in target.tokens]
        good = [t for t, problem in zip(target.tokens, problems, strict=True) if problem is None]
        if not good and not public:  # (a public port needs none: an old link still opens it)
            expired = "expired" in problems
            raise Refused(
                403,
                "preview_token_expired" if expired else "preview_token_invalid",
                "The preview token has expired; ask for a new URL."
                if expired
                else "The preview token is not valid for this sandbox and port.",
                4403,
            )
        if good:
            secure = links.scheme() == "https" or scope.get("scheme") == "https"
            set_cookie = _cookie_for(target, good[0], secure=secure)
    elif not public:
        cookie_ok = any(
            tokens.token_check(value, sandbox_id=sandbox.pk, port=port) is None
            for name, value in _cookies(scope)
            if name == tokens.COOKIE
        )
        if not cookie_ok and not (target.form == "path" and _session_may_read(scope, sandbox)):
            raise Refused(
                401,
                "preview_auth_required",
                "This port is private. Open it with a preview URL that carries a token "
                "(GET /api/v1/sandboxes/{id}/ports/{port}/url), sign in to the dashboard (path form), "
                "or make the port public.",
                4401,
            )
        if _cross_origin(scope):
            raise Refused(
                403,
                "preview_cross_origin",
                "A page of another origin may not send this to a private port with your cookie or session "
                "(a sibling preview host is the same site). Use the port's own pages, a token, or make it public.",
                4403,
            )

    if set_cookie is not None and redirect:
        return Admitted(sandbox_id=sandbox.pk, port=port, address="", set_cookie=set_cookie)

    # The sandbox must run (resumed on the way when it says autoResume).
    if sandbox.status == Status.PAUSED:
        if not sandbox.auto_resume:
            raise Refused(409, "sandbox_paused", "The sandbox is paused; resume it first.", 4409)
        try:
            require_not_paused(sandbox)  # resumes it (autoResume) and records the activity
        except errors.ApplicationError as exc:
            raise Refused(409, exc.code, f"The sandbox could not be resumed: {exc.message}", 4409) from None
        sandbox.refresh_from_db()
    if sandbox.status != Status.RUNNING or sandbox.status not in states.ALIVE:
        raise Refused(409, "sandbox_not_running", f"The sandbox is {sandbox.status}; start it first.", 4409)
    idle.touch(sandbox)

    # Something must listen there, reachable from outside the sandbox.
    try:
        found = ports.listening(sandbox)
        if port not in found.ports:
            found = ports.listening(sandbox, max_age=0.5)  # it may have just started
    except errors.ApplicationError as exc:
        raise Refused(502, "sandbox_unreachable", f"The sandbox does not answer: {exc.message}", 4502) from None
    if port not in found.ports:
        raise Refused(
            502,
            "port_not_listening",
            f"Nothing listens on port {port} in the sandbox. Start a server there (bound to 0.0.0.0), then reload.",
            4502,
        )
    if not ports.reachable(found.ports[port]):
        raise Refused(
            502,
            "port_loopback_only",
            f"The server on port {port} listens on {found.ports[port]} only, which nothing outside the sandbox "
            "can reach. Bind it to 0.0.0.0 (or ::), then reload.",
            4502,
        )
    return Admitted(sandbox_id=sandbox.pk, port=port, address=found.address, set_cookie=set_cookie, relay=found.relay)


# ---- the ASGI app ----


class PreviewRouter:
    """Preview requests (either form) are admitted and relayed; the rest goes to `app`."""

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        if scope["type"] not in ("http", "websocket"):
            return await self.app(scope, receive, send)
        target = match(scope)
        if target is None:
            return await self.app(scope, receive, send)
        if scope["type"] == "http":
            return await self._http(scope, receive, send, target)
        return await self._websocket(scope, receive, send, target)

    async def _http(self, scope, receive, send, target: Target):
        head = scope.get("method") == "HEAD"
        csp = [(b"content-security-policy", pages.SANDBOX_CSP)] if target.form == "path" else []
        if target.slash_missing and target.sandbox_ref:
            location = target.prefix + "/" + (target.path[1:] if target.path.startswith("/?") else "")
            return await _redirect(send, location, extra=csp)
        redirect = scope.get("method") in ("GET", "HEAD")
        try:
            admitted = await sync_to_async(admit, thread_sensitive=False)(scope, target, redirect=redirect)
        except Refused as refused:
            return await pages.send_page(send, refused.status, refused.code, refused.message, head=head)
        except errors.ApplicationError as exc:
            return await pages.send_page(send, 503, exc.code, exc.message, head=head)
        except Exception:
            logger.exception("preview admission failed for %s %s", target.form, target.sandbox_ref)
            return await pages.send_page(send, 500, "internal_error", "The preview failed; it was logged.", head=head)
        if admitted.set_cookie is not None and redirect:
            # The token leaves the address bar (and the history): the cookie carries it from now on.
            location = (target.prefix + target.path) if target.form == "path" else target.path
            return await _redirect(send, location, extra=[(b"set-cookie", admitted.set_cookie.encode()), *csp])
        await proxy.relay_http(scope, receive, send, target=target, admitted=admitted)

    async def _websocket(self, scope, receive, send, target: Target):
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        try:
            admitted = await sync_to_async(admit, thread_sensitive=False)(scope, target)
        except Refused as refused:
            if "websocket.http.response" in (scope.get("extensions") or {}):  # the page, with its status
                body = pages.render(refused.status, refused.code, refused.message)
                start = {"type": "websocket.http.response.start", "status": refused.status}
                await send({**start, "headers": pages.headers(refused.code, body)})
                return await send({"type": "websocket.http.response.body", "body": body})
            return await send({"type": "websocket.close", "code": refused.close_code, "reason": refused.code})
        except errors.ApplicationError as exc:
            return await send({"type": "websocket.close", "code": 4503, "reason": exc.code[:100]})
        except Exception:
            logger.exception("preview admission failed for %s %s", target.form, target.sandbox_ref)
            return await send({"type": "websocket.close", "code": 1011, "reason": "internal_error"})
        await proxy.relay_websocket(scope, receive, send, target=target, admitted=admitted)


async def _redirect(send, location: str, *, extra=()) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 302,
            "headers": [
                (b"location", location.encode("latin-1")),
                (b"cache-control", b"no-store"),
                (b"content-length", b"0"),
                *extra,
            ],
        }
    )
    await send({"type": "http.response.body", "body": b""})
