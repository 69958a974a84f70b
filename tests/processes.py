"""What a test needs to start one of our processes (daphne, a Celery worker, a command) as a subprocess."""

from __future__ import annotations

from urllib.parse import quote

from django.db import connection


def database_url() -> str:
    """DATABASE_URL of the test database this process uses, for a child process to use the same one.

    The embedded PostgreSQL listens on a unix socket (HOST is a directory), which goes in the query string.
    """
    db = connection.settings_dict
    credentials = quote(db["USER"] or "", safe="")
    if db.get("PASSWORD"):
        credentials += ":" + quote(db["PASSWORD"], safe="")
    host, port, name = db.get("HOST") or "", db.get("PORT") or "", db["NAME"]
    if host.startswith("/"):
        query = f"?host={host}" + (f"&port={port}" if port else "")
        return f"postgres://{credentials}@/{name}{query}"
    return f"postgres://{credentials}@{host}{':' + str(port) if port else ''}/{name}"
