"""The live-server helpers, shared with the benchmarks and `python -m reliability` (support/live_server.py)."""

from support.live_server import (
    READY_MARK,
    Server,
    free_port,
    group_processes,
    invoke,
    invoke_json,
    request,
    running_server,
)

__all__ = ["READY_MARK", "Server", "free_port", "group_processes", "invoke", "invoke_json", "request", "running_server"]
