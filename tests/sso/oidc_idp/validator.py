"""The provider's claims, and clients that misbehave on purpose (by application name): ID tokens
that name another audience, that have expired, or that another issuer signed."""

import time

from oauth2_provider.oauth2_validators import OAuth2Validator


class Validator(OAuth2Validator):
    oidc_claim_scope = {**OAuth2Validator.oidc_claim_scope, "email": "email", "email_verified": "email"}

    def get_additional_claims(self, request):
        return {"email": request.user.email, "email_verified": True, "name": request.user.get_full_name()}

    def get_id_token_dictionary(self, token, token_handler, request):
        claims, expiration = super().get_id_token_dictionary(token, token_handler, request)
        if request.client.name == "expired":
            claims["exp"] = int(time.time()) - 3600
        if request.client.name == "wrong-issuer":
            claims["iss"] = "https://impostor.test/o"
        return claims, expiration

    def finalize_id_token(self, id_token, token, token_handler, request):
        if request.client.name == "wrong-audience":
            id_token["aud"] = "someone-else"
        return super().finalize_id_token(id_token, token, token_handler, request)
