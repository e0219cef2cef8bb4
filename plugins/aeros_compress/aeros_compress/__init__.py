"""gzip, brotli and zstd response compression with Accept-Encoding negotiation for aeros."""

__all__: list[str] = []
