"""The live-server helpers, shared with `python -m reliability` (reliability/live_server.py)."""

from reliability.live_server import Server, free_port, group_processes, invoke, invoke_json, request, running_server

__all__ = ["Server", "free_port", "group_processes", "invoke", "invoke_json", "request", "running_server"]
