"""User-facing errors: the command line prints their message on one line and exits with status 2."""


class FebmError(Exception):
    """An error the user can fix; the message says what is wrong and how to fix it."""
