from django.urls import path

from . import pages

# One view at /status and /status/ (Django's APPEND_SLASH would redirect, and a health checker
# may not follow redirects).
urlpatterns = [
    path("status", pages.status_page, name="status-page"),
    path("status/", pages.status_page),
]
