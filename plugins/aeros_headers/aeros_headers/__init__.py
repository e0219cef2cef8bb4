"""Global headers, CORS and security headers for aeros."""

__all__: list[str] = []
