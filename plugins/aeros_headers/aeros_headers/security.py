"""The ``security_headers=`` preset: safe defaults, each overridable or removable."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from .fields import RawHeader, encode_header

HSTS = "Strict-Transport-Security"

#: What ``security_headers=True`` sends. HSTS only on responses served over TLS.
DEFAULT_SECURITY_HEADERS: dict[str, str] = {
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "strict-origin-when-cross-origin",
    "X-Frame-Options": "DENY",
    HSTS: "max-age=31536000; includeSubDomains",
}

#: The one key of the ``security_headers`` dict that is not a header name.
FORCE_HSTS = "force_hsts"

SecuritySetting = bool | Mapping[str, Any] | None


def security_headers(setting: SecuritySetting) -> tuple[list[RawHeader], list[RawHeader]]:
    """Return ``(over_http, over_https)`` encoded header lists for the ``security_headers=`` value.

    ``True`` gives the defaults; a dict starts from the defaults, sets the headers it names
    (``"Content-Security-Policy": "default-src 'self'"`` adds CSP, which is never on by default),
    removes the ones it maps to ``None``, and with ``"force_hsts": True`` sends HSTS over plain
    HTTP too (for an app behind a TLS-terminating proxy). ``False``/``None`` gives nothing.
    """
    if setting is None or setting is False:
        return [], []
    values: dict[str, tuple[str, Any]] = {
        name.lower(): (name, value) for name, value in DEFAULT_SECURITY_HEADERS.items()
    }
    force_hsts = False
    if setting is not True:
        if not isinstance(setting, Mapping):
            raise TypeError(f"security_headers= takes True, False or a dict of overrides, got {setting!r}")
        for name, value in setting.items():
            if name == FORCE_HSTS:
                force_hsts = bool(value)
            elif value is None:
                values.pop(str(name).lower(), None)
            else:
                values[str(name).lower()] = (name, value)
    https = [encode_header(name, value) for name, value in values.values()]
    http = [header for header in https if force_hsts or header[0] != HSTS.lower().encode()]
    return http, https
