"""Server-side response cache (memory, filesystem, Redis) and Cache-Control for aeros."""

__all__: list[str] = []
