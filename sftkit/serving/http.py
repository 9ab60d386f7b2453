"""Binding and running an ASGI app with uvicorn (shared by ``serve`` and ``arena``).

Loopback only by default: any other address needs an access key, so a model (or an arena) is
never opened to a network by accident.
"""

from __future__ import annotations

import ipaddress
import socket
import threading

from ..errors import EXIT_USAGE, SftkitError


def require_server_stack() -> None:
    """One-line error when the optional server packages are missing."""
    import importlib.util

    missing = [m for m in ("starlette", "uvicorn") if importlib.util.find_spec(m) is None]
    if missing:
        raise SftkitError(f"serving needs {' and '.join(missing)}, which are not installed",
                          hint="pip install 'sftkit[serve]'")


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_bind(host: str, key: str | None, *, option: str = "--api-key") -> None:
    """Refuse a non-loopback address without a key (exit 2)."""
    if not is_loopback(host) and not key:
        raise SftkitError(f"--host {host} would expose the server beyond this machine without a key",
                          hint=f"pass {option} KEY (or set SFTKIT_API_KEY), or keep the default 127.0.0.1",
                          exit_code=EXIT_USAGE)


def bind(host: str, port: int) -> socket.socket:
    """A listening socket on ``host:port`` (port 0 = any free port); one-line error when taken."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as err:
        sock.close()
        raise SftkitError(f"cannot listen on {host}:{port}: {err.strerror or err}",
                          hint="pick another --port (0 = any free port) or --host") from err
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def url_of(sock: socket.socket) -> str:
    host, port = sock.getsockname()[:2]
    return f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"


class BackgroundServer:
    """uvicorn serving ``app`` on ``sock`` in a thread (tests, benchmarks); :meth:`stop` ends it."""

    def __init__(self, app, sock: socket.socket):
        import uvicorn

        self.sock = sock
        self.url = url_of(sock)
        self.server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [sock]}, daemon=True)

    def start(self) -> "BackgroundServer":
        import time

        self.thread.start()
        for _ in range(500):
            if self.server.started:
                break
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)
        self.sock.close()


def run_forever(app, sock: socket.socket) -> None:
    """Serve ``app`` on ``sock`` until Ctrl-C."""
    import uvicorn

    uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off")).run(sockets=[sock])
