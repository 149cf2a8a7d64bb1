"""WS /ws/sandboxes/{id}/files/watch: a sandbox's file changes as they happen (docs/api.md "File watch")."""

import asyncio
import logging
import threading
import types
from urllib.parse import parse_qs

from asgiref.sync import sync_to_async

from apps.keys.scopes import SANDBOXES_READ
from vibebox import exceptions as errors

from .. import selectors
from ..api import access
from ..watch import end_data, event_data, sandbox_watch, watch_query
from .base import BaseConsumer, error_message
from .streams import Outbox

logger = logging.getLogger(__name__)


class WatchConsumer(BaseConsumer):
    """WS /ws/sandboxes/{id}/files/watch?path=/workspace&recursive=true&exclude=…&timeout=1h&autoResume=1

    The watch is in place once the connection is accepted (a refusal closes it before: 4400 for a
    bad path or query, 4404 for a missing directory, 4409 for a sandbox that is not running, 4429
    when the sandbox has 8 watches open). The server then sends one message per event
    ({type, path, isDir, time, from?, reason?}, paths absolute) and, when the watch ends by itself,
    {type: "end", reason} and a normal close. Messages from the client are ignored. A client that
    does not read for VIBEBOX_WS_SLOW_CLIENT_SECONDS is dropped (4008); meanwhile sandboxd keeps
    at most its bounded queue and reports what it dropped as an `overflow` event.
    """

    required_scopes = [SANDBOXES_READ]
    sandbox_need = selectors.READ
    stream = None
    outbox: Outbox | None = None
    root = ""

    async def setup(self):
        sandbox = await self.get_sandbox()
        values = parse_qs(self.scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True)
        query = watch_query(lambda name: values.get(name, []))
        self.root = query.path

        def open_watch():
            # A paused sandbox resumes only for a caller who may write (as a file GET: api/access.py).
            access.read_guard(types.SimpleNamespace(auth=self.key), sandbox, auto_resume=query.auto_resume)
            return sandbox_watch(
                sandbox=sandbox,
                path=query.path,
                recursive=query.recursive,
                excludes=query.excludes,
                timeout=query.timeout,
            )

        self.stream = await sync_to_async(open_watch, thread_sensitive=False)()

    async def started(self):
        self.outbox = Outbox(self)
        threading.Thread(target=self._pump, args=(self.stream, self.outbox), daemon=True, name="watch-ws").start()

    def _pump(self, stream, outbox: Outbox):
        """Runs in a thread: the stream's events into the outbox (blocking while the client is
        behind, so sandboxd's own bounded queue takes the backlog), then the end and a close."""
        try:
            for event in stream:
                if not outbox.put_from_thread("json", event_data(self.root, event)):
                    return  # the client left or was dropped: disconnect() closes the stream
            outbox.put_from_thread("json", end_data(stream.ended))
        except errors.ApplicationError as exc:
            outbox.put_from_thread("json", error_message(exc))
            outbox.put_from_thread("json", end_data("error"))
        except Exception:
            logger.exception("a file watch's stream failed")
            outbox.put_from_thread("json", error_message(errors.ApplicationError()))
            outbox.put_from_thread("json", end_data("error"))
        finally:
            stream.close()
        outbox.put_from_thread("close", 1000)

    async def disconnect(self, code):
        if self.stream is not None:
            await asyncio.to_thread(self.stream.close)
        if self.outbox is not None:
            self.outbox.cancel()
