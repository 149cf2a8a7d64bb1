"""Routes of the other pages: git and Claude tabs, agent activity, templates, API keys, usage."""

urlpatterns: list = []
