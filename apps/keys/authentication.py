from drf_spectacular.extensions import OpenApiAuthenticationExtension
from rest_framework.authentication import BaseAuthentication

from vibebox import exceptions as errors

from .services import api_key_use


class ApiKeyAuthentication(BaseAuthentication):
    """`Authorization: Bearer vb_live_…` or `X-API-Key: vb_live_…`. Never from the query string."""

    def authenticate(self, request):
        header = request.headers.get("Authorization", "")
        if header:
            scheme, _, secret = header.partition(" ")
            if scheme.lower() != "bearer":
                return None
        else:
            secret = request.headers.get("X-API-Key", "")
            if not secret:
                return None
        key = api_key_use(secret=secret.strip())
        if key is None:
            raise errors.InvalidApiKey()
        return key.user, key

    def authenticate_header(self, request):
        return 'Bearer realm="vibebox"'


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = ApiKeyAuthentication
    name = "ApiKey"

    def get_security_definition(self, auto_schema):
        return {"type": "http", "scheme": "bearer"}
