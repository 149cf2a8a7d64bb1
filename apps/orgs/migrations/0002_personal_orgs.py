"""Every existing user gets their personal organization, as owner (new users get theirs on first
need: services.personal_org_ensure). Self-contained: migrations never import app code."""

import secrets
import string

from django.conf import settings
from django.db import migrations
from django.utils.text import slugify

ALPHABET = string.ascii_letters + string.digits


def make_personal_orgs(apps, schema_editor):
    User = apps.get_model(*settings.AUTH_USER_MODEL.split("."))
    Organization = apps.get_model("orgs", "Organization")
    Membership = apps.get_model("orgs", "Membership")
    taken = set(Organization.objects.values_list("slug", flat=True))
    for user in User.objects.filter(personal_org__isnull=True).order_by("pk"):
        base = (slugify(user.username)[:40].strip("-") or "org").lower()
        slug, number = base, 1
        while slug in taken:
            number += 1
            slug = f"{base}-{number}"
        taken.add(slug)
        org = Organization.objects.create(
            id="org_" + "".join(secrets.choice(ALPHABET) for _ in range(16)),
            slug=slug,
            name=user.username,
            personal_for=user,
        )
        Membership.objects.create(org=org, user=user, role="owner")


class Migration(migrations.Migration):
    dependencies = [
        ("orgs", "0001_initial"),
        migrations.swappable_dependency(settings.AUTH_USER_MODEL),
    ]

    operations = [migrations.RunPython(make_personal_orgs, migrations.RunPython.noop)]
