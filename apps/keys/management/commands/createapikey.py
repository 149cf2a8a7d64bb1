from django.contrib.auth import get_user_model
from django.core.management.base import BaseCommand, CommandError

from apps.keys.scopes import DEFAULT_SCOPES, parse_scopes
from apps.keys.services import api_key_create
from apps.orgs.models import Membership, Organization


class Command(BaseCommand):
    help = "Create an API key for a user (created if missing) and print the key alone on stdout."

    def add_arguments(self, parser):
        parser.add_argument("--user", required=True)
        parser.add_argument("--name", default="CLI key")
        parser.add_argument("--scopes", default=",".join(DEFAULT_SCOPES), help="comma-separated, or 'all'")
        parser.add_argument("--test", action="store_true", help="make a vb_test_ key")
        parser.add_argument("--org", help="slug of the organization the key acts in (default: the user's personal one)")
        parser.add_argument("--staff", action="store_true", help="make the user staff (an operator: GET /api/v1/pools)")

    def handle(self, *args, user, name, scopes, test, staff, org, **options):
        try:
            scope_list = parse_scopes(scopes)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        account, created = get_user_model().objects.get_or_create(username=user)
        if created:
            account.set_unusable_password()
            account.save()
            self.stderr.write(f"created user {user}")
        if staff and not account.is_staff:
            account.is_staff = True
            account.save(update_fields=["is_staff"])
        organization = None
        if org:
            organization = Organization.objects.filter(slug=org).first()
            if organization is None:
                raise CommandError(f"no organization {org!r}")
            if not Membership.objects.filter(org=organization, user=account).exists():
                raise CommandError(f"{user} is not a member of {org} (add them first)")
        _, secret = api_key_create(user=account, name=name, org=organization, scopes=scope_list, test=test)
        self.stdout.write(secret)
