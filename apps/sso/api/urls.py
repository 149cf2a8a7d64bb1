from django.urls import path

from . import views

urlpatterns = [
    path("orgs/<str:slug>/sso", views.SsoConnectionView.as_view(), name="org-sso"),
    path("orgs/<str:slug>/sso/verify", views.SsoVerifyView.as_view(), name="org-sso-verify"),
]
