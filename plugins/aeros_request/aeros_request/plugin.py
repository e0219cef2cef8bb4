"""The aeros-request plugin (not implemented yet)."""


class RequestPlugin:
    """Placeholder: registers no hooks yet."""
