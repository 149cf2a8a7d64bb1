"""GET /api/v1/sandboxes/{id}/files/watch: a sandbox's file changes as Server-Sent Events (the same
watch as the WebSocket /ws/sandboxes/{id}/files/watch; docs/api.md "File watch")."""

import asyncio
import concurrent.futures
import json
import logging
import threading
import weakref

from django.conf import settings
from django.http import StreamingHttpResponse
from drf_spectacular.utils import OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers
from rest_framework.renderers import JSONRenderer
from rest_framework.views import APIView

from apps.keys.actors import actor_of
from apps.keys.scopes import SANDBOXES_READ
from apps.sandboxes import limits, selectors
from apps.sandboxes.runtime.base import WATCH_EVENT_TYPES
from apps.sandboxes.watch import end_data, event_data, sandbox_watch, watch_query
from vibebox import exceptions as errors
from vibebox.api.schema import error_responses

from . import access
from .schema import AUTO_RESUME

logger = logging.getLogger(__name__)

EVENT_STREAM = "text/event-stream"

WATCH_EVENT = inline_serializer(
    name="FileWatchEvent",
    fields={
        "type": serializers.ChoiceField(
            choices=sorted(WATCH_EVENT_TYPES | {"end", "error"}),
            help_text="`end` comes last, when the watch ended by itself (then `reason` says why).",
        ),
        "path": serializers.CharField(required=False, help_text="Absolute, in the sandbox."),
        "isDir": serializers.BooleanField(required=False),
        "time": serializers.CharField(required=False, help_text="When sandboxd saw it (RFC 3339, UTC)."),
        "from": serializers.CharField(required=False, help_text="rename: the old path (absolute)."),
        "reason": serializers.CharField(
            required=False,
            help_text="overflow: queue, kernel, watch_limit or path_limit (events were lost: rescan). end: "
            "root_removed, root_moved, unmounted, timeout, sandbox_stopped or error.",
        ),
    },
)


def wants_event_stream(accept: str) -> bool:
    """No Accept, */*, text/* or text/event-stream (with any parameters or q-value above 0)."""
    if not accept.strip():
        return True
    for item in accept.split(","):
        media, *params = (part.strip() for part in item.split(";"))
        refused = any(p.replace(" ", "") in ("q=0", "q=0.0", "q=0.00", "q=0.000") for p in params)
        if media.lower() in ("*/*", "text/*", EVENT_STREAM) and not refused:
            return True
    return False


def sse(data: dict) -> str:
    return f"data: {json.dumps(data, separators=(',', ':'))}\n\n"


class Release:
    """Ends the watch and gives its stream slot back, once: when the stream ends, when Django
    closes the response (a client that left while the server was sending: EventStreamResponse),
    or when the generator is collected without having run (a client that left before)."""

    def __init__(self, stream, slot: limits.Slot):
        self.stream, self.slot, self.done = stream, slot, False
        self.stop = threading.Event()  # the thread reading the stream hands nothing more over

    def __call__(self) -> None:
        if self.done:
            return
        self.done = True
        self.stop.set()
        self.stream.close()  # quick (a socket shut down), and safe on the event loop
        threading.Thread(target=self.slot.release, daemon=True, name="watch-slot").start()  # Redis: off the loop


async def event_stream(stream, root: str, release: Release):
    """The watch's events as SSE, with keep-alive comments, until the watch ends or the client
    goes (Django cancels the response: the stream is closed, freeing the watch in the sandbox).

    A thread reads the blocking stream into a bounded queue; while the client does not read, the
    queue stays full, the thread waits, and sandboxd's own bounded queue takes the backlog (it
    reports what it dropped as an `overflow` event)."""
    loop = asyncio.get_running_loop()
    queue: asyncio.Queue = asyncio.Queue(maxsize=settings.VIBEBOX_WS_QUEUE_MESSAGES)
    stop = release.stop

    def hand_over(item) -> bool:
        if stop.is_set():
            return False
        try:
            future = asyncio.run_coroutine_threadsafe(queue.put(item), loop)
        except RuntimeError:  # the loop is gone
            return False
        while True:
            try:
                future.result(timeout=1)
                return True
            except concurrent.futures.TimeoutError:
                if stop.is_set():
                    future.cancel()
                    return False
            except (concurrent.futures.CancelledError, RuntimeError):
                return False

    def pump():
        try:
            for event in stream:
                if not hand_over(event_data(root, event)):
                    return
            hand_over(end_data(stream.ended))
        except errors.ApplicationError as exc:
            hand_over({"type": "error", "error": {"code": exc.code, "message": exc.message}})
            hand_over(end_data("error"))
        except Exception:
            logger.exception("a file watch's stream failed")
            hand_over({"type": "error", "error": {"code": "internal_error", "message": "Internal server error."}})
            hand_over(end_data("error"))
        finally:
            stream.close()

    thread = threading.Thread(target=pump, daemon=True, name="watch-sse")
    try:
        thread.start()
        # The watch is in place: the headers and this go out at once (a CR would end the comment).
        yield ": watching " + root.replace("\r", "\\r") + "\n\n"
        while True:
            try:
                # Not wait_for: before Python 3.12 it can swallow the cancellation Django sends
                # when the client leaves, if an event arrives at that moment (the watch then
                # went on, sending to nobody).
                async with asyncio.timeout(settings.VIBEBOX_SSE_KEEPALIVE_SECONDS):
                    data = await queue.get()
            except TimeoutError:
                yield ": keep-alive\n\n"
                continue
            yield sse(data)
            if data["type"] == "end":
                return
    finally:
        release()


class EventStreamResponse(StreamingHttpResponse):
    """A streaming response that ends its watch when Django closes its iterator. Django cancels
    a response whose client left; when that lands while it waits to send (not inside the events'
    generator), it closes the iterator it got from here, but not the generators below: this one
    releases the watch then, rather than whenever the garbage collector finds them."""

    def __init__(self, events, release: Release):
        super().__init__(events, content_type=EVENT_STREAM)
        self._release = release

    async def __aiter__(self):
        try:
            async for part in super().__aiter__():
                yield part
        finally:
            self._release()


class FileWatchView(APIView):
    """GET …/files/watch with Accept: text/event-stream (the WebSocket form is a route of its own)."""

    required_scopes = {"GET": [SANDBOXES_READ]}
    # No HEAD: it would open a watch whose events nobody gets, held until the client leaves.
    http_method_names = ["get", "options"]

    def perform_content_negotiation(self, request, force=False):
        # The answer is an event stream or an error in the JSON envelope, whatever Accept says.
        return JSONRenderer(), JSONRenderer.media_type

    @extend_schema(
        operation_id="sandboxes_files_watch",
        description="Watches a directory of a running sandbox and streams its changes as Server-Sent Events: one "
        "`data:` line of JSON per event (FileWatchEvent), `:` comment lines as keep-alives, and last an `end` "
        "event when the watch ends by itself (then the response ends). The watch is in place once the headers "
        "come. Events of one burst are coalesced; after an `overflow` event, rescan. The same stream is a "
        "WebSocket at /ws/sandboxes/{id}/files/watch (same query). Needs sandboxes:read.",
        parameters=[
            OpenApiParameter("path", description="The directory (default /workspace); relative to /workspace."),
            OpenApiParameter("recursive", bool, description="Its subdirectories too (default true)."),
            OpenApiParameter(
                "exclude",
                str,
                many=True,
                description="Glob patterns left out (repeat the parameter; at most 64): without '/' matched against "
                "each name (node_modules, *.pyc), with '/' against the path below the root.",
            ),
            OpenApiParameter("timeout", description="How long the watch lasts (a duration, default 1h)."),
            AUTO_RESUME,
        ],
        responses={(200, EVENT_STREAM): WATCH_EVENT, **error_responses(400, 409, 429)},
    )
    def get(self, request, sandbox_id):
        sandbox = selectors.sandbox_get(actor=actor_of(request), ref=sandbox_id, need=selectors.READ)
        if not wants_event_stream(request.headers.get("Accept", "")):
            raise errors.NotAcceptable(
                "This endpoint answers text/event-stream (or open it as a WebSocket at /ws/sandboxes/{id}/files/watch)."
            )
        query = watch_query(request.query_params.getlist)
        access.read_guard(request, sandbox, auto_resume=query.auto_resume)
        slot = limits.acquire(limits.STREAMS, request.user.pk)
        try:
            stream = sandbox_watch(
                sandbox=sandbox,
                path=query.path,
                recursive=query.recursive,
                excludes=query.excludes,
                timeout=query.timeout,
            )
        except BaseException:
            slot.release()
            raise
        release = Release(stream, slot)
        events = event_stream(stream, query.path, release)
        weakref.finalize(events, release)
        response = EventStreamResponse(events, release)
        response["Cache-Control"] = "no-cache"
        response["X-Accel-Buffering"] = "no"  # nginx: pass events on as they come
        return response
