"""PEM material written for libraries that take files only (docker-py's TLSConfig, the ssl
module's load_cert_chain): each file private (0600, created, never overwritten), in a directory the
caller made private and removes. No Docker types here: runtime/relay.py uses it too."""

import os


def write_private(path: str, text: str) -> None:
    descriptor = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(descriptor, "w") as out:
        out.write(text)
