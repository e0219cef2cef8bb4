"""gzip, brotli and zstd response compression with Accept-Encoding negotiation for aeros.

``WebServer(__name__, compression=[Br(), Gzip()])``; see the plugin's README.
"""

from .codecs import DEFAULT_MIMETYPES, Algorithm, Br, Compression, Gzip, MissingCodecError, Zstd

__all__ = ["Algorithm", "Br", "Compression", "Gzip", "MissingCodecError", "Zstd"]
