"""Routes of the sandbox tabs: terminal, files, exec, logs (views in sandbox_tabs.py)."""

urlpatterns: list = []
