"""Reads for single sign-on."""

from django.db.models import Q

from apps.orgs.models import Membership, Organization
from apps.orgs.selectors import permissions_of

from .models import SsoConnection


def provider_id_for(org: Organization) -> str:
    """allauth's provider id of the organization's connection (URLs and social accounts carry it)."""
    return f"sso-{org.pk}"


def connection_of(*, org: Organization) -> SsoConnection | None:
    return SsoConnection.objects.filter(org=org).select_related("app", "org").first()


def connection_for_provider(provider_id: str) -> SsoConnection | None:
    return SsoConnection.objects.filter(app__provider_id=provider_id).select_related("app", "org").first()


def email_domain(email: str) -> str:
    return email.rpartition("@")[2].strip().lower() if "@" in email else ""


def connection_to_start(ref: str) -> SsoConnection | None:
    """The enabled connection a sign-in starts with: by the email's domain, or by organization slug."""
    ref = ref.strip()
    if "@" in ref:
        query = Q(domains__domain=email_domain(ref), domains__verified_at__isnull=False)
    else:
        query = Q(org__slug=ref.lower())
    return SsoConnection.objects.filter(query, enabled=True).select_related("app", "org").first()


def sso_required_orgs(*, user) -> list[Organization]:
    """The organizations whose enabled connection requires SSO of `user` (a member without org.manage:
    holders of org.manage keep their password, so a broken identity provider cannot lock everyone out)."""
    org_ids = Membership.objects.filter(user=user).values("org_id")
    connections = SsoConnection.objects.filter(org_id__in=org_ids, enabled=True, sso_required=True).select_related(
        "org"
    )
    return [c.org for c in connections if "org.manage" not in permissions_of(user=user, org=c.org)]


def verified_domains(connection: SsoConnection) -> set[str]:
    return set(connection.domains.filter(verified_at__isnull=False).values_list("domain", flat=True))
