"""What the marketplace app announces to higher apps, which subscribe in their AppConfig.ready()."""

from django.dispatch import Signal

# A template was published: created, or given a new version (sent inside the writing transaction,
# with `template`; the webhooks app writes its deliveries there). A built-in template is public:
# every organization may hear of it.
template_published = Signal()
