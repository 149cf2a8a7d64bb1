"""Interactive PTY sessions over Docker's exec API (in progress)."""


def open_tty(api, container: str, **options):
    raise NotImplementedError
