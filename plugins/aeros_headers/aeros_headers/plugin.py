"""The aeros-headers plugin (not implemented yet)."""


class HeadersPlugin:
    """Placeholder: registers no hooks yet."""
