"""The aeros-compress plugin (not implemented yet)."""


class CompressPlugin:
    """Placeholder: registers no hooks yet."""
