from django.urls import reverse
from rest_framework import serializers

from apps.orgs.permissions import BUILTIN_ROLES, OWNER
from vibebox.api.serializers import StrictSerializer

from ..models import SsoConnection

DEFAULT_ROLES = [name for name in BUILTIN_ROLES if name != OWNER]


class OidcSettingsSerializer(StrictSerializer):
    # 253: no longer than a host name may be (Django's URL check refuses longer hosts), so the schema
    # states a limit that every URL within it meets.
    serverUrl = serializers.URLField(
        source="server_url", max_length=253, help_text="The issuer: its /.well-known/openid-configuration is read."
    )
    clientId = serializers.CharField(source="client_id", max_length=191)
    clientSecret = serializers.CharField(
        source="client_secret",
        max_length=191,
        required=False,
        write_only=True,
        help_text="Write-only: never returned. Omit it to keep the stored one.",
    )


class SamlSettingsSerializer(StrictSerializer):
    entityId = serializers.CharField(source="entity_id", max_length=500, help_text="The IdP's entity ID.")
    ssoUrl = serializers.URLField(source="sso_url", max_length=253, help_text="The IdP's SSO endpoint (redirect).")
    x509cert = serializers.CharField(max_length=10000, help_text="The IdP's signing certificate (PEM).")


class SsoConnectionSetSerializer(StrictSerializer):
    protocol = serializers.ChoiceField(choices=SsoConnection.Protocol.values)
    domains = serializers.ListField(
        child=serializers.CharField(max_length=253),
        min_length=1,
        max_length=50,
        help_text="Email domains whose users sign in through this connection (each belongs to one organization).",
    )
    defaultRole = serializers.ChoiceField(source="default_role", choices=DEFAULT_ROLES, required=False)
    ssoRequired = serializers.BooleanField(
        source="sso_required", required=False, help_text="Members (but holders of org.manage) sign in with SSO only."
    )
    enabled = serializers.BooleanField(required=False)
    oidc = OidcSettingsSerializer(required=False, help_text="With protocol oidc.")
    saml = SamlSettingsSerializer(required=False, help_text="With protocol saml.")


class OidcSettingsReadSerializer(serializers.Serializer):
    serverUrl = serializers.CharField()
    clientId = serializers.CharField()
    redirectUri = serializers.CharField(help_text="Register this redirect URI at the identity provider.")


class SamlSettingsReadSerializer(serializers.Serializer):
    entityId = serializers.CharField()
    ssoUrl = serializers.CharField()
    x509cert = serializers.CharField()
    spEntityId = serializers.CharField(help_text="VibeBox's entity ID (its metadata URL) for the IdP.")
    acsUrl = serializers.CharField(help_text="VibeBox's assertion consumer service (HTTP-POST) for the IdP.")


class SsoDomainSerializer(serializers.Serializer):
    domain = serializers.CharField()
    verified = serializers.BooleanField(help_text="Only a verified domain's users sign in through the connection.")
    verifiedAt = serializers.DateTimeField(allow_null=True)
    recordName = serializers.CharField(help_text="Where to publish the TXT record that verifies the domain.")
    recordValue = serializers.CharField(help_text="The TXT record's value.")


class SsoConnectionSerializer(serializers.Serializer):
    org = serializers.CharField()
    protocol = serializers.ChoiceField(choices=SsoConnection.Protocol.values)
    domains = SsoDomainSerializer(many=True)
    defaultRole = serializers.CharField()
    ssoRequired = serializers.BooleanField()
    enabled = serializers.BooleanField()
    loginUrl = serializers.CharField(help_text="Where a browser starts a sign-in through this connection.")
    oidc = OidcSettingsReadSerializer(required=False)
    saml = SamlSettingsReadSerializer(required=False)
    createdAt = serializers.DateTimeField()
    updatedAt = serializers.DateTimeField()


def connection_data(connection: SsoConnection, *, absolute_uri) -> dict:
    """A connection as SsoConnectionSerializer renders it (REST's and GraphQL's answer); `absolute_uri`
    makes a path absolute (the request's build_absolute_uri): the URLs the IdP is given."""
    app = connection.app
    data = {
        "org": connection.org.slug,
        "protocol": connection.protocol,
        "domains": [
            {
                "domain": domain.domain,
                "verified": domain.verified_at is not None,
                "verifiedAt": domain.verified_at,
                "recordName": domain.record_name,
                "recordValue": domain.record_value,
            }
            for domain in connection.domains.all()
        ],
        "defaultRole": connection.default_role,
        "ssoRequired": connection.sso_required,
        "enabled": connection.enabled,
        "loginUrl": absolute_uri(reverse("sso-start")),
        "createdAt": connection.created_at,
        "updatedAt": connection.updated_at,
    }
    if app.provider == "openid_connect":
        callback = reverse("openid_connect_callback", kwargs={"provider_id": app.provider_id})
        data["oidc"] = {
            "serverUrl": app.settings.get("server_url", ""),
            "clientId": app.client_id,
            "redirectUri": absolute_uri(callback),
        }
    else:
        idp = app.settings.get("idp", {})
        data["saml"] = {
            "entityId": idp.get("entity_id", ""),
            "ssoUrl": idp.get("sso_url", ""),
            "x509cert": idp.get("x509cert", ""),
            "spEntityId": absolute_uri(reverse("saml_metadata", args=[app.client_id])),
            "acsUrl": absolute_uri(reverse("saml_acs", args=[app.client_id])),
        }
    return data
