"""What the agents app announces to higher apps (webhooks), which subscribe in their
AppConfig.ready(): a lower app never imports a higher one."""

from django.dispatch import Signal

# An agent run finished (completed, failed or cancelled): sent inside the finishing transaction,
# with `run` (the webhooks app writes its deliveries there).
agent_run_finished = Signal()
