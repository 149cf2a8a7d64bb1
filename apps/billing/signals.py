"""What the billing app announces to higher apps (webhooks), which subscribe in their
AppConfig.ready(): a lower app never imports a higher one."""

from django.dispatch import Signal

# A threshold (80 %, 100 %) of a monthly quota or of the budget was reached, for the first time this
# month: sent with `notice` (a Notice) and `org`, inside the transaction that wrote the notice (the
# webhooks app writes its deliveries there: billing.threshold_reached).
threshold_reached = Signal()
