"""What the sandboxes app announces to higher apps (agents, dashboard), which subscribe in their
AppConfig.ready(): a lower app never imports a higher one."""

from django.dispatch import Signal

# End of a reconcile pass (`startup`: the pass at server start). A receiver finishes what the
# stopped server left of its own work and answers {name: count} for the pass's report.
reconcile_pass = Signal()
