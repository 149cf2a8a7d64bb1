"""The browser side of single sign-on: the start, and allauth's OIDC and SAML endpoints (login,
callback, ACS, metadata) under /accounts/."""

from allauth.socialaccount.providers.openid_connect import urls as oidc_urls
from allauth.socialaccount.providers.saml import urls as saml_urls
from django.urls import include, path

from . import views

urlpatterns = [
    path("sso/", views.sso_start, name="sso-start"),
    path("accounts/", include(oidc_urls)),
    path("accounts/", include(saml_urls)),
]
