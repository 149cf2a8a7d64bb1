"""Writes for single sign-on: an organization's connection, its domains' verification, and the
membership a sign-in gives."""

import logging
import re
from urllib.parse import urlsplit

import dns.exception
import dns.resolver
from allauth.socialaccount.models import SocialApp
from cryptography import x509
from django.conf import settings
from django.db import IntegrityError, transaction
from django.utils import timezone

from apps.audit.services import record
from apps.orgs.models import Membership, Organization
from apps.orgs.permissions import BUILTIN_ROLES, OWNER
from apps.orgs.signals import membership_changed
from vibebox import crypto
from vibebox import exceptions as errors

from . import selectors
from .models import SsoConnection, SsoDomain

logger = logging.getLogger(__name__)

LOOPBACK = {"127.0.0.1", "localhost", "::1"}
DOMAIN_PATTERN = re.compile(r"^(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$")


def _invalid(field: str, message: str) -> errors.ValidationFailed:
    return errors.ValidationFailed(message, details={"fields": {field: [{"message": message, "code": "invalid"}]}})


def _clean_domains(domains: list[str]) -> list[str]:
    cleaned = sorted({domain.strip().lower() for domain in domains})
    bad = [domain for domain in cleaned if not DOMAIN_PATTERN.match(domain)]
    if bad or not cleaned:
        raise _invalid("domains", f"domains are one or more DNS names such as example.com (invalid: {bad[:5]}).")
    return cleaned


def _app_fields(*, org: Organization, protocol: str, oidc: dict | None, saml: dict | None):
    """What allauth's SocialApp holds for the connection (never the secret: see SsoConnection.secret)."""
    if protocol == SsoConnection.Protocol.OIDC:
        if not oidc:
            raise _invalid("oidc", "an OIDC connection needs oidc: serverUrl, clientId, clientSecret.")
        # allauth takes the ID token from the token endpoint without checking its signature (OIDC
        # Core 3.1.3.7: TLS authenticates the issuer), so the issuer must be https (loopback aside).
        url = urlsplit(oidc["server_url"])
        if url.scheme != "https" and url.hostname not in LOOPBACK:
            raise _invalid("oidc.serverUrl", "serverUrl must be an https URL.")
        return {
            "provider": "openid_connect",
            "client_id": oidc["client_id"],
            "secret": "",
            # PKCE on top of the client secret (OAuth 2.1 asks it of every client).
            "settings": {"server_url": oidc["server_url"], "oauth_pkce_enabled": True},
        }
    if not saml:
        raise _invalid("saml", "a SAML connection needs saml: entityId, ssoUrl, x509cert.")
    _check_certificate(saml["x509cert"])
    return {
        "provider": "saml",
        "client_id": org.pk,  # allauth's SAML URLs name the connection by it: /accounts/saml/<org id>/acs/
        "secret": "",
        "settings": {
            "idp": {"entity_id": saml["entity_id"], "sso_url": saml["sso_url"], "x509cert": saml["x509cert"]},
            # Refuse what is not signed by the IdP's certificate (python3-saml checks it, with
            # audience, destination and validity times, in strict mode).
            "advanced": {"strict": True, "want_assertion_signed": True, "reject_idp_initiated_sso": True},
        },
    }


def _check_certificate(pem: str) -> None:
    """The IdP's signing certificate: PEM, or its base64 body alone (as IdP metadata carries it)."""
    text = pem.strip()
    if "-----BEGIN" not in text:
        text = f"-----BEGIN CERTIFICATE-----\n{text}\n-----END CERTIFICATE-----"
    try:
        x509.load_pem_x509_certificate(text.encode())
    except ValueError:
        raise _invalid("saml.x509cert", "x509cert is not a certificate (PEM).") from None


@transaction.atomic
def sso_connection_set(
    *,
    org: Organization,
    protocol: str,
    domains: list[str],
    default_role: str = "developer",
    sso_required: bool = False,
    enabled: bool = True,
    oidc: dict | None = None,
    saml: dict | None = None,
) -> SsoConnection:
    """Creates or replaces the organization's connection (a PUT: every field as given)."""
    if org.personal:
        raise errors.PersonalOrg("A personal organization has no single sign-on; create an organization.")
    if default_role not in BUILTIN_ROLES or default_role == OWNER:
        raise _invalid(
            "defaultRole", f"defaultRole is a built-in role other than owner: {sorted(set(BUILTIN_ROLES) - {OWNER})}."
        )
    domains = _clean_domains(domains)
    taken = SsoDomain.objects.filter(domain__in=domains).exclude(connection__org=org).values_list("domain", flat=True)
    if taken:
        raise errors.SsoDomainTaken(details={"domains": sorted(taken)})
    connection = selectors.connection_of(org=org)
    old_app = connection.app if connection is not None else None
    fields = _app_fields(org=org, protocol=protocol, oidc=oidc, saml=saml)
    secret = ""
    if protocol == SsoConnection.Protocol.OIDC:
        # Given, or the stored one kept (an OIDC connection's, the same client's).
        kept = (
            connection is not None and old_app.provider == "openid_connect" and old_app.client_id == oidc["client_id"]
        )
        secret = (
            crypto.encrypt(oidc["client_secret"]) if oidc.get("client_secret") else (connection.secret if kept else "")
        )
        if not secret:
            raise _invalid(
                "oidc", "clientSecret is required (it is never shown again; omit it to keep the stored one)."
            )
    try:
        with transaction.atomic():  # nothing half-made: the app, the connection and its domains together
            app = old_app or SocialApp(provider_id=selectors.provider_id_for(org))
            app.name = org.name
            for name, value in fields.items():
                setattr(app, name, value)
            app.save()
            created = connection is None
            if created:
                connection = SsoConnection(org=org, app=app)
            connection.protocol = protocol
            connection.secret = secret
            connection.default_role = default_role
            connection.sso_required = sso_required
            connection.enabled = enabled
            connection.save()
            connection.domains.exclude(domain__in=domains).delete()
            for domain in domains:
                SsoDomain.objects.get_or_create(connection=connection, domain=domain)
            record(
                "sso.configured" if created else "sso.updated",
                target=org,
                changes={
                    "protocol": protocol,
                    "domains": domains,
                    "defaultRole": default_role,
                    "ssoRequired": sso_required,
                    "enabled": enabled,
                    "clientSecretChanged": bool(oidc and oidc.get("client_secret")),
                },
            )
    except IntegrityError:  # a domain claimed by another organization meanwhile
        raise errors.SsoDomainTaken(details={"domains": domains}) from None
    return connection


@transaction.atomic
def sso_connection_delete(*, org: Organization) -> None:
    """Removes the connection. The users it made stay, with their memberships, and sign in no more
    through it (an administrator may set them a password)."""
    connection = selectors.connection_of(org=org)
    if connection is None:
        raise errors.SsoNotConfigured(details={"org": org.slug})
    app = connection.app
    record("sso.removed", target=org, changes={"protocol": connection.protocol})
    connection.delete()
    app.delete()


def sso_member_ensure(*, connection: SsoConnection, user) -> Membership:
    """The user's membership of the connection's organization, added with the default role when missing
    (a member keeps the role they have)."""
    membership = Membership.objects.filter(org=connection.org, user=user).first()
    if membership is not None:
        return membership
    try:
        with transaction.atomic():
            membership = Membership.objects.create(org=connection.org, user=user, role=connection.default_role)
            record(
                "member.added",
                target=membership,
                user=user,
                changes={"user": user.get_username(), "role": membership.role, "via": "sso"},
            )
    except IntegrityError:  # added meanwhile by another request
        return Membership.objects.get(org=connection.org, user=user)
    org = connection.org
    transaction.on_commit(lambda: membership_changed.send(sender=Membership, org=org, user=user))
    return membership


def _resolver() -> dns.resolver.Resolver:
    """The system's resolver, or VIBEBOX_SSO_DNS_SERVERS ("host" or "host:port" each) when set."""
    servers = settings.VIBEBOX_SSO_DNS_SERVERS
    resolver = dns.resolver.Resolver(configure=not servers)
    if servers:
        resolver.nameservers = [server.rpartition(":")[0] if ":" in server else server for server in servers]
        ports = {server.rpartition(":")[2] for server in servers if ":" in server}
        if ports:
            resolver.port = int(ports.pop())
    resolver.lifetime = 5.0
    return resolver


def _txt_values(name: str) -> set[str]:
    try:
        answer = _resolver().resolve(name, "TXT")
    except (dns.exception.DNSException, OSError) as exc:
        logger.info("no TXT record at %s: %s", name, exc)
        return set()
    return {b"".join(record.strings).decode(errors="replace") for record in answer}


def sso_domains_verify(*, connection: SsoConnection) -> list[SsoDomain]:
    """Looks up the TXT record of each domain not verified yet; the ones that hold their token are
    verified from now on. Answers the domains, verified or not."""
    domains = list(connection.domains.all())
    for domain in domains:
        if domain.verified_at is None and domain.record_value in _txt_values(domain.record_name):
            with transaction.atomic():
                domain.verified_at = timezone.now()
                domain.save(update_fields=["verified_at"])
                record("sso.domain_verified", target=connection.org, changes={"domain": domain.domain, "by": "dns"})
    return domains
