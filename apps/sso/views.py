"""The sign-in page's "Sign in with SSO": an email (its domain) or an organization's slug picks the
connection; allauth then sends the browser to that identity provider."""

import logging

import requests
from django.shortcuts import render
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
    try:
        return connection.app.get_provider(request).redirect(request, process="login")
    except requests.RequestException as exc:  # OIDC: its discovery document could not be read
        logger.warning("identity provider of %s unreachable: %s", connection.org.slug, exc)
        reason = f"{connection.org.name}'s identity provider does not answer. Try again later."
        return render(request, "sso/refused.html", {"reason": reason}, status=502)
