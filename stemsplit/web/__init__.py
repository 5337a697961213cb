"""``stemsplit serve``: a local web page to drop a song, hear and see its stems, and the HTTP API behind it.

The page and any script use the same API (see :mod:`stemsplit.web.server` and docs/web.md). The server is a
client of the library's :class:`~stemsplit.Separator`, nothing more: jobs run one at a time on a worker thread,
with the models loaded once per process.

Examples
--------
>>> from stemsplit.web import ServerConfig, serve
>>> serve(ServerConfig(port=8000))          # doctest: +SKIP
"""

from __future__ import annotations

from .config import ServerConfig
from .server import create_app, serve, serve_in_thread

__all__ = ["ServerConfig", "create_app", "serve", "serve_in_thread"]
