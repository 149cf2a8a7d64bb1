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
