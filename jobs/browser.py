"""Open a URL in the user's browser once its server accepts connections.

Run detached by `ctae dashboard`: ``python -m jobs.browser URL [TIMEOUT_S]``.
"""

from __future__ import annotations

import socket
import sys
import time
import webbrowser
from urllib.parse import urlsplit


def wait_for_port(host: str, port: int, timeout_s: float) -> bool:
    """True as soon as ``host:port`` accepts a TCP connection, False after ``timeout_s``."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            time.sleep(0.25)
    return False


def main(argv: list[str]) -> int:
    """Wait for the server behind ``argv[0]``, then open it; 1 if it never answered."""
    url = argv[0]
    timeout_s = float(argv[1]) if len(argv) > 1 else 60.0
    parts = urlsplit(url)
    if not wait_for_port(parts.hostname or "127.0.0.1", parts.port or 80, timeout_s):
        return 1
    webbrowser.open(url)
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
