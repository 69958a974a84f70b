"""What a test needs to start one of our processes (daphne, a Celery worker, a command) as a subprocess."""

from __future__ import annotations

import socket
import struct
from pathlib import Path
from urllib.parse import quote

from django.db import connection


def free_port() -> int:
    """A TCP port nothing listens on now, for a server a test starts."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def database_url() -> str:
    """DATABASE_URL of the test database this process uses, for a child process to use the same one.

    The embedded PostgreSQL listens on a unix socket: its directory arrives as HOST or, parsed from the
    stack's ``?host=`` URL, as OPTIONS["host"]; either way it goes back into the query string.
    """
    db = connection.settings_dict
    options = db.get("OPTIONS") or {}
    credentials = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host = str(db.get("HOST") or options.get("host") or "")
    port = str(db.get("PORT") or options.get("port") or "")
    name = db["NAME"]
    if host.startswith("/"):
        query = f"?host={host}" + (f"&port={port}" if port else "")
        return f"postgres://{credentials}@/{name}{query}"
    return f"postgres://{credentials}@{host}{':' + str(port) if port else ''}/{name}"


# --- Headless Chromium (tests/browser) ----------------------------------------------------------------

# Debian's package (scripts/install-browser.sh); Playwright drives that binary and never downloads browsers.
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]


def png_size(data: bytes) -> tuple[int, int]:
    """Width and height of a PNG screenshot (from its IHDR chunk)."""
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG"
    width, height = struct.unpack(">II", data[16:24])
    return width, height
