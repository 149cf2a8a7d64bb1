"""Routes of the sandbox tabs: terminal, files, exec, logs (views in sandbox_tabs.py), ports
(sandbox_ports.py)."""

from django.urls import path

from . import sandbox_notebook as notebook
from . import sandbox_ports as preview
from . import sandbox_tabs as tabs

S = "sandboxes/<str:sandbox_id>/"

urlpatterns: list = [
    path(S + "terminal", tabs.sandbox_terminal, name="sandbox-terminal"),
    path(S + "terminal/sessions", tabs.sandbox_terminal_sessions, name="sandbox-terminal-sessions"),
    path(S + "files", tabs.sandbox_files, name="sandbox-files"),
    path(S + "files/download", tabs.sandbox_files_download, name="sandbox-files-download"),
    path(S + "files/upload", tabs.sandbox_files_upload, name="sandbox-files-upload"),
    path(S + "files/mkdir", tabs.sandbox_files_mkdir, name="sandbox-files-mkdir"),
    path(S + "files/delete", tabs.sandbox_files_delete, name="sandbox-files-delete"),
    path(S + "files/edit", tabs.sandbox_files_edit, name="sandbox-files-edit"),
    path(S + "exec", tabs.sandbox_exec, name="sandbox-exec"),
    path(S + "exec/run", tabs.sandbox_exec_run, name="sandbox-exec-run"),
    path(S + "exec/context", notebook.sandbox_exec_context, name="sandbox-exec-context"),
    path(S + "exec/history", tabs.sandbox_exec_history, name="sandbox-exec-history"),
    path(S + "exec/<str:execution_id>", tabs.sandbox_exec_detail, name="sandbox-exec-detail"),
    path(S + "logs", tabs.sandbox_logs, name="sandbox-logs"),
    # Preview URLs: the Ports tab (sandbox_ports.py)
    path(S + "ports", preview.sandbox_ports, name="sandbox-ports"),
    path(S + "ports/<str:port>/open", preview.sandbox_port_open, name="sandbox-port-open"),
    path(S + "ports/<str:port>/public", preview.sandbox_port_public, name="sandbox-port-public"),
]
