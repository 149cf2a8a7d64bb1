"""WS /ws/v1/marketplace/submissions/{id}/log?offset=N: a template submission's build log, live.

Refused like the other streams (BaseConsumer): no or a bad key 4401, a key without templates:read
4403, a submission of another organization 4404 (as if it did not exist; staff see every one).
Once accepted, the server sends
    {"type": "log", "offset": <byte offset after this text>, "text": "..."}
for the log after byte `offset` (default 0: the whole log still kept), then for each new part as
the pipeline appends it, and, once the pipeline is done with the submission (awaiting_review,
published, rejected, failed, cancelled),
    {"type": "state", "state": ..., "failedStep": ..., "message": ..., "imageSize": ...,
     "smokeOutput": ..., "logSize": ...}
and closes (1000). A client that reconnects passes the last offset it got. When the middle of a
long log was dropped (the submission keeps its head and newest tail), "dropped": true marks the
first message after the gap.
"""

import asyncio

from channels.db import database_sync_to_async

from apps.keys.actors import actor_for
from apps.keys.scopes import TEMPLATES_READ
from apps.marketplace import states
from apps.marketplace.models import Submission
from apps.marketplace.selectors import submission_get
from apps.marketplace.submissions import log_after
from vibebox import exceptions as errors

from .base import BaseConsumer

POLL_SECONDS = 0.5


def _visible(actor, submission_id: str) -> Submission:
    return submission_get(actor=actor, submission_id=submission_id)


class SubmissionLogConsumer(BaseConsumer):
    required_scopes = [TEMPLATES_READ]
    submission_id = ""
    offset = 0
    pump: asyncio.Task | None = None

    def _actor(self, *, fresh: bool = False):
        return actor_for(user=self.user, key=self.key, session=self.scope.get("session"), fresh=fresh)

    async def setup(self):
        self.submission_id = self.scope["url_route"]["kwargs"]["submission_id"]
        raw = self.query("offset", "0")
        if not (raw.isascii() and raw.isdigit() and len(raw) <= 18):  # "²".isdigit() too; int() refuses it
            raise errors.ValidationFailed(
                "offset is a byte offset (a whole number).",
                details={"fields": {"offset": [{"message": "a whole number", "code": "invalid"}]}},
            )
        self.offset = int(raw)
        await database_sync_to_async(lambda: _visible(self._actor(), self.submission_id))()

    async def started(self):
        self.pump = asyncio.ensure_future(self._pump())

    def _read(self) -> tuple[Submission, str, bool]:
        submission = Submission.objects.get(pk=self.submission_id)
        text = log_after(submission, self.offset)
        dropped = len(text.encode()) < submission.log_size - self.offset
        return submission, text, dropped

    async def _pump(self):
        while not self.ended:
            submission, text, dropped = await database_sync_to_async(self._read)()
            if not await self.still_allowed():
                return
            if submission.log_size > self.offset:
                message = {"type": "log", "offset": submission.log_size, "text": text}
                if dropped:
                    message["dropped"] = True
                await self.send_json(message)
                self.offset = submission.log_size
            if submission.state not in states.RUNNING:
                await self.send_json(
                    {
                        "type": "state",
                        "state": submission.state,
                        "failedStep": submission.failed_step or None,
                        "message": submission.message,
                        "imageSize": submission.image_size,
                        "smokeOutput": submission.smoke_output,
                        "logSize": submission.log_size,
                    }
                )
                await self.close(code=1000)
                return
            await asyncio.sleep(POLL_SECONDS)

    def _access_problem(self) -> errors.ApplicationError | None:
        """The user left the submission's organization: 4403."""
        try:
            _visible(self._actor(fresh=True), self.submission_id)
        except errors.SubmissionNotFound:
            return errors.PermissionDenied("You can no longer see this submission.")
        return None

    async def disconnect(self, code):
        if self.pump is not None and self.pump is not asyncio.current_task():
            self.pump.cancel()
