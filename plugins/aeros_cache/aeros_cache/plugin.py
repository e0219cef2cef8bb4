"""The aeros-cache plugin (not implemented yet)."""


class CachePlugin:
    """Placeholder: registers no hooks yet."""
