"""Start or stop a private redis-server for one tox env: ``tox_redis.py start|stop DIR``.

The server listens on the unix socket DIR/redis.sock only (no TCP port, so envs running in
parallel under ``tox -p`` never meet: Redis pub/sub ignores database numbers) and keeps nothing
on disk. tox.ini runs ``start`` in commands_pre and ``stop`` in commands_post.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path


def _ping(sock: Path) -> bool:
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as s:
            s.settimeout(1)
            s.connect(str(sock))
            s.sendall(b"PING\r\n")
            return s.recv(16).startswith(b"+PONG")
    except OSError:
        return False


def start(directory: Path) -> int:
    server = shutil.which("redis-server")
    if server is None:
        print("redis-server is not installed (apt-get install redis-server)", file=sys.stderr)
        return 1
    stop(directory)  # a server left over from an interrupted run
    directory.mkdir(parents=True, exist_ok=True)
    sock = directory / "redis.sock"
    sock.unlink(missing_ok=True)
    subprocess.run(
        [
            server,
            "--port",
            "0",
            "--unixsocket",
            str(sock),
            "--unixsocketperm",
            "700",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(directory),
            "--logfile",
            str(directory / "redis.log"),
            "--pidfile",
            str(directory / "redis.pid"),
            "--daemonize",
            "yes",
        ],
        check=True,
    )
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if _ping(sock):
            print(f"redis-server on unix://{sock}")
            return 0
        time.sleep(0.05)
    print(f"redis-server did not start; see {directory / 'redis.log'}", file=sys.stderr)
    return 1


def stop(directory: Path) -> int:
    pidfile = directory / "redis.pid"
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return 0
    try:
        # A stale pidfile may name a process that is no redis-server any more: leave it alone.
        if "redis" not in Path(f"/proc/{pid}/comm").read_text():
            raise ProcessLookupError
        os.kill(pid, signal.SIGTERM)
        for _ in range(100):
            os.kill(pid, 0)
            time.sleep(0.05)
    except (ProcessLookupError, FileNotFoundError):
        pass
    pidfile.unlink(missing_ok=True)
    (directory / "redis.sock").unlink(missing_ok=True)
    return 0


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] not in {"start", "stop"}:
        sys.exit(__doc__)
    action = start if sys.argv[1] == "start" else stop
    sys.exit(action(Path(sys.argv[2])))
