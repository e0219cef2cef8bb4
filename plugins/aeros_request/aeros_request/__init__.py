"""EasyRequest: one uniform, request-scoped accessor for params, headers, cookies, form and JSON."""

__all__: list[str] = []
