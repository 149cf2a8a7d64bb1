"""ASGI entry point of the model gateway (`manage.py rungateway` serves it)."""

import os

import django

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "vibebox.settings")
django.setup()

from .proxy import application  # noqa: E402  (needs Django set up first)

__all__ = ["application"]
