"""Run every benchmark of issue #14 and write docs/performance.md.

    .venv/bin/python benchmarks/run.py            # the full run (~25 minutes)
    .venv/bin/python benchmarks/run.py --quick    # development: under two minutes

Starts its own PostgreSQL cluster (fsync on: PostgreSQL's defaults) and redis-server on
free loopback ports in a temp dir and stops them at the end. Every target (the plugin and
its floors) runs twice, interleaved (run 1 of every arm, then run 2); the machine's load is
recorded before and after each arm. Prints figures; never fails on time. See
benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import djangoside
import psutil
import redis
import report
from infra import (
    BENCH_DIR,
    ROOT,
    PgCounters,
    Services,
    proc_cpu,
    proc_rss,
    production_uvicorn_flags,
    raise_nofile,
    redis_commands,
    uvicorn_deflate_default,
)
from loadgen import LoadGen, Sock, Target
from restload import RestClient, rest_step

RESULTS_DIR = BENCH_DIR / "results"


@dataclass
class Config:
    mode: str
    runs: int = 2
    # WebSocket: N conversations (customer + staff socket each) and S lobby sockets
    conversations: int = 100
    lobbies: int = 5
    # CPU per message, one direction at a time: this many messages/s in all
    direction_rate: float = 40.0
    # sustained throughput: a ladder of offered rates (messages/s in all), stopped at the
    # first step that misses (p99 >= 250 ms from a message's first attempt, anything lost)
    ladder: list[float] = field(default_factory=lambda: [25, 50, 100, 200, 400, 800])
    duration: float = 6.0
    drain: float = 4.0
    abort_after: float = 4.0
    pushback_duration: float = 8.0
    # long enough for the longest retry_after the gate hands out (10 x SEND_RETRY_AFTER)
    pushback_drain: float = 30.0
    ramp_rate: float = 400.0
    warmup: float = 2.0
    # The idle baseline and the CPU-per-message steps measure whole windows of this many
    # seconds (None: as long as they take). Both servers do periodic work once per
    # heartbeat interval (10 s): the clients' heartbeats and, in the plugin, the
    # watchdog's sweep (presence, authorization re-check). A window of whole intervals
    # holds each of them exactly once per interval; a 2 s baseline held the sweep or not,
    # and the net CPU per message moved by a quarter with it.
    cpu_window: float | None = 10.0
    idle_baseline: float = 10.0
    idle_sockets: int = 2000
    # scale-out: uvicorn --workers W; the full WebSocket steps on the first, CPU per message
    # only on the others
    scaleout_full: list[int] = field(default_factory=lambda: [2])
    scaleout_cpu: list[int] = field(default_factory=lambda: [4])
    # REST: concurrent clients, each with its own user and conversation
    rest_clients: list[int] = field(default_factory=lambda: [100, 500])
    rest_history: int = 60
    rest_duration: float = 6.0
    rest_drain: float = 20.0
    floors: list[str] = field(default_factory=lambda: ["channels_pubsub"])
    profile_seconds: float = 6.0
    # parts run in run 1 only (quick mode, to stay under two minutes): "rest_max" (the
    # largest REST client count), "scaleout", "idle" (the idle-socket arms), "pushback"
    # (the one-worker pushback step)
    once: list[str] = field(default_factory=list)
    # the floors' sustained ladder on the scale-out worker counts (no target reads it; the
    # quick mode leaves it out)
    scaleout_floor_ladder: bool = True
    # the pushback step on the scale-out worker counts (the quick mode leaves it out)
    scaleout_pushback: bool = True
    # history pages at the largest REST client count (the quick mode leaves them out)
    rest_max_get: bool = True

    def runs_of(self, part: str) -> int:
        return 1 if part in self.once else self.runs


FULL = Config(mode="full")
QUICK = Config(
    mode="quick",
    conversations=24,
    direction_rate=60.0,
    ladder=[100, 200],
    duration=1.0,
    drain=1.0,
    abort_after=2.0,
    pushback_duration=1.0,
    pushback_drain=10.0,
    ramp_rate=800.0,
    warmup=0.3,
    cpu_window=None,
    idle_baseline=0.3,
    idle_sockets=150,
    rest_clients=[100, 500],
    rest_history=5,
    rest_duration=0.5,
    rest_drain=1.5,
    profile_seconds=1.0,
    once=["rest_max", "scaleout", "idle", "pushback"],
    scaleout_floor_ladder=False,
    scaleout_pushback=False,
    rest_max_get=False,
)

TARGET_LABELS = {
    "plugin": "django-support-chat (the example project, production settings)",
    "channels_pubsub": "bare Channels relay, RedisPubSubChannelLayer",
    "channels_core": "bare Channels relay, RedisChannelLayer",
    "rest_floor": "bare DRF view over the same tables (benchmarks/bench_urls.py)",
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- machine -------------------------------------------------------------------------------------


class CpuStat:
    """/proc/stat: the share of the machine's CPU time that was busy between two reads."""

    def __init__(self) -> None:
        self.last = self._read()

    @staticmethod
    def _read() -> tuple[float, float]:
        try:
            fields = [float(x) for x in Path("/proc/stat").read_text().split("\n")[0].split()[1:]]
        except OSError:
            return (0.0, 0.0)
        idle = fields[3] + (fields[4] if len(fields) > 4 else 0.0)  # idle + iowait
        return (sum(fields[:8]), idle)

    def busy_since(self, mark: tuple[float, float]) -> float | None:
        now = self._read()
        total, idle = now[0] - mark[0], now[1] - mark[1]
        return None if total <= 0 else 100.0 * (total - idle) / total


CPU = CpuStat()


def load_mark() -> dict[str, Any]:
    return {"loadavg": list(os.getloadavg()), "_stat": CpuStat._read(), "t": time.time()}


def load_span(before: dict[str, Any]) -> dict[str, Any]:
    """Load average before / after and the machine's CPU busy % over the span."""
    return {
        "loadavg_before": before["loadavg"],
        "loadavg_after": list(os.getloadavg()),
        "cpu_busy_pct": CPU.busy_since(before["_stat"]),
        "seconds": time.time() - before["t"],
    }


def idle_machine_sample(seconds: float = 1.0) -> dict[str, Any]:
    mark = load_mark()
    time.sleep(seconds)
    return load_span(mark)


def machine_info() -> dict[str, Any]:
    def version(module: str) -> str:
        from importlib.metadata import PackageNotFoundError
        from importlib.metadata import version as v

        try:
            return v(module)
        except PackageNotFoundError:
            return "-"

    cpu = platform.processor() or "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass

    def cmd(*args: str) -> str:
        try:
            return subprocess.run(args, capture_output=True, text=True, timeout=10).stdout.strip()
        except Exception:
            return "?"

    return {
        "cpu": cpu,
        "cores": psutil.cpu_count(logical=True),
        "ram_gb": round(psutil.virtual_memory().total / 2**30, 1),
        "os": " ".join(cmd("sh", "-c", ". /etc/os-release; echo $PRETTY_NAME").split()),
        "kernel": platform.release(),
        "python": platform.python_version(),
        "load_avg_start": os.getloadavg(),
        "versions": {
            name: version(name)
            for name in (
                "Django",
                "channels",
                "channels-redis",
                "redis",
                "uvicorn",
                "websockets",
                "psycopg",
                "djangorestframework",
                "bleach",
            )
        },
        "postgresql": cmd("/usr/lib/postgresql/15/bin/postgres", "--version"),
        "redis_server": cmd("redis-server", "--version").split(" sha=")[0],
        "git": cmd("git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"),
        "git_dirty_src": bool(cmd("git", "-C", str(ROOT), "status", "--porcelain", "src")),
    }


# -- probes -----------------------------------------------------------------------------------------


class Probe:
    """Counters read at the start and end of every measured window."""

    def __init__(self, svc: Services, pg: PgCounters, rclient: Any) -> None:
        self.svc, self.pg, self.r = svc, pg, rclient
        self.worker_pid: int | None = None
        self.me = psutil.Process()

    def __call__(self) -> dict[str, float]:
        t = self.me.cpu_times()
        out = {
            "wall": time.perf_counter(),
            "client_cpu": t.user + t.system,
            # with its children: uvicorn --workers runs the workers as child processes
            "worker_cpu": proc_cpu(self.worker_pid, include_reaped=True)
            if self.worker_pid
            else 0.0,
            "pg_cpu": proc_cpu(self.svc.postmaster_pid() or 0, include_reaped=True),
            "redis_cpu": proc_cpu(self.svc.redis_proc.pid) if self.svc.redis_proc else 0.0,
            "redis_cmds": float(redis_commands(self.r)),
            "worker_rss": float(proc_rss(self.worker_pid)) if self.worker_pid else 0.0,
            "redis_rss": float(proc_rss(self.svc.redis_proc.pid)) if self.svc.redis_proc else 0.0,
        }
        for k, v in self.pg.snapshot().items():
            out[f"sql_{k}"] = float(v)
        return out


# -- targets ----------------------------------------------------------------------------------------


class Fixtures:
    def __init__(self, convs: list[tuple[int, int]], staff: list[Any], lobbies: int) -> None:
        self.convs = convs
        self.staff_ids = [u.pk for u in staff]
        self.lobbies = lobbies
        self.tokens = djangoside.tokens_for([c for _, c in convs] + self.staff_ids)

    def plugin(
        self, port: int, name: str = "plugin", compression: str | None = "deflate"
    ) -> Target:
        base = f"ws://127.0.0.1:{port}"
        convs, tok, staff = self.convs, self.tokens, self.staff_ids
        return Target(
            name=name,
            kind="ws",
            customer_url=lambda i: f"{base}/ws/chat/user/{convs[i][0]}/?token={tok[convs[i][1]]}",
            staff_url=lambda i: (
                f"{base}/ws/chat/admin/{convs[i][0]}/?token={tok[staff[i % len(staff)]]}"
            ),
            lobby_url=lambda j: f"{base}/ws/chat/admin/?token={tok[staff[j % len(staff)]]}",
            compression=compression,
        )


def relay_target(port: int, name: str, compression: str | None = "deflate") -> Target:
    base = f"ws://127.0.0.1:{port}"
    return Target(
        name=name,
        kind="ws",
        customer_url=lambda i: f"{base}/ws/relay/conv/{i}/",
        staff_url=lambda i: f"{base}/ws/relay/conv/{i}/",
        lobby_url=lambda j: f"{base}/ws/relay/lobby/",
        compression=compression,
    )


def start_server(
    svc: Services,
    name: str,
    site_env: dict[str, str],
    *,
    workers: int = 1,
    deflate: bool | None = None,
) -> tuple[Any, int]:
    """Start the server of ``name``; returns (process, port). ``deflate`` None: what the
    production unit says."""
    label = f"{name}-w{workers}" + ("" if deflate is None else f"-deflate{int(deflate)}")
    if name == "plugin":
        return svc.start_uvicorn(
            "example.asgi:application", site_env, name=label, workers=workers, deflate=deflate
        )
    if name in ("channels_pubsub", "channels_core"):
        layer = "pubsub" if name == "channels_pubsub" else "core"
        return svc.start_uvicorn(
            "relay_asgi:application",
            {"REDIS_URL": svc.redis_url, "RELAY_LAYER": layer},
            name=label,
            workers=workers,
            deflate=deflate,
        )
    raise ValueError(name)


def make_target(name: str, fx: Fixtures, port: int) -> Target:
    return fx.plugin(port, name=name) if name == "plugin" else relay_target(port, name)


def start_target(
    svc: Services,
    name: str,
    fx: Fixtures,
    site_env: dict[str, str],
    *,
    workers: int = 1,
    deflate: bool | None = None,
) -> tuple[Target, Any]:
    proc, port = start_server(svc, name, site_env, workers=workers, deflate=deflate)
    return make_target(name, fx, port), proc


class Launcher:
    """Every server of the run, started at once at the beginning, while the fixtures are
    made, and all up before the first measurement: starting Django is the slowest part of an
    arm, and a server that has served nothing yet is as fresh as one started right before
    its arm. Idle servers (no sockets, no requests) cost no CPU worth measuring."""

    def __init__(self, svc: Services, site_env: dict[str, str]) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self.svc, self.site_env = svc, site_env
        self.pool = ThreadPoolExecutor(max_workers=24)
        self.futures: dict[Any, Any] = {}
        self.names: dict[Any, str] = {}

    def submit(self, key: Any, name: str, workers: int = 1, deflate: bool | None = None) -> None:
        self.names[key] = name
        self.futures[key] = self.pool.submit(
            start_server, self.svc, name, self.site_env, workers=workers, deflate=deflate
        )

    def wait_all(self) -> float:
        """Until every server answers and they have all gone quiet: a ``--workers`` server
        answers as soon as its first worker is up while the others still boot."""
        t = time.perf_counter()
        for f in self.futures.values():
            f.result()
        self.pool.shutdown()
        pids = [f.result()[0].pid for f in self.futures.values()]

        def cpu() -> float:
            return sum(proc_cpu(pid, include_reaped=True) for pid in pids)

        deadline = time.perf_counter() + 30
        last = cpu()
        while time.perf_counter() < deadline:
            time.sleep(0.5)
            now = cpu()
            if now - last < 0.05:  # under 10 % of one core, all servers together
                break
            last = now
        return time.perf_counter() - t

    def raw(self, key: Any) -> tuple[Any, int]:
        return self.futures[key].result()  # type: ignore[no-any-return]

    def get(self, key: Any, fx: Fixtures) -> tuple[Target, Any]:
        proc, port = self.raw(key)
        return make_target(self.names[key], fx, port), proc


def stop_target(svc: Services, proc: Any, rclient: Any) -> dict[str, Any]:
    svc.stop_server(proc)
    rclient.flushall()
    return server_log_errors(svc, proc)


def server_log_errors(svc: Services, proc: Any) -> dict[str, Any]:
    """Tracebacks and ERROR lines in a server's log (read after it stopped)."""
    path = svc.logs.get(proc.pid) if proc is not None else None
    if path is None or not Path(path).exists():
        return {"errors": 0, "first": []}
    lines = Path(path).read_text(errors="replace").splitlines()
    bad = [ln for ln in lines if "Traceback" in ln or "ERROR" in ln or "Error:" in ln]
    return {"errors": len(bad), "first": bad[:5]}


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


def brief(res: dict[str, Any]) -> str:
    lat = res["latency"]["all"]
    rej = sum(res.get("rejected", {}).values())
    return (
        f"offered {res['offered_rate']:.0f}/s, sent {res['sent']}, p50 {fmt(lat['p50'])} p99"
        f" {fmt(lat['p99'])} ms, lost {res['lost_messages']}, dup {res['duplicates']}, rejected"
        f" {rej}, errors {res['errors']}{' ABORTED' if res['aborted'] else ''}"
    )


def close_codes(gen: LoadGen) -> dict[str, int]:
    out: dict[str, int] = {}
    for sock in gen.socks:
        if sock.conn is not None and sock.closed_code is not None:
            out[str(sock.closed_code)] = out.get(str(sock.closed_code), 0) + 1
    return out


# -- WebSocket arms ------------------------------------------------------------------------------


async def idle_sockets(
    target: Target, count: int, cfg: Config, probe: Probe, offset: int = 0
) -> dict[str, Any]:
    """``count`` customer sockets, each in its own conversation, held idle: RSS per socket."""
    gen = LoadGen(target, 0, 0)
    warm = [Sock(offset + k, "c", offset + k) for k in range(10)]
    await gen.ramp(warm, rate=cfg.ramp_rate)
    await asyncio.sleep(0.3)
    base = proc_rss(probe.worker_pid)
    more = [Sock(offset + k, "c", offset + k) for k in range(10, count)]
    ramp = await gen.ramp(more, rate=cfg.ramp_rate)
    await asyncio.sleep(0.5)
    held = gen.open_count()
    window = await gen.measure_idle(cfg.idle_baseline, probe)
    rss = proc_rss(probe.worker_pid)
    await gen.close()
    return {
        "sockets": count,
        "held": held,
        "failed": ramp["failed"],
        "base_rss": base,
        "rss": rss,
        "rss_per_socket": (rss - base) / max(1, held - 10),
        "worker_cpu_per_s": window["counters"].get("worker_cpu", 0) / window["seconds"],
        "close_codes": close_codes(gen),
        "errors": gen.connect_errors[:3],
    }


async def pay_first_use(target: Target, cfg: Config) -> None:
    """First-use costs (imports, the database pool, per-thread state) paid by a few sockets
    before an RSS baseline, so "RSS per socket under load" is per socket, not per server."""
    pre = LoadGen(target, 2, 1)
    await pre.ramp(pre.plan_sockets(), rate=cfg.ramp_rate)
    await pre.step(0, cfg.warmup, cfg.drain, None, total_rate=20.0, abort_after=None)
    await pre.close()


async def ws_arm(
    target: Target,
    cfg: Config,
    probe: Probe,
    *,
    ladder: bool = True,
    pushback: bool = False,
    idle_count: int = 0,
    profile_path: Path | None = None,
    cpu: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """One server's WebSocket steps: (idle sockets,) ramp, idle baseline, CPU per message
    each way, the sustained ladder, (pushback,) (a profiled step). ``cpu``: the idle
    baseline and CPU-per-message steps measured already (``cpu_windows``), kept as they
    are instead."""
    out: dict[str, Any] = {"target": target.name}
    if idle_count:
        out["idle"] = await idle_sockets(target, idle_count, cfg, probe, offset=cfg.conversations)
        log(
            f"    idle: {out['idle']['held']}/{idle_count} sockets, "
            f"{out['idle']['rss_per_socket'] / 1000:.1f} KB/socket"
        )
    await pay_first_use(target, cfg)
    await asyncio.sleep(0.2)
    gen = LoadGen(target, cfg.conversations, cfg.lobbies)
    rss0 = proc_rss(probe.worker_pid)
    ramp = await gen.ramp(gen.plan_sockets(), rate=cfg.ramp_rate)
    out.update(sockets=ramp["opened"], ramp=ramp, rss_before=rss0)
    # warm-up, not measured: a fresh worker's first messages pay for first-use work (the
    # database pool's connections, per-thread state, lazy imports)
    await gen.each_once()
    await gen.step(0, cfg.warmup, cfg.drain, None, total_rate=cfg.direction_rate, abort_after=None)
    await asyncio.sleep(0.3)
    stored: list[str] = []

    async def step(kind: str, every: bool = False, **kw: Any) -> dict[str, Any]:
        probe.pg.reset()
        res = await gen.step(
            0, kw.pop("duration", cfg.duration), kw.pop("drain", cfg.drain), probe, **kw
        )
        res["kind"] = kind
        res["rss_after"] = proc_rss(probe.worker_pid)
        if target.name == "plugin":
            # ``every``: (pushback) every message must end up stored, its retries given the
            # time; else every acknowledged one (a failed ladder step may end with retries
            # still waiting, never sent)
            ids = gen.last_client_ids if every else gen.last_acked_client_ids
            stored.extend(ids)
            res["_client_ids"] = list(ids)
            res["stored_scope"] = "every message" if every else "acknowledged"
        log(f"    {kind}: {brief(res)}")
        await asyncio.sleep(0.1)
        return res

    if cpu is not None:
        out.update(cpu)
        stored.extend(cpu.get("_stored_ids", []))
        out.pop("_stored_ids", None)
    else:
        out["idle_baseline"] = await gen.measure_idle(cfg.idle_baseline, probe)
        for key, kind, sides in CPU_STEPS:
            out[key] = await step(
                kind,
                total_rate=cfg.direction_rate,
                sides=sides,
                abort_after=cfg.abort_after,
                window=cfg.cpu_window,
            )
    out["ladder"] = []
    if ladder:
        for rate in cfg.ladder:
            # retrying as the widget does: a refused send counts in p99 (from its first
            # attempt) and as lost if it is never stored
            res = await step(
                f"ladder {rate:g}/s", total_rate=rate, retry=True, abort_after=cfg.abort_after
            )
            out["ladder"].append(res)
            if not report.passes(res):
                break
        ok = [r["offered_rate"] for r in out["ladder"] if report.passes(r)]
        out["sustained"] = max(ok) if ok else 0.0
    if pushback:
        # twice this arm's own sustained rate (twice the ladder's first step if none passed)
        rate = 2 * (out.get("sustained") or cfg.ladder[0])
        out["pushback"] = await step(
            f"pushback {rate:g}/s (retrying)",
            total_rate=rate,
            retry=True,
            every=True,
            abort_after=None,
            duration=cfg.pushback_duration,
            drain=cfg.pushback_drain,
        )
    if profile_path is not None:
        rate = max(out.get("sustained") or 0.0, cfg.ladder[0])
        spy = start_pyspy(probe.worker_pid, profile_path, cfg.profile_seconds)
        out["profile_step"] = await step(
            f"profiled {rate:g}/s",
            total_rate=rate,
            abort_after=cfg.abort_after,
            duration=cfg.profile_seconds + 0.5,
        )
        if spy is not None:
            await asyncio.get_running_loop().run_in_executor(None, spy.wait)
    out["rss_under_load"] = proc_rss(probe.worker_pid)
    out["sockets_closed"] = close_codes(gen)
    out["connect_errors"] = gen.connect_errors[:5]
    await gen.close()
    out["_stored_ids"] = stored
    return out


CPU_STEPS = (("c2s", "customer->staff", "c"), ("s2c", "staff->customer", "s"))


async def cpu_windows(
    targets: dict[str, Target], pids: dict[str, int], cfg: Config, probe: Probe
) -> dict[str, dict[str, Any]]:
    """CPU per message of every target, measured side by side: the sockets of all of them
    open at once, then each target's idle baseline and each direction's step in turn,
    plugin and floor one after the other, so a change in the machine's load (another job,
    the disk) falls on both arms alike rather than on whichever ran at the time."""
    gens: dict[str, LoadGen] = {}
    out: dict[str, dict[str, Any]] = {name: {} for name in targets}
    try:
        for name, target in targets.items():
            await pay_first_use(target, cfg)
            await asyncio.sleep(0.2)
            # the fresh server's baseline for "RSS per socket under load" (ws_arm reads the
            # RSS at its end): its own ramp would find this phase's freed memory to reuse
            out[name]["rss_before"] = proc_rss(pids[name])
            gen = gens[name] = LoadGen(target, cfg.conversations, cfg.lobbies)
            out[name]["cpu_ramp"] = await gen.ramp(gen.plan_sockets(), rate=cfg.ramp_rate)
            await gen.each_once()
            await gen.step(
                0, cfg.warmup, cfg.drain, None, total_rate=cfg.direction_rate, abort_after=None
            )
        await asyncio.sleep(0.3)
        for name, gen in gens.items():
            probe.worker_pid = pids[name]
            out[name]["idle_baseline"] = await gen.measure_idle(cfg.idle_baseline, probe)
        for key, kind, sides in CPU_STEPS:
            for name, gen in gens.items():
                probe.worker_pid = pids[name]
                probe.pg.reset()
                res = await gen.step(
                    0,
                    cfg.duration,
                    cfg.drain,
                    probe,
                    total_rate=cfg.direction_rate,
                    sides=sides,
                    abort_after=cfg.abort_after,
                    window=cfg.cpu_window,
                )
                res["kind"] = kind
                if name == "plugin":
                    res["_client_ids"] = list(gen.last_acked_client_ids)
                    res["stored_scope"] = "acknowledged"
                    out[name].setdefault("_stored_ids", []).extend(gen.last_acked_client_ids)
                out[name][key] = res
                log(f"    {name} {kind}: {brief(res)}")
                await asyncio.sleep(0.1)
    finally:
        for gen in gens.values():
            await gen.close()
    return out


def cpu_order(names: list[str], run: int) -> list[str]:
    """Which target measures first: the plugin in odd runs, the floor in even ones."""
    return list(names) if run % 2 else list(reversed(names))


def measure_cpu(
    servers: dict[str, tuple[Target, Any]], cfg: Config, probe: Probe
) -> dict[str, dict[str, Any]]:
    names = ", ".join(servers)
    log(f"  CPU per message, side by side: {names}")
    targets = {name: target for name, (target, _proc) in servers.items()}
    pids = {name: proc.pid for name, (_target, proc) in servers.items()}
    return asyncio.run(cpu_windows(targets, pids, cfg, probe))


def run_ws_arm(
    svc: Services,
    name: str,
    fx: Fixtures,
    site_env: dict[str, str],
    cfg: Config,
    probe: Probe,
    rclient: Any,
    *,
    workers: int = 1,
    run: int = 1,
    server: tuple[Target, Any] | None = None,
    keep: bool = False,
    **kw: Any,
) -> dict[str, Any]:
    """One arm; on a server of its own, or on ``server`` (started beforehand; with ``keep``
    left running for the next run)."""
    log(f"  run {run}: {name} on {workers} worker(s)")
    mark = load_mark()
    target, proc = server or start_target(svc, name, fx, site_env, workers=workers)
    probe.worker_pid = proc.pid
    try:
        res = asyncio.run(ws_arm(target, cfg, probe, **kw))
    finally:
        res_log = None if keep else stop_target(svc, proc, rclient)
        if keep:
            rclient.flushall()
    res.update(
        run=run,
        workers=workers,
        server_log=res_log,
        load=load_span(mark),
        fresh_server=not keep,
    )
    if name == "plugin":
        # This arm's email windows fall due EMAIL_DELAY (120 s) after they opened, and the
        # email worker's burst (a row per staff member per conversation) would land in
        # whichever arm runs then: the relay's or the next plugin arm's CPU steps.
        res["email_backlog_dropped"] = djangoside.drop_email_backlog()
        log(f"    dropped this arm's {res['email_backlog_dropped']} pending email rows")
    ids = res.pop("_stored_ids")
    if ids:
        res["stored"] = djangoside.stored_once(ids)
        for key in ("c2s", "s2c", "pushback", "profile_step"):
            if key in res:
                res[key]["stored"] = djangoside.stored_once(res[key].pop("_client_ids"))
        for st in res.get("ladder", []):
            st["stored"] = djangoside.stored_once(st.pop("_client_ids"))
        log(f"    stored once: {res['stored']}")
    for key in ("c2s", "s2c", "pushback", "profile_step"):
        res.get(key, {}).pop("_client_ids", None)
    for st in res.get("ladder", []):
        st.pop("_client_ids", None)
    return res


def run_idle_arm(
    svc: Services,
    name: str,
    fx: Fixtures,
    site_env: dict[str, str],
    cfg: Config,
    probe: Probe,
    rclient: Any,
    *,
    deflate: bool,
    run: int,
    server: tuple[Target, Any] | None = None,
) -> dict[str, Any]:
    log(f"  run {run}: {name} idle sockets, permessage-deflate {'on' if deflate else 'off'}")
    mark = load_mark()
    target, proc = server or start_target(svc, name, fx, site_env, deflate=deflate)
    probe.worker_pid = proc.pid
    try:
        res = asyncio.run(idle_sockets(target, cfg.idle_sockets, cfg, probe))
    finally:
        res_log = stop_target(svc, proc, rclient)
    log(f"    {res['held']}/{cfg.idle_sockets} held, {res['rss_per_socket'] / 1000:.1f} KB/socket")
    return {
        "target": name,
        "deflate": deflate,
        "run": run,
        **res,
        "server_log": res_log,
        "load": load_span(mark),
    }


# -- REST ------------------------------------------------------------------------------------------


def rest_phase(
    svc: Services, cfg: Config, launcher: Launcher, probe: Probe, rclient: Any
) -> dict[str, Any]:
    """Plugin and floor on one server (the benchmark's URLconf mounts both), each arm twice,
    interleaved: for every client count and operation, plugin then floor, run 1 then run 2."""
    most = max(cfg.rest_clients)
    t = time.perf_counter()
    fixtures = djangoside.rest_clients(most, cfg.rest_history)
    djangoside.close_db()
    log(
        f"  {most} REST clients with {cfg.rest_history} messages each in {time.perf_counter() - t:.1f} s"
    )
    plugin_clients = [
        RestClient(
            get_path=f"/api/chat/conversations/{f['conversation']}/messages/",
            post_path=f"/api/chat/conversations/{f['conversation']}/messages/",
            cookie=f["cookie"],
            csrf=f["csrf"],
        )
        for f in fixtures
    ]
    floor_clients = [
        RestClient(
            get_path=f"/bench/floor/conversations/{f['conversation']}/messages/",
            post_path=f"/bench/floor/conversations/{f['floor_conversation']}/messages/",
        )
        for f in fixtures
    ]
    waited = launcher.wait_all()
    log(f"  every server of the run is up ({waited:.1f} s after the fixtures)")
    proc, port = launcher.raw("rest")
    probe.worker_pid = proc.pid
    steps: list[dict[str, Any]] = []
    try:
        # warm up both arms and both operations (imports, URL and template caches, the
        # database pool's connections); not measured
        # The POST warm-up covers the smaller step's clients: a conversation's first message
        # also schedules its email notification, later ones find it pending, so both runs
        # then measure the same state
        warm = min(cfg.rest_clients)
        for clients in (plugin_clients, floor_clients):
            asyncio.run(rest_step(port, clients[:warm], "POST", 0.0, cfg.rest_drain, per_client=1))
            asyncio.run(rest_step(port, clients[:20], "GET", 0.2, 1.0))
        for run in range(1, cfg.runs + 1):
            for n in cfg.rest_clients:
                if n == most and run > cfg.runs_of("rest_max"):
                    continue
                for method in ("POST", "GET"):
                    if method == "GET" and n == most and not cfg.rest_max_get:
                        continue
                    for arm, clients in (("plugin", plugin_clients), ("rest_floor", floor_clients)):
                        mark = load_mark()
                        probe.pg.reset()
                        res = asyncio.run(
                            rest_step(
                                port,
                                clients[:n],
                                method,
                                cfg.rest_duration,
                                cfg.rest_drain,
                                probe,
                                seed=run,
                            )
                        )
                        ids = res.pop("_client_ids")
                        if method == "POST":
                            res["stored"] = djangoside.stored_once(ids)
                        res.update(arm=arm, run=run, load=load_span(mark))
                        steps.append(res)
                        log(
                            f"  run {run}: {arm:<10} {method:<4} {n:>3} clients:"
                            f" {res['req_per_s']:.0f} req/s, {res['statuses']}, p50"
                            f" {fmt(res['latency']['p50'])} p99 {fmt(res['latency']['p99'])} ms,"
                            f" worker CPU {cpu_ms_per_ok(res):.1f} ms/2xx"
                            + (f", stored {res['stored']}" if method == "POST" else "")
                        )
        # the profile: extra steps, so py-spy's own CPU is in no measured figure
        profiles = {}
        for method in ("POST", "GET"):
            path = RESULTS_DIR / f"profile-{cfg.mode}-rest-{method.lower()}.txt"
            spy = start_pyspy(proc.pid, path, cfg.profile_seconds)
            asyncio.run(
                rest_step(
                    port,
                    plugin_clients[: min(cfg.rest_clients)],
                    method,
                    cfg.profile_seconds + 0.5,
                    cfg.rest_drain,
                )
            )
            if spy is not None:
                spy.wait()
            profiles[method] = {"path": str(path.relative_to(ROOT)), **summarize_profile(path)}
    finally:
        server_log = stop_target(svc, proc, rclient)
    return {
        "steps": steps,
        "server_log": server_log,
        "profiles": profiles,
        "history_rows": cfg.rest_history,
    }


def cpu_ms_per_ok(res: dict[str, Any]) -> float:
    return 1000.0 * res["counters"].get("worker_cpu", 0.0) / max(1, res["ok"])


def start_pyspy(pid: int | None, path: Path, seconds: float) -> subprocess.Popen[Any] | None:
    exe = Path(sys.executable).parent / "py-spy"
    if pid is None or not exe.exists():
        return None
    return subprocess.Popen(
        [
            str(exe),
            "record",
            "--pid",
            str(pid),
            "--duration",
            str(int(seconds)),
            "--rate",
            "200",
            "--format",
            "raw",
            "--output",
            str(path),
            "--nonblocking",
            "--gil",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


def summarize_profile(path: Path, top: int = 18) -> dict[str, Any]:
    """py-spy raw (collapsed) stacks -> inclusive and self shares per frame."""
    inclusive: dict[str, int] = {}
    selfs: dict[str, int] = {}
    total = 0
    idle = 0
    try:
        lines = path.read_text().splitlines()
    except OSError:
        return {"error": f"no profile at {path}"}
    for line in lines:
        stack, _, count_s = line.rpartition(" ")
        try:
            count = int(count_s)
        except ValueError:
            continue
        frames = [f for f in stack.split(";") if f]
        total += count
        if frames and ("select" in frames[-1] and "selectors.py" in frames[-1]):
            idle += count
        seen = set()
        for f in frames:
            key = _frame_key(f)
            if key not in seen:
                inclusive[key] = inclusive.get(key, 0) + count
                seen.add(key)
        if frames:
            k = _frame_key(frames[-1])
            selfs[k] = selfs.get(k, 0) + count
    busy = max(1, total - idle)

    def table(d: dict[str, int], keep: Any) -> list[tuple[str, float]]:
        rows = sorted(((k, v) for k, v in d.items() if keep(k)), key=lambda kv: -kv[1])
        return [(k, 100.0 * v / busy) for k, v in rows[:top]]

    def ours(k: str) -> bool:
        return "django_support_chat" in k

    def interesting(k: str) -> bool:
        plumbing = (
            "<module>",
            "_run_once",
            "run_forever",
            "run (",
            "_bootstrap",
            "worker (",
            "<frozen runpy>",
            "click/",
            "uvicorn/main.py",
            "uvicorn/server.py",
            "asyncio/runners.py",
            "base_events.py",
            "threading.py",
            "concurrent/futures/thread.py",
        )
        return not any(s in k for s in plumbing)

    return {
        "samples": total,
        "idle_share": 100.0 * idle / max(1, total),
        "inclusive_ours": table(inclusive, ours),
        "inclusive_all": table(inclusive, interesting),
        "self_all": table(selfs, lambda k: True),
        "inclusive_map": {k: 100.0 * v / busy for k, v in inclusive.items() if v / busy >= 0.002},
    }


def _frame_key(frame: str) -> str:
    # "func (path/to/file.py:123)" -> "func (file.py)" with the package-relative path
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    path = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", "src/", "lib/python3"):
        if marker in path:
            path = path.split(marker, 1)[1]
            break
    return f"{name} ({path})"


# -- main ------------------------------------------------------------------------------------------


PHASES = ("rest", "ws", "scaleout", "idle", "profile")


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="development mode, under 2 minutes")
    parser.add_argument(
        "--skip", default="", help="comma-separated phases to skip: " + ",".join(PHASES)
    )
    parser.add_argument("--runs", type=int, help="runs of every arm (default 2)")
    parser.add_argument(
        "--floors", help="WebSocket floors, comma-separated: channels_pubsub,channels_core"
    )
    parser.add_argument("--out", default=str(ROOT / "docs" / "performance.md"))
    parser.add_argument("--json", help="results JSON (default benchmarks/results/<mode>.json)")
    parser.add_argument("--no-report", action="store_true", help="only write the JSON")
    parser.add_argument(
        "--report-from",
        metavar="JSON",
        help="only rewrite the report from an earlier run's results JSON",
    )
    args = parser.parse_args()
    if args.report_from:
        results = json.loads(Path(args.report_from).read_text())
        results["targets_eval"] = report.evaluate(results)
        report.write(results, Path(args.out))
        log(f"wrote {args.out} from {args.report_from}")
        return 0

    cfg = QUICK if args.quick else FULL
    if args.runs:
        cfg.runs = args.runs
    if args.floors:
        cfg.floors = [f for f in args.floors.split(",") if f]
    skip = set(filter(None, args.skip.split(",")))

    started = time.time()
    nofile = raise_nofile(65536)
    results: dict[str, Any] = {
        "config": asdict(cfg),
        "machine": machine_info(),
        "machine_idle_sample": idle_machine_sample(0.5),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nofile": nofile,
        "labels": TARGET_LABELS,
        "uvicorn_flags": production_uvicorn_flags(),
        "deflate_default": uvicorn_deflate_default(),
    }
    log(
        f"mode {cfg.mode}; {results['machine']['cpu']}, {results['machine']['cores']} cores; "
        f"load average {results['machine']['load_avg_start']}, CPU busy "
        f"{results['machine_idle_sample']['cpu_busy_pct']:.0f} % over 0.5 s"
    )
    svc = Services()
    RESULTS_DIR.mkdir(exist_ok=True)
    json_path = Path(args.json) if args.json else RESULTS_DIR / f"{cfg.mode}.json"
    static_root = tempfile.mkdtemp(prefix="bench-static.", dir=svc.dir)
    try:
        log(f"starting PostgreSQL and redis-server in {svc.dir}")
        svc.start_postgres()
        svc.start_redis()
        results["pg_opts"] = svc.pg_opts
        site_env = djangoside.site_env(svc.database_url, svc.redis_url, static_root)
        djangoside.setup(site_env)
        results["settings"] = djangoside.settings_summary()
        log(f"settings: {results['settings']}")
        email_worker = svc.start_email_worker(site_env)
        results["email_worker"] = "manage.py db_worker (deploy/systemd/support-chat-worker.service)"
        log(f"email worker: manage.py db_worker, pid {email_worker.pid}")
        rclient = redis.Redis.from_url(svc.redis_url)
        pg = PgCounters(svc.admin_dsn)
        probe = Probe(svc, pg, rclient)

        ws_targets = ["plugin", *cfg.floors]
        deflate_default = results["deflate_default"]
        idle_variants = [deflate_default, not deflate_default][: 1 if cfg.mode == "quick" else 2]
        launcher = Launcher(svc, site_env)
        if "rest" not in skip:
            launcher.submit("rest", "plugin")
        if "ws" not in skip:
            for r in range(1, cfg.runs + 1):
                for n in ws_targets:
                    launcher.submit(("ws", r, n), n)
        if "scaleout" not in skip:
            for w in cfg.scaleout_full + cfg.scaleout_cpu:
                for n in ws_targets:
                    launcher.submit(("scaleout", w, n), n, workers=w)
        if "idle" not in skip:
            for r in range(1, cfg.runs_of("idle") + 1):
                for d in idle_variants:
                    for n in ws_targets:
                        launcher.submit(("idle", r, n, d), n, deflate=d)
        log(f"starting {len(launcher.futures)} servers while the fixtures are made")

        n_staff = cfg.lobbies + cfg.conversations // 10 + 1  # <= 11 sockets per staff user
        convs = djangoside.ensure_conversations(cfg.conversations + cfg.idle_sockets)
        staff = djangoside.staff_users(n_staff)
        fx = Fixtures(convs, staff, cfg.lobbies)
        djangoside.close_db()

        if "rest" not in skip:
            log("REST: plugin and floor, concurrent clients")
            results["rest"] = rest_phase(svc, cfg, launcher, probe, rclient)
            dropped = djangoside.drop_email_backlog()
            results["email_backlog_dropped"] = dropped
            log(f"dropped the REST phase's {dropped} pending email rows before the next phase")
        else:
            log(f"every server of the run is up ({launcher.wait_all():.1f} s)")

        if "ws" not in skip:
            log("WebSocket, one worker")
            arms = []
            servers = {
                (r, n): launcher.get(("ws", r, n), fx)
                for r in range(1, cfg.runs + 1)
                for n in ws_targets
            }
            for run in range(1, cfg.runs + 1):
                cpu = measure_cpu(
                    {n: servers[(run, n)] for n in cpu_order(ws_targets, run)}, cfg, probe
                )
                for name in ws_targets:
                    profiled = name == "plugin" and run == cfg.runs and "profile" not in skip
                    arms.append(
                        run_ws_arm(
                            svc,
                            name,
                            fx,
                            site_env,
                            cfg,
                            probe,
                            rclient,
                            run=run,
                            server=servers[(run, name)],
                            pushback=name == "plugin" and run <= cfg.runs_of("pushback"),
                            profile_path=(
                                RESULTS_DIR / f"profile-{cfg.mode}-ws.txt" if profiled else None
                            ),
                            cpu=cpu[name],
                        )
                    )
            results["ws"] = arms
            prof = RESULTS_DIR / f"profile-{cfg.mode}-ws.txt"
            if prof.exists() and "profile" not in skip:
                results["ws_profile"] = {
                    "path": str(prof.relative_to(ROOT)),
                    **summarize_profile(prof),
                }

        if "scaleout" not in skip:
            log("WebSocket, scale-out")
            arms = []
            for workers in cfg.scaleout_full + cfg.scaleout_cpu:
                full = workers in cfg.scaleout_full
                # one server per target and worker count, for both runs
                servers = {
                    name: launcher.get(("scaleout", workers, name), fx) for name in ws_targets
                }
                try:
                    for run in range(1, cfg.runs_of("scaleout") + 1):
                        cpu = measure_cpu(
                            {n: servers[n] for n in cpu_order(ws_targets, run)}, cfg, probe
                        )
                        for name in ws_targets:
                            arms.append(
                                run_ws_arm(
                                    svc,
                                    name,
                                    fx,
                                    site_env,
                                    cfg,
                                    probe,
                                    rclient,
                                    run=run,
                                    workers=workers,
                                    ladder=full and (name == "plugin" or cfg.scaleout_floor_ladder),
                                    server=servers[name],
                                    keep=True,
                                    pushback=full and name == "plugin" and cfg.scaleout_pushback,
                                    cpu=cpu[name],
                                )
                            )
                finally:
                    for name, (_t, proc) in servers.items():
                        log_errors = stop_target(svc, proc, rclient)
                        for a in arms:
                            if a["target"] == name and a["workers"] == workers:
                                a["server_log"] = log_errors
            results["scaleout"] = arms

        if "idle" not in skip:
            # on fresh servers of their own: an idle socket's RSS on a server that has
            # served nothing yet
            variants = idle_variants
            log(
                "idle sockets, permessage-deflate "
                + " and ".join("on" if d else "off" for d in variants)
            )
            idle_runs = range(1, cfg.runs_of("idle") + 1)
            servers = {
                (r, n, d): launcher.get(("idle", r, n, d), fx)
                for r in idle_runs
                for d in variants
                for n in ws_targets
            }
            results["idle"] = [
                run_idle_arm(
                    svc,
                    name,
                    fx,
                    site_env,
                    cfg,
                    probe,
                    rclient,
                    deflate=d,
                    run=run,
                    server=servers[(run, name, d)],
                )
                for run in idle_runs
                for d in variants
                for name in ws_targets
            ]
        pg.close()
    finally:
        svc.stop_all()
    results["elapsed_seconds"] = time.time() - started
    results["load_avg_end"] = os.getloadavg()
    results["machine_idle_sample_end"] = idle_machine_sample(0.5)
    results["targets_eval"] = report.evaluate(results)
    json_path.write_text(json.dumps(results, indent=1, default=str))
    log(f"results in {json_path}")
    if not args.no_report:
        report.write(results, Path(args.out))
        log(f"wrote {args.out}")
    for t in results["targets_eval"]:
        log(f"target: {t['name']}: {t['value']} (goal {t['goal']}) -> {t['result']}")
    log(f"done in {results['elapsed_seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
