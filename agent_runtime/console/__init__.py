"""The console: a browser page over the public HTTP and WebSocket APIs, served as static
files by the HTTP function at ``/console/`` (locally by `agent-runtime dev`, deployed by
the stack's HTTP API), with no build step and nothing fetched from elsewhere.

It holds no authority of its own: every request it makes is one of the public API's,
carrying the credentials the user typed into it (a bearer token, kept in the tab's
``sessionStorage``), and each agent's `route` / `websocket` hook decides as for any other
client. Serving the files needs no credentials: they contain no data.
"""

from __future__ import annotations

import json
import os
from functools import cache
from importlib import resources

from agent_runtime import settings

#: The files served, by name below ``/console/``, with their media types.
MEDIA_TYPES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}


@cache
def asset(name: str) -> bytes | None:
    """A console file's bytes; None for any name that is not one of `MEDIA_TYPES`."""
    if name not in MEDIA_TYPES:
        return None
    return resources.files(__package__).joinpath(name).read_bytes()


def config() -> bytes:
    """``config.json``: where the console's browser reaches the WebSocket API (null when
    the stack has none)."""
    return json.dumps({"websocket_url": os.environ.get(settings.ENV_WEBSOCKET_URL) or None}).encode()


__all__ = ["MEDIA_TYPES", "asset", "config"]
