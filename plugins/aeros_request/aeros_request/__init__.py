"""EasyRequest: one uniform, request-scoped accessor for params, headers, cookies, form and JSON."""

from .easy import EasyRequest, JSONBodyError

__all__ = ["EasyRequest", "JSONBodyError"]
