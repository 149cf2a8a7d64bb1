"""Single sign-on per organization (docs/sso.md): one connection to the organization's identity
provider, kept as a django-allauth SocialApp (the library speaks OIDC and SAML; nothing here does)."""

import secrets

from allauth.socialaccount.models import SocialApp
from django.db import models

from apps.orgs.models import Organization
from apps.orgs.permissions import BUILTIN_ROLES, DEVELOPER


class SsoConnection(models.Model):
    class Protocol(models.TextChoices):
        OIDC = "oidc"
        SAML = "saml"

    org = models.OneToOneField(Organization, on_delete=models.CASCADE, related_name="sso")
    protocol = models.CharField(max_length=4, choices=Protocol.choices)
    # allauth's record of the identity provider: provider "openid_connect" or "saml", provider_id
    # "sso-<org id>" (the social accounts it makes carry it), SAML's client_id the org id.
    app = models.OneToOneField(SocialApp, on_delete=models.PROTECT, related_name="vibebox_sso")
    # OIDC's client secret, encrypted (vibebox/crypto.py); the SocialApp's own field stays empty and
    # the adapter hands allauth the plain secret in memory only.
    secret = models.TextField(blank=True, default="")
    # New members get this built-in role (owner excluded).
    default_role = models.CharField(max_length=20, default=DEVELOPER, choices=[(name, name) for name in BUILTIN_ROLES])
    # Members (but holders of org.manage) sign in through the identity provider only.
    sso_required = models.BooleanField(default=False)
    enabled = models.BooleanField(default=True)
    created_at = models.DateTimeField(auto_now_add=True)
    updated_at = models.DateTimeField(auto_now=True)

    def __str__(self):
        return f"{self.org.slug} ({self.protocol})"


def new_verification_token() -> str:
    return secrets.token_urlsafe(24)


class SsoDomain(models.Model):
    """An email domain whose users sign in through one organization's connection (one org each),
    once verified: its DNS holds the TXT record `VERIFY_PREFIX + token` at `VERIFY_LABEL.<domain>`
    (or an operator set verified_at in the admin)."""

    VERIFY_LABEL = "_vibebox-verify"
    VERIFY_PREFIX = "vibebox-verify="

    connection = models.ForeignKey(SsoConnection, on_delete=models.CASCADE, related_name="domains")
    domain = models.CharField(max_length=253, unique=True)
    token = models.CharField(max_length=64, default=new_verification_token, editable=False)
    verified_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["domain"]

    def __str__(self):
        return self.domain

    @property
    def record_name(self) -> str:
        return f"{self.VERIFY_LABEL}.{self.domain}"

    @property
    def record_value(self) -> str:
        return f"{self.VERIFY_PREFIX}{self.token}"
