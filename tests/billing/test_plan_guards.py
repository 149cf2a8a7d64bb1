"""Plans as prices that stay put: a plan in use keeps its prices, fee and currency (the admin shows
them read-only and the service refuses a change), the default plan can be neither deleted nor
renamed and its absence is a clear 503; plan changes of one organization are serialized."""

import threading
from datetime import timedelta

import pytest
from django.db import connection
from django.utils import timezone

from apps.audit.models import AuditEntry
from apps.billing import services
from apps.billing.models import PlanAssignment
from apps.orgs.actors import Actor
from apps.orgs.selectors import permissions_of
from tests.billing.usage_rows import org_of


@pytest.mark.django_db(transaction=True)
def test_two_changes_for_the_same_moment_at_once_make_one_assignment(owner):
    """Both changes ask for the same instant; without the lock on the account row one of them died on
    the (org, effective_from) unique constraint as a 500. Serialized, the later one replaces the
    earlier (a change drops those at or after its start), both audited."""
    org = org_of(owner)
    actor = Actor(user=owner, org=org, permissions=permissions_of(user=owner, org=org))
    when = timezone.now() + timedelta(days=3)
    start = threading.Barrier(2)
    failures, made = [], []

    def change(slug):
        try:
            start.wait(timeout=60)
            made.append(services.plan_change(actor=actor, plan=slug, effective_from=when))
        except Exception as exc:  # reported below
            failures.append(repr(exc))
        finally:
            connection.close()

    threads = [threading.Thread(target=change, args=(slug,)) for slug in ("pro", "team")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=120)
    assert not failures
    assert len(made) == 2
    assert PlanAssignment.objects.filter(org=org, effective_from=when).count() == 1
    entries = AuditEntry.objects.filter(org_id=org.pk, action="billing.plan_changed").order_by("seq")
    assert len(entries) == 2
    # The second saw the first (its "dropped" names it): the plan before it was read under the lock.
    assert [item["plan"] for item in entries[1].changes["dropped"]] == [entries[0].changes["plan"]["to"]]
