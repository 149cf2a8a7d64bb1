"""The sign-in page's "Sign in with SSO": an email (its domain) or an organization's slug picks the
connection; allauth then sends the browser to that identity provider."""

import logging

import requests
from django.shortcuts import render
from django.utils.http import url_has_allowed_host_and_scheme
from django.views.decorators.http import require_POST

from . import selectors

logger = logging.getLogger(__name__)


@require_POST
def sso_start(request):
    ref = request.POST.get("sso", "")[:254]
    connection = selectors.connection_to_start(ref) if ref.strip() else None
    if connection is None:
        reason = "No organization signs in with single sign-on for this email domain or organization slug."
        return render(request, "sso/refused.html", {"reason": reason}, status=404)
    next_url = request.POST.get("next", "")
    if not url_has_allowed_host_and_scheme(next_url, {request.get_host()}, require_https=request.is_secure()):
        next_url = None  # allauth then lands on LOGIN_REDIRECT_URL
    try:
        return connection.app.get_provider(request).redirect(request, process="login", next_url=next_url or None)
    except requests.RequestException as exc:  # OIDC: its discovery document could not be read
        logger.warning("identity provider of %s unreachable: %s", connection.org.slug, exc)
        reason = f"{connection.org.name}'s identity provider does not answer. Try again later."
        return render(request, "sso/refused.html", {"reason": reason}, status=502)
