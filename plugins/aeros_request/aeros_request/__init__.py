"""EasyRequest: one uniform, request-scoped accessor for params, headers, cookies, form and JSON."""

from .easy import EasyRequest, FormBodyError, JSONBodyError

__all__ = ["EasyRequest", "FormBodyError", "JSONBodyError"]
