"""User-facing errors: one line that names the problem and what to do."""


class RaclError(Exception):
    """An error caused by the user's input or environment, shown without a traceback."""


def shown(value: object) -> str:
    """A user-given name for a message: as is when it is printable text, else its repr (one line)."""
    return value if isinstance(value, str) and value.isprintable() and value.strip() == value and value else repr(value)
