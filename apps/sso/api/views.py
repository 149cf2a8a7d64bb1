from drf_spectacular.utils import extend_schema
from rest_framework.response import Response
from rest_framework.views import APIView

from apps.orgs import selectors as org_selectors
from apps.orgs.actors import actor_in
from apps.orgs.models import Organization
from vibebox import exceptions as errors
from vibebox.api.schema import error_responses

from .. import selectors, services
from .serializers import SsoConnectionSerializer, SsoConnectionSetSerializer, connection_data

# The keys app's scope (apps/keys/scopes.py), as apps/orgs/api names it: every method changes or
# shows an organization's settings.
ORGS_MANAGE = "orgs:manage"


def _org(request, slug: str) -> Organization:
    """The caller's organization (a key's own only), where they hold org.manage."""
    org = org_selectors.org_get(user=request.user, slug=slug)
    key_org = getattr(request.auth, "org_id", None)
    if key_org is not None and key_org != org.pk:
        raise errors.OrgNotFound(details={"org": slug})
    actor_in(user=request.user, org=org).require("org.manage")
    return org


def _render(request, connection) -> dict:
    return SsoConnectionSerializer(connection_data(connection, absolute_uri=request.build_absolute_uri)).data


class SsoConnectionView(APIView):
    required_scopes = {"GET": [ORGS_MANAGE], "PUT": [ORGS_MANAGE], "DELETE": [ORGS_MANAGE]}

    @extend_schema(
        operation_id="orgs_sso_retrieve",
        responses={200: SsoConnectionSerializer, **error_responses(404)},
        description="The organization's single sign-on connection (secrets are never returned). Needs org.manage.",
    )
    def get(self, request, slug):
        connection = selectors.connection_of(org=_org(request, slug))
        if connection is None:
            raise errors.SsoNotConfigured(details={"org": slug})
        return Response(_render(request, connection))

    @extend_schema(
        operation_id="orgs_sso_set",
        request=SsoConnectionSetSerializer,
        responses={200: SsoConnectionSerializer, **error_responses(409)},
        description="Creates or replaces the connection: OIDC (oidc.serverUrl, clientId, clientSecret) or SAML "
        "(saml.entityId, ssoUrl, x509cert). Needs org.manage; not for a personal organization.",
    )
    def put(self, request, slug):
        org = _org(request, slug)
        body = SsoConnectionSetSerializer(data=request.data)
        body.is_valid(raise_exception=True)
        connection = services.sso_connection_set(org=org, **body.validated_data)
        return Response(_render(request, connection))

    @extend_schema(
        operation_id="orgs_sso_delete",
        responses={204: None, **error_responses(404)},
        description="Removes the connection; its users and their memberships stay. Needs org.manage.",
    )
    def delete(self, request, slug):
        services.sso_connection_delete(org=_org(request, slug))
        return Response(status=204)


class SsoVerifyView(APIView):
    required_scopes = {"POST": [ORGS_MANAGE]}

    @extend_schema(
        operation_id="orgs_sso_verify",
        request=None,
        responses={200: SsoConnectionSerializer, **error_responses(404)},
        description="Looks up the TXT record (recordName, recordValue) of every domain not verified yet; "
        "the ones found are verified. Needs org.manage.",
    )
    def post(self, request, slug):
        connection = selectors.connection_of(org=_org(request, slug))
        if connection is None:
            raise errors.SsoNotConfigured(details={"org": slug})
        services.sso_domains_verify(connection=connection)
        return Response(_render(request, connection))
