"""What the marketplace app announces to higher apps, which subscribe in their AppConfig.ready()."""

from django.dispatch import Signal

# A template was published: created, or given a new version (sent inside the writing transaction,
# with `template`; the webhooks app writes its deliveries there). A built-in template is public:
# every organization may hear of it.
template_published = Signal()

# A marketplace template version was rejected by a reviewer (sent inside the writing transaction,
# with `submission`; the webhooks app tells the submitter's organization: template.rejected).
template_rejected = Signal()

# A submission was accepted and waits for its validation (sent after the commit, with
# `submission`); the sandboxes app receives it and enqueues the pipeline's Celery task.
submission_queued = Signal()
