"""White-label: what the product is called and looks like, for pages, emails and messages.

The installation's brand comes from the VIBEBOX_BRAND_* settings (docs/operations.md,
"Branding"); an organization may override the dashboard's part of it for its members
(Organization.branding, set by org.manage through services.org_branding_update). The email sender
is the installation's only: an organization choosing the From of mail our server sends would be a
way to spoof any address.
"""

import re
from dataclasses import dataclass, replace

from django.conf import settings

from vibebox import exceptions as errors

# Per-organization override (the `branding` JSON's keys) -> the Brand attribute it sets.
OVERRIDES = {
    "name": "name",
    "logoUrl": "logo_url",
    "primaryColor": "primary_color",
    "primaryTextColor": "primary_text_color",
    "supportUrl": "support_url",
    "docsUrl": "docs_url",
}
LABELS = {
    "name": "Product name",
    "logoUrl": "Logo URL",
    "primaryColor": "Primary colour",
    "primaryTextColor": "Text on the primary colour",
    "supportUrl": "Support URL",
    "docsUrl": "Documentation URL",
}
COLOR = re.compile(r"^#(?:[0-9a-fA-F]{3}|[0-9a-fA-F]{6})$")  # written into a <style>: nothing else passes
# An absolute https/http URL or a path on this server, without quotes, spaces or angle brackets
# (it goes into attributes and CSS); support may also be a mailto: link.
URL = re.compile(r"^(?:https?://[^\s\"'<>()\\]+|/[^\s\"'<>()\\]*)$")
MAILTO = re.compile(r"^mailto:[^\s\"'<>()\\@]+@[^\s\"'<>()\\@]+$")
MAX_NAME = 60
MAX_URL = 500


@dataclass(frozen=True)
class Brand:
    name: str
    logo_url: str
    primary_color: str
    primary_text_color: str
    support_url: str
    docs_url: str
    email_from: str


def default() -> Brand:
    """The installation's brand (the settings)."""
    return Brand(
        name=settings.VIBEBOX_BRAND_NAME,
        logo_url=settings.VIBEBOX_BRAND_LOGO_URL,
        primary_color=settings.VIBEBOX_BRAND_PRIMARY_COLOR,
        primary_text_color=settings.VIBEBOX_BRAND_PRIMARY_TEXT_COLOR,
        support_url=settings.VIBEBOX_BRAND_SUPPORT_URL,
        docs_url=settings.VIBEBOX_BRAND_DOCS_URL,
        email_from=settings.VIBEBOX_BRAND_EMAIL_FROM,
    )


def brand_for(org=None) -> Brand:
    """The installation's brand with the organization's overrides (of the keys it sets) on top."""
    brand = default()
    overrides = getattr(org, "branding", None) or {}
    values = {OVERRIDES[key]: value for key, value in overrides.items() if key in OVERRIDES and value}
    return replace(brand, **values) if values else brand


def _invalid(key: str, message: str) -> errors.ValidationFailed:
    return errors.ValidationFailed(
        f"{key}: {message}", details={"fields": {key: [{"message": message, "code": "invalid"}]}}
    )


def validate(values: dict) -> dict:
    """The overrides given, checked: {key: value}; "" or None clears a key (the installation's
    then). Unknown keys, colours that are not #rgb/#rrggbb and URLs that are neither http(s) nor
    a path (mailto: for support) are refused."""
    clean = {}
    for key, value in values.items():
        if key not in OVERRIDES:
            raise _invalid(key, "not a brand setting an organization can override.")
        if value is None or value == "":
            clean[key] = ""
            continue
        if not isinstance(value, str):
            raise _invalid(key, "must be a string.")
        if key == "name":
            if len(value) > MAX_NAME or not value.strip():
                raise _invalid(key, f"1 to {MAX_NAME} characters.")
        elif key.endswith("Color"):
            if not COLOR.match(value):
                raise _invalid(key, "a colour is #rgb or #rrggbb.")
        elif len(value) > MAX_URL or not (URL.match(value) or (key == "supportUrl" and MAILTO.match(value))):
            also = " (or mailto:)" if key == "supportUrl" else ""
            raise _invalid(key, f"an http(s) URL or a path on this server{also}.")
        clean[key] = value
    return clean
