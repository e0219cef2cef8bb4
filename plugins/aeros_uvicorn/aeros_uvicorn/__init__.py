"""Serve aeros apps with uvicorn."""

__all__: list[str] = []
