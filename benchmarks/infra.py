"""Throwaway services for the benchmarks: a PostgreSQL cluster, a redis-server and uvicorn
processes, all on free loopback ports inside one temp dir that is removed at the end.

PostgreSQL runs with its defaults (fsync on, as in production; unlike the test suite's
cluster in scripts/_lib.sh) plus ``pg_stat_statements`` for the SQL counts. Never touches the
dev PostgreSQL (54329) or Redis (6390).
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psutil

ROOT = Path(__file__).resolve().parents[1]
BENCH_DIR = ROOT / "benchmarks"
PG_BINDIR = Path(os.environ.get("PG_BINDIR", "/usr/lib/postgresql/15/bin"))
PYTHON = sys.executable


SYSTEMD_UNIT = ROOT / "deploy" / "systemd" / "support-chat@.service"


def production_uvicorn_flags() -> list[str]:
    """uvicorn's flags in the production unit's ExecStart, without the app, --host and
    --port (the harness picks a loopback port): what the documented deployment runs."""
    try:
        lines = SYSTEMD_UNIT.read_text().splitlines()
    except OSError:
        return []
    for line in lines:
        if line.startswith("ExecStart=") and "uvicorn" in line:
            words = line.split()[2:]  # without ExecStart=.../uvicorn and the app
            out, skip = [], False
            for word in words:
                if skip:
                    skip = False
                    continue
                if word in ("--host", "--port", "--uds", "--fd"):
                    skip = True
                    continue
                out.append(word)
            return out
    return []


def uvicorn_deflate_default() -> bool:
    """Whether the production unit leaves permessage-deflate on (uvicorn's default)."""
    flags = production_uvicorn_flags()
    if "--ws-per-message-deflate" in flags:
        i = flags.index("--ws-per-message-deflate")
        return i + 1 < len(flags) and flags[i + 1].lower() in ("true", "1", "yes")
    return True


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def raise_nofile(wanted: int = 65536) -> int:
    """Raise RLIMIT_NOFILE for this process and its children (servers inherit it)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = max(soft, wanted)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, max(hard, target)))
    except (ValueError, OSError):
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def _wait_port(
    port: int, proc: subprocess.Popen[Any] | None, what: str, timeout: float = 30
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"{what} exited early (code {proc.returncode})")
        with socket.socket() as s:
            s.settimeout(0.2)
            if s.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"{what} did not listen on 127.0.0.1:{port} within {timeout} s")


@dataclass
class Services:
    """The temp dir and everything started in it."""

    dir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="support-chat-bench.")))
    pg_port: int = 0
    pg_data: Path | None = None
    redis_port: int = 0
    redis_proc: subprocess.Popen[Any] | None = None
    servers: list[subprocess.Popen[Any]] = field(default_factory=list)
    logs: dict[int, str] = field(default_factory=dict)
    pg_opts: str = ""

    def __post_init__(self) -> None:
        self.dir.chmod(0o755)

    # -- PostgreSQL ---------------------------------------------------------------------------

    def _as_pg(self, *args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
        cmd = list(args)
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "postgres", "--", *cmd]
        return subprocess.run(cmd, cwd=self.dir, check=True, text=True, capture_output=True, **kw)

    def start_postgres(self) -> str:
        pg_dir = self.dir / "pg"
        pg_dir.mkdir()
        if os.geteuid() == 0:
            shutil.chown(pg_dir, "postgres", "postgres")
        self.pg_data = pg_dir / "data"
        self.pg_port = free_port()
        self._as_pg(
            str(PG_BINDIR / "initdb"),
            "-D",
            str(self.pg_data),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C.UTF-8",
            "--no-sync",
        )
        opts = " ".join(
            [
                f"-p {self.pg_port}",
                f"-k {pg_dir}",
                "-c listen_addresses=127.0.0.1",
                # Everything else is PostgreSQL's default, durability included (fsync,
                # synchronous_commit, full_page_writes on; max_connections 100), as a
                # production server has it. The test suite's own cluster (scripts/_lib.sh)
                # turns those off; the benchmarks do not.
                # statement counts for "SQL per message" (an extension, no durability change)
                "-c shared_preload_libraries=pg_stat_statements",
                "-c pg_stat_statements.track=top",
                "-c pg_stat_statements.track_utility=on",
                "-c pg_stat_statements.max=10000",
            ]
        )
        self.pg_opts = opts
        self._as_pg(
            str(PG_BINDIR / "pg_ctl"),
            "-D",
            str(self.pg_data),
            "-l",
            str(pg_dir / "server.log"),
            "-w",
            "-t",
            "60",
            "-o",
            opts,
            "start",
        )
        import psycopg

        with psycopg.connect(self.admin_dsn, autocommit=True) as conn:
            conn.execute("CREATE DATABASE bench")
            conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        return self.database_url

    @property
    def admin_dsn(self) -> str:
        return f"postgresql://postgres@127.0.0.1:{self.pg_port}/postgres"

    @property
    def database_url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.pg_port}/bench"

    def postmaster_pid(self) -> int | None:
        if self.pg_data is None:
            return None
        try:
            return int((self.pg_data / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def stop_postgres(self) -> None:
        if self.pg_data is not None and (self.pg_data / "postmaster.pid").exists():
            with contextlib.suppress(subprocess.CalledProcessError):
                self._as_pg(
                    str(PG_BINDIR / "pg_ctl"),
                    "-D",
                    str(self.pg_data),
                    "-m",
                    "immediate",
                    "-w",
                    "stop",
                )

    # -- Redis --------------------------------------------------------------------------------

    def start_redis(self) -> str:
        rdir = self.dir / "redis"
        rdir.mkdir()
        self.redis_port = free_port()
        self.redis_proc = subprocess.Popen(
            [
                "redis-server",
                "--port",
                str(self.redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
                str(rdir),
                "--logfile",
                str(rdir / "redis.log"),
                "--daemonize",
                "no",
                "--maxclients",
                "20000",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.redis_port, self.redis_proc, "redis-server")
        return self.redis_url

    @property
    def redis_url(self) -> str:
        return f"redis://127.0.0.1:{self.redis_port}/0"

    # -- ASGI servers ---------------------------------------------------------------------------

    def start_uvicorn(
        self,
        app: str,
        env: dict[str, str],
        *,
        deflate: bool | None = None,
        name: str = "server",
        workers: int = 1,
    ) -> tuple[subprocess.Popen[Any], int]:
        """uvicorn serving ``app``: one process, or with ``workers`` > 1 a supervisor and
        that many worker processes (``--workers``) sharing the port. ``deflate`` None keeps
        what the production unit says (uvicorn's default: permessage-deflate on)."""
        port = free_port()
        full_env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(BENCH_DIR), str(ROOT / "example_project"), str(ROOT / "src"), str(ROOT)]
            ),
            **env,
        }
        log = open(self.dir / f"{name}-{port}.log", "w")  # noqa: SIM115
        cmd = [
            PYTHON,
            "-m",
            "uvicorn",
            app,
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--no-access-log",
            "--backlog",
            "4096",
            # the flags of deploy/systemd/support-chat@.service (--ws websockets-sansio, ...)
            *production_uvicorn_flags(),
        ]
        if deflate is not None:
            cmd += ["--ws-per-message-deflate", "true" if deflate else "false"]
        if workers > 1:
            cmd += ["--workers", str(workers)]
        proc = subprocess.Popen(
            cmd, cwd=ROOT / "example_project", env=full_env, stdout=log, stderr=subprocess.STDOUT
        )
        self.servers.append(proc)
        self.logs[proc.pid] = log.name
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"uvicorn {app} exited early; see {log.name}")
            try:
                urllib.request.urlopen(f"http://127.0.0.1:{port}/__bench_ready__", timeout=2)
                break
            except urllib.error.HTTPError:
                break  # any HTTP answer means it is up
            except OSError:
                time.sleep(0.2)
        else:
            proc.kill()
            raise RuntimeError(f"uvicorn {app} did not answer within 60 s; see {log.name}")
        return proc, port

    def start_email_worker(self, env: dict[str, str]) -> subprocess.Popen[Any]:
        """``manage.py db_worker``, as deploy/systemd/support-chat-worker.service runs it:
        it sends (or skips) the email rows that fall due during the run, so later arms do
        not meet a backlog of pending rows a production site would not have."""
        full_env = {
            **os.environ,
            "PYTHONPATH": os.pathsep.join(
                [str(BENCH_DIR), str(ROOT / "example_project"), str(ROOT / "src"), str(ROOT)]
            ),
            **env,
        }
        log = open(self.dir / "db_worker.log", "w")  # noqa: SIM115
        proc = subprocess.Popen(
            [PYTHON, "manage.py", "db_worker"],
            cwd=ROOT / "example_project",
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        self.servers.append(proc)
        self.logs[proc.pid] = log.name
        return proc

    def stop_server(self, proc: subprocess.Popen[Any]) -> None:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc in self.servers:
            self.servers.remove(proc)

    # -- everything -----------------------------------------------------------------------------

    def stop_all(self) -> None:
        for proc in list(self.servers):
            with contextlib.suppress(Exception):
                self.stop_server(proc)
        if self.redis_proc is not None and self.redis_proc.poll() is None:
            self.redis_proc.terminate()
            try:
                self.redis_proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.redis_proc.kill()
        self.stop_postgres()
        if os.environ.get("KEEP_BENCH_DIR") != "1":
            shutil.rmtree(self.dir, ignore_errors=True)


# -- resource counters --------------------------------------------------------------------------


def proc_cpu(pid: int, include_reaped: bool = False) -> float:
    """CPU seconds (user+system) of one process; with ``include_reaped`` plus its live and
    already-reaped children (PostgreSQL backends come and go)."""
    try:
        p = psutil.Process(pid)
        t = p.cpu_times()
        total = t.user + t.system
        if include_reaped:
            total += t.children_user + t.children_system
            for child in p.children(recursive=True):
                try:
                    ct = child.cpu_times()
                    total += ct.user + ct.system
                except psutil.NoSuchProcess:
                    pass
        return total
    except psutil.NoSuchProcess:
        return 0.0


def proc_rss(pid: int) -> int:
    """RSS of a process and its live children (uvicorn ``--workers``: the supervisor and its
    workers; pages they share are counted once per process)."""
    try:
        p = psutil.Process(pid)
        total = p.memory_info().rss
        for child in p.children(recursive=True):
            with contextlib.suppress(psutil.NoSuchProcess):
                total += child.memory_info().rss
        return int(total)
    except psutil.NoSuchProcess:
        return 0


class PgCounters:
    """Statement counts of the ``bench`` database from pg_stat_statements (updated at the end
    of every statement, unlike pg_stat_database which is flushed lazily)."""

    def __init__(self, admin_dsn: str) -> None:
        import psycopg

        self.conn = psycopg.connect(admin_dsn, autocommit=True)

    def snapshot(self) -> dict[str, int]:
        rows = self.conn.execute(
            """
            SELECT upper(split_part(ltrim(s.query), ' ', 1)) AS verb,
                   s.query LIKE '%%FOR KEY SHARE OF x%%' AS fk_check,
                   sum(s.calls)::bigint
            FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
            WHERE d.datname = 'bench' GROUP BY 1, 2
            """
        ).fetchall()
        out = {"statements": 0, "roundtrips": 0, "commits": 0, "fk_checks": 0}
        for verb, fk_check, calls in rows:
            calls = int(calls)
            if fk_check:
                # PostgreSQL's own foreign-key checks: Django's FKs are DEFERRABLE INITIALLY
                # DEFERRED, so they run at COMMIT as top-level statements; not client round trips
                out["fk_checks"] += calls
                continue
            out["roundtrips"] += calls
            if verb in ("SELECT", "INSERT", "UPDATE", "DELETE", "WITH"):
                out["statements"] += calls
            elif verb == "COMMIT":
                out["commits"] += calls
        return out

    def reset(self) -> None:
        self.conn.execute("SELECT pg_stat_statements_reset()")

    def top(self, limit: int = 25) -> list[tuple[int, str]]:
        """The bench database's statements by calls: (calls, normalised query)."""
        rows = self.conn.execute(
            """
            SELECT s.calls, regexp_replace(s.query, '\\s+', ' ', 'g')
            FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid
            WHERE d.datname = 'bench' ORDER BY s.calls DESC LIMIT %s
            """,
            [limit],
        ).fetchall()
        return [(int(c), q) for c, q in rows]

    def close(self) -> None:
        self.conn.close()


def redis_commands(client: Any) -> int:
    """Total calls in INFO commandstats, without INFO itself (our own polling)."""
    stats = client.info("commandstats")
    return sum(
        int(v["calls"])
        for k, v in stats.items()
        if k.startswith("cmdstat_") and k != "cmdstat_info"
    )
