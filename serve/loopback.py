"""One plain HTTP/1.1 request to a server on this host, with exactly the headers given (urllib would add a
form Content-Type): the launcher's checks through the serving port and its management calls, and, through
support.live_server, the tests, benchmarks and reliability run."""

from __future__ import annotations

import http.client


def loopback_address(host: str) -> str:
    """Where to reach a server bound to `host` from this host (a wildcard bind answers on loopback)."""
    return "127.0.0.1" if host in ("0.0.0.0", "") else "::1" if host == "::" else host


def request(host: str, port: int, method: str, target: str, body: bytes | None = None,
            headers: dict | None = None, timeout: float = 30) -> tuple[int, dict, bytes]:
    """(status, headers with lower-case names, body); OSError when the server cannot be reached."""
    connection = http.client.HTTPConnection(loopback_address(host), port, timeout=timeout)
    try:
        connection.request(method, target, body=body, headers=headers or {})
        response = connection.getresponse()
        return response.status, {k.lower(): v for k, v in response.getheaders()}, response.read()
    finally:
        connection.close()
