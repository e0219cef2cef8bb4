"""Global headers, CORS and security headers for aeros.

Installed, the plugin takes three ``WebServer(...)`` keywords (``global_headers=``, ``cors=``,
``security_headers=``) and gives :class:`Cors`, a policy that is also a per-route decorator.
"""

from .cors import Cors
from .security import DEFAULT_SECURITY_HEADERS

__all__ = ["Cors"]
