"""The one exception type the CLI turns into a readable message."""


class UserError(Exception):
    """Something the user can fix; the message says what and how."""
