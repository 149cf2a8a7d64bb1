"""What the sandboxes app announces to higher apps (agents, dashboard), which subscribe in their
AppConfig.ready(): a lower app never imports a higher one."""

from django.dispatch import Signal

# End of a reconcile pass (`startup`: the pass at server start). A receiver finishes what the
# stopped server left of its own work and answers {name: count} for the pass's report.
reconcile_pass = Signal()

# An event was published (events.publish): sent at once, inside the caller's transaction if it has
# one, with `sandbox`, `type` and `data`. The webhooks app writes its deliveries (the outbox) here,
# so they commit or roll back with the change; a receiver ignores the types it has no use for.
sandbox_event = Signal()

# Just before the engine is asked to stop, restart or destroy a sandbox, or to replace its
# container by a snapshot's (the row has claimed the move): `sandbox` and `state`, the status it
# is leaving (running, paused, stopped...). Billing reads the counters' tail here, before the
# container's end resets them. Sent with send_robust: a receiver's error is logged, never raised
# into the lifecycle call; a receiver must be quick.
sandbox_leaving = Signal()

# Work is about to begin for an organization: `action` is "create", "start", "resume", "exec" (a
# command, code, a background process), "snapshot", "ask" (a Claude ask) or "model" (a model
# request through the gateway; these two sent by the agents app),
# with `org_id`, `sandbox` (None at create), `user`, and what it adds: `running` (0 or 1 running
# sandbox), `cpu` (vCPUs), `memory` and `disk` (bytes), `snapshots` (0 or 1). Sent synchronously
# (quotas.request_work), for create, start, resume and snapshot inside the transaction holding the
# organization's row lock (quotas.lock_org). A receiver (billing's quotas) refuses by raising an
# ApplicationError (402 quota_exceeded), which the sender lets through: nothing is done.
work_requested = Signal()

# A create finished with the sandbox running (sent once, outside the create's transactions, by
# services/create.py): `sandbox` and `api_key` (the creating key, or None for a signed-in user).
# The agents app enables Claude Code here when the template asks for it (`claude.autoStart`),
# with that key's rights. A receiver's ApplicationError undoes the create: the sandbox is
# destroyed and the error is the create's answer (nothing half-made).
sandbox_created = Signal()
