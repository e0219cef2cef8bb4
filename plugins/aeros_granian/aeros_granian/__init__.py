"""Serve aeros apps with granian (EXPERIMENTAL): ``app.run(server="granian")``."""

__all__: list[str] = []
