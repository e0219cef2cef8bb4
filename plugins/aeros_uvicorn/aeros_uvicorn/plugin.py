"""The uvicorn server backend (not implemented yet)."""


class UvicornPlugin:
    """Placeholder: registers no hooks yet."""
