"""django-allauth's social-account adapter for organizations' connections (settings.SOCIALACCOUNT_ADAPTER).

allauth checks the identity provider's answer (OIDC: the ID token's issuer, audience and expiry;
SAML: signature, audience, destination and validity times); this adapter only decides who may
land where: the connection must be enabled, the email's domain one of its domains, and a new
identity may not take over an account that already has its email (docs/sso.md).
"""

import logging

from allauth.account.utils import user_email
from allauth.core.exceptions import ImmediateHttpResponse
from allauth.socialaccount.adapter import DefaultSocialAccountAdapter
from django.contrib.auth import get_user_model
from django.shortcuts import render

from vibebox import crypto

from . import selectors
from .models import SsoConnection

logger = logging.getLogger(__name__)


def refused(request, reason: str, *, status: int = 403, detail: str = ""):
    context = {"reason": reason, "detail": detail}
    return ImmediateHttpResponse(render(request, "sso/refused.html", context, status=status))


class SsoAdapter(DefaultSocialAccountAdapter):
    def list_apps(self, request, provider=None, client_id=None):
        """allauth's apps, an OIDC connection's with its client secret (decrypted in memory only)."""
        apps = super().list_apps(request, provider=provider, client_id=client_id)
        secrets = dict(
            SsoConnection.objects.filter(app__in=[app for app in apps if app.pk], secret__gt="").values_list(
                "app_id", "secret"
            )
        )
        for app in apps:
            if app.pk in secrets:
                app.secret = crypto.decrypt(secrets[app.pk])
        return apps

    def pre_social_login(self, request, sociallogin):
        connection = selectors.connection_for_provider(sociallogin.account.provider)
        if connection is None or not connection.enabled:
            raise refused(request, "Single sign-on is turned off for this organization.")
        email = user_email(sociallogin.user) or next((a.email for a in sociallogin.email_addresses), "")
        domains = selectors.verified_domains(connection)
        if selectors.email_domain(email or "") not in domains:
            raise refused(
                request,
                f"The identity provider signed in {email or 'an account without an email'}, whose domain is not "
                f"one of {connection.org.name}'s verified single sign-on domains ({', '.join(sorted(domains))}).",
            )
        if sociallogin.is_existing:
            if not sociallogin.user.is_active:
                raise refused(request, "This account is deactivated; ask an administrator of this server.")
            return
        # A new identity never takes over an existing account with the same email: the identity
        # provider is whatever an organization's owner configured, so it could assert anyone's email.
        if get_user_model().objects.filter(email__iexact=email).exists():
            raise refused(
                request,
                f"An account with the email {email} exists already and is not linked to {connection.org.name}'s "
                "identity provider. Sign in with its password, or ask an administrator to link it.",
                status=409,
            )

    def is_open_for_signup(self, request, sociallogin):
        return True

    def is_auto_signup_allowed(self, request, sociallogin):
        return True

    def on_authentication_error(self, request, provider, error=None, exception=None, extra_context=None):
        # What the library found wrong (e.g. "Audience doesn't match", "... is not a valid audience for
        # this Response", "Signature validation failed"), shown so an owner can fix their IdP's setup.
        cause = getattr(exception, "__cause__", None) or exception
        detail = (extra_context or {}).get("saml_last_error_reason") or (str(cause) if cause else "") or error
        detail = detail or request.GET.get("error_description") or request.GET.get("error") or "unknown"
        logger.warning("single sign-on refused (%s): %s", getattr(provider, "sub_id", provider), detail)
        reason = "The identity provider's answer was refused: it did not pass the checks of its signature, audience, "
        raise refused(request, reason + "issuer or validity. Try signing in again.", detail=str(detail)[:300])
