"""Run every benchmark and write docs/performance.md (+ docs/performance-*.png).

    /tmp/venv/bin/python benchmarks/run.py            # the full run (~20 minutes)
    /tmp/venv/bin/python benchmarks/run.py --quick    # development: under two minutes

Starts its own PostgreSQL cluster and redis-server on free loopback ports in a temp dir
and stops them at the end. Prints figures; never fails on time. See benchmarks/README.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
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
    raise_nofile,
    redis_commands,
)
from loadgen import LoadGen, Sock, Target

RESULTS_DIR = BENCH_DIR / "results"


@dataclass
class Config:
    mode: str
    conversations: list[int]
    rates: list[float]
    lobbies: int = 5
    duration: float = 10.0
    drain: float = 8.0
    abort_after: float = 5.0
    ramp_rate: float = 250.0
    idle_baseline: float = 3.0
    idle_counts: list[int] = field(default_factory=lambda: [1000, 5000])
    # the default plugin server is also ramped on to this many idle sockets (0: no probe)
    idle_probe: int = 10_000
    rest_small: int = 1_000
    rest_big: int = 1_000_000
    rest_repeats: int = 200
    inbox_counts: list[int] = field(default_factory=lambda: [10, 10_000])
    profile_seconds: float = 12.0
    targets: list[str] = field(
        default_factory=lambda: [
            "redis_pubsub",
            "channels_core",
            "channels_pubsub",
            "plugin",
            "plugin_threadpool",
            "plugin_2workers",
        ]
    )
    # the experiments (plugin_threadpool, plugin_2workers) only run up to this N, to bound
    # the run time
    experiment_max_n: int = 500


FULL = Config(mode="full", conversations=[100, 500, 1000], rates=[0.2, 1.0, 5.0])
QUICK = Config(
    mode="quick",
    conversations=[100],
    rates=[1.0, 5.0],
    duration=3.0,
    drain=2.0,
    abort_after=3.0,
    idle_baseline=1.0,
    idle_counts=[500],
    idle_probe=0,
    rest_big=50_000,
    rest_repeats=30,
    inbox_counts=[10, 1_000],
    profile_seconds=5.0,
    targets=["redis_pubsub", "channels_core", "channels_pubsub", "plugin"],
)

EXPERIMENTS = ("plugin_threadpool", "plugin_2workers")

TARGET_LABELS = {
    "plugin": "django-support-chat",
    "channels_pubsub": "bare Channels, RedisPubSubChannelLayer",
    "channels_core": "bare Channels, RedisChannelLayer",
    "redis_pubsub": "raw Redis pub/sub (no server)",
    "plugin_threadpool": "EXPERIMENT: plugin with consumers' DB calls on a thread pool",
    "plugin_2workers": "EXPERIMENT: plugin on two uvicorn workers (--workers 2)",
}


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", flush=True)


# -- machine -------------------------------------------------------------------------------------


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


# -- probes --------------------------------------------------------------------------------------


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


# -- targets -------------------------------------------------------------------------------------


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


def start_target(
    svc: Services, name: str, fx: Fixtures, deflate: bool = True
) -> tuple[Target, Any]:
    """Start the server of ``name`` (if it has one); returns (target, process or None)."""
    compression = "deflate" if deflate else None
    env = {"REDIS_URL": svc.redis_url, "DATABASE_URL": svc.database_url}
    if name in ("plugin", "plugin_threadpool", "plugin_2workers"):
        app = (
            "plugin_threadpool_asgi:application"
            if name == "plugin_threadpool"
            else "example.asgi:application"
        )
        proc, port = svc.start_uvicorn(
            app,
            {**env, "DJANGO_SETTINGS_MODULE": "bench_settings"},
            deflate=deflate,
            name=name,
            workers=2 if name == "plugin_2workers" else 1,
        )
        return fx.plugin(port, name=name, compression=compression), proc
    if name in ("channels_pubsub", "channels_core"):
        layer = "pubsub" if name == "channels_pubsub" else "core"
        proc, port = svc.start_uvicorn(
            "relay_asgi:application", {**env, "RELAY_LAYER": layer}, deflate=deflate, name=name
        )
        return relay_target(port, name, compression), proc
    if name == "redis_pubsub":
        return Target(name=name, kind="redis", redis_url=svc.redis_url), None
    raise ValueError(name)


def stop_target(svc: Services, proc: Any, rclient: Any) -> None:
    if proc is not None:
        svc.stop_server(proc)
    rclient.flushall()


# -- load steps ----------------------------------------------------------------------------------


async def load_run(
    target: Target, n: int, cfg: Config, probe: Probe, profile: dict[str, Any] | None = None
) -> dict[str, Any]:
    gen = LoadGen(target, n, cfg.lobbies)
    rss0 = proc_rss(probe.worker_pid) if probe.worker_pid else 0
    ramp = await gen.ramp(gen.plan_sockets(), rate=cfg.ramp_rate)
    log(
        f"  {target.name} N={n}: {ramp['opened']} sockets open in {ramp['seconds']:.1f} s"
        f" ({ramp['failed']} failed)"
    )
    await asyncio.sleep(1.0)
    idle = await gen.measure_idle(cfg.idle_baseline, probe)
    steps = []
    saturated_at = None
    for rate in cfg.rates:
        if saturated_at is not None:
            # bounded: a server that fell behind at a lower rate is still working through
            # that backlog, and a higher rate can only do worse
            steps.append(skipped_step(target.name, n, rate, saturated_at))
            log(f"    {rate:>4} msg/s/conv: skipped (saturated at {saturated_at:g})")
            continue
        spy = None
        if profile is not None and rate == profile["rate"]:
            spy = start_pyspy(probe.worker_pid, profile["path"], cfg.profile_seconds)
            probe.pg.reset()
        res = await gen.step(rate, cfg.duration, cfg.drain, probe, abort_after=cfg.abort_after)
        if spy is not None:
            await asyncio.get_running_loop().run_in_executor(None, spy.wait)
        res["n"] = n
        steps.append(res)
        lat = res["latency"]["all"]
        log(
            f"    {rate:>4} msg/s/conv: offered {res['offered_rate']:.0f}/s, sent {res['sent']},"
            f" p50 {fmt(lat['p50'])} p99 {fmt(lat['p99'])} ms, lost {res['lost_messages']},"
            f" dup {res['duplicates']}, {res['delivered_msgs_per_s']:.0f} msg/s"
            f"{' ABORTED' if res['aborted'] else ''}"
        )
        if res["aborted"]:
            saturated_at = rate
        await asyncio.sleep(1.0)
    await gen.close()
    return {
        "target": target.name,
        "n": n,
        "sockets": ramp["opened"],
        "ramp": ramp,
        "connect_errors": gen.connect_errors[:5],
        "rss_before": rss0,
        "idle": idle,
        "steps": steps,
    }


def skipped_step(target: str, n: int, rate: float, saturated_at: float) -> dict[str, Any]:
    empty = {"n": 0, "p50": None, "p95": None, "p99": None, "max": None}
    return {
        "target": target,
        "n": n,
        "rate_per_conv": rate,
        "offered_rate": n * rate,
        "skipped": True,
        "saturated_at": saturated_at,
        "aborted": True,
        "sent": 0,
        "achieved_rate": 0.0,
        "acked": 0,
        "deliveries": 0,
        "expected_deliveries": 0,
        "lost_messages": 0,
        "lost_deliveries": 0,
        "duplicates": 0,
        "errors": 0,
        "stale": 0,
        "delivered_msgs_per_s": 0.0,
        "deliveries_per_s": 0.0,
        "heartbeats": 0,
        "sockets_closed": 0,
        "counters": {},
        "gauges": {},
        "latencies_sample": [],
        "latency": {
            k: dict(empty)
            for k in ("customer_to_staff", "staff_to_customer", "staff_to_lobby", "all")
        },
    }


def server_log_errors(svc: Services, proc: Any) -> dict[str, Any]:
    """Tracebacks and ERROR lines in a server's log (read after it stopped)."""
    path = svc.logs.get(proc.pid) if proc is not None else None
    if path is None or not Path(path).exists():
        return {"errors": 0, "first": []}
    lines = Path(path).read_text(errors="replace").splitlines()
    bad = [ln for ln in lines if "Traceback" in ln or "ERROR" in ln or "Error:" in ln]
    return {"errors": len(bad), "first": bad[:5]}


def profile_point(results: dict[str, Any], cfg: Config) -> tuple[int, float]:
    """Where to profile: the plugin's busiest step that did not saturate (the hot path at
    work, fan-out included), else the issue's 500 x 1."""
    ok = [
        st
        for run in results.get("load", [])
        if run["target"] == "plugin"
        for st in run["steps"]
        if not st.get("skipped") and not st["aborted"] and st["sent"]
    ]
    if ok:
        best = max(ok, key=lambda st: (st["offered_rate"], st["n"]))
        return best["n"], best["rate_per_conv"]
    n = 500 if 500 in cfg.conversations else max(cfg.conversations)
    return n, 1.0


def close_codes(gen: LoadGen) -> dict[str, int]:
    """How the sockets that are no longer open were closed (-1: no close frame)."""
    out: dict[str, int] = {}
    for sock in gen.socks:
        if sock.conn is not None and sock.closed_code is not None:
            out[str(sock.closed_code)] = out.get(str(sock.closed_code), 0) + 1
    return out


def fmt(v: float | None) -> str:
    return "-" if v is None else f"{v:.1f}"


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


# -- idle sockets ----------------------------------------------------------------------------------


async def idle_run(target: Target, counts: list[int], cfg: Config, probe: Probe) -> dict[str, Any]:
    """Customer sockets only, each in its own conversation, ramped to each count in turn."""
    gen = LoadGen(target, 0, 0)
    warm = [Sock(k, "c", k) for k in range(10)]
    await gen.ramp(warm, rate=cfg.ramp_rate)
    await asyncio.sleep(1.0)
    base = proc_rss(probe.worker_pid)
    points = [{"sockets": 10, "rss": base}]
    opened = 10
    for count in counts:
        more = [Sock(k, "c", k) for k in range(opened, count)]
        ramp = await gen.ramp(more, rate=cfg.ramp_rate)
        opened = count
        await asyncio.sleep(3.0)
        held = gen.open_count()
        window = await gen.measure_idle(cfg.idle_baseline, probe)
        rss = proc_rss(probe.worker_pid)
        points.append(
            {
                "sockets": count,
                "held": held,
                "failed": ramp["failed"],
                "ramp_seconds": ramp["seconds"],
                "rss": rss,
                "rss_per_socket": (rss - base) / max(1, held - 10),
                "worker_cpu_per_s": window["counters"].get("worker_cpu", 0) / window["seconds"],
                "client_cpu_per_s": window["counters"].get("client_cpu", 0) / window["seconds"],
                "heartbeats_per_s": window["heartbeats"] / window["seconds"],
                "close_codes": close_codes(gen),
            }
        )
        log(
            f"  {target.name}: {held}/{count} sockets held, RSS {rss / 2**20:.0f} MiB,"
            f" {(rss - base) / max(1, held - 10) / 1024:.1f} KiB/socket"
        )
    await gen.close()
    return {
        "target": target.name,
        "base_rss": base,
        "points": points,
        "errors": gen.connect_errors[:5],
    }


# -- profile ---------------------------------------------------------------------------------------


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
        plumbing = ("<module>", "_run_once", "run_forever", "run (", "_bootstrap", "worker (")
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


# -- REST + inbox ------------------------------------------------------------------------------------


def inbox_phase(cfg: Config) -> list[dict[str, Any]]:
    staff = djangoside.staff_users(1)[0]
    out = []
    for count in cfg.inbox_counts:
        djangoside.ensure_conversations(count - djangoside.other_conversations())
        res = djangoside.inbox_queries(staff)
        log(
            f"  inbox at {res['conversations']:,} conversations: API {res['api_inbox']['queries']}"
            f" queries ({res['api_inbox']['ms_median']:.0f} ms), HTML"
            f" {res['html_inbox']['queries']} queries ({res['html_inbox']['ms_median']:.0f} ms)"
        )
        out.append(res)
    return out


def rest_phase(svc: Services, cfg: Config, rclient: Any) -> list[dict[str, Any]]:
    customer, staff, conversation = djangoside.rest_conversation()
    results = []
    have = djangoside.message_stats(conversation)["conversation_rows"]
    for size in (cfg.rest_small, cfg.rest_big):
        log(f"  REST: filling the conversation to {size:,} messages")
        secs = djangoside.bulk_messages(conversation, customer, staff, size - have, log=log)
        have = size
        stats = djangoside.message_stats(conversation)
        deep = djangoside.oldest_ids(conversation, 60)
        djangoside.close_db()
        proc, port = svc.start_uvicorn(
            "example.asgi:application",
            {
                "REDIS_URL": svc.redis_url,
                "DATABASE_URL": svc.database_url,
                "DJANGO_SETTINGS_MODULE": "bench_settings",
            },
            name="plugin-rest",
        )
        try:
            lat = djangoside.rest_latencies(
                port, customer, staff, conversation, cfg.rest_repeats, deep
            )
        finally:
            stop_target(svc, proc, rclient)
        # the sends above added rows; keep the count honest for the next size
        have = djangoside.message_stats(conversation)["conversation_rows"]
        for name, r in lat.items():
            log(
                f"    {size:>9,} msgs  {name:<36} p50 {r['p50']:6.1f}  p99 {r['p99']:6.1f} ms"
                f"  {r['statuses']}"
            )
        results.append({"size": size, "insert_seconds": secs, **stats, "latency": lat})
    return results


# -- main ------------------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="development mode, under 2 minutes")
    parser.add_argument("--targets", help="comma-separated subset of: " + ", ".join(FULL.targets))
    parser.add_argument("--conversations", help="comma-separated N values (overrides the mode's)")
    parser.add_argument("--rates", help="comma-separated msgs/s per conversation")
    parser.add_argument(
        "--skip", default="", help="comma-separated phases to skip: rest,inbox,load,idle,profile"
    )
    parser.add_argument("--profile", action="store_true", help="always profile the plugin")
    parser.add_argument("--out", default=str(ROOT / "docs" / "performance.md"))
    parser.add_argument("--json", help="results JSON (default benchmarks/results/<mode>.json)")
    parser.add_argument("--no-report", action="store_true", help="only write the JSON")
    parser.add_argument(
        "--report-from",
        metavar="JSON",
        help="only rewrite the report (and plots) from an earlier run's results JSON",
    )
    args = parser.parse_args()
    if args.report_from:
        results = json.loads(Path(args.report_from).read_text())
        prof = results.get("profile")
        stacks = RESULTS_DIR / f"profile-{results['config']['mode']}.txt"
        if prof and stacks.exists():
            prof.update(summarize_profile(stacks))
        results["targets_eval"] = report.evaluate(results)
        report.write(results, Path(args.out))
        log(f"wrote {args.out} from {args.report_from}")
        return 0

    cfg = QUICK if args.quick else FULL
    if args.targets:
        cfg.targets = [t for t in FULL.targets if t in args.targets.split(",")]
    if args.conversations:
        cfg.conversations = [int(x) for x in args.conversations.split(",")]
    if args.rates:
        cfg.rates = [float(x) for x in args.rates.split(",")]
    skip = set(filter(None, args.skip.split(",")))

    started = time.time()
    nofile = raise_nofile(65536)
    results: dict[str, Any] = {
        "config": asdict(cfg),
        "machine": machine_info(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "nofile": nofile,
        "labels": TARGET_LABELS,
    }
    log(
        f"mode {cfg.mode}; {results['machine']['cpu']}, {results['machine']['cores']} cores; "
        f"load average {results['machine']['load_avg_start']}"
    )
    svc = Services()
    RESULTS_DIR.mkdir(exist_ok=True)
    json_path = Path(args.json) if args.json else RESULTS_DIR / f"{cfg.mode}.json"
    try:
        log(f"starting PostgreSQL and redis-server in {svc.dir}")
        svc.start_postgres()
        svc.start_redis()
        djangoside.setup(svc.database_url, svc.redis_url)
        rclient = redis.Redis.from_url(svc.redis_url)
        pg = PgCounters(svc.admin_dsn)
        probe = Probe(svc, pg, rclient)

        if "rest" not in skip:  # first: the table then holds exactly the stated rows
            log("REST latencies")
            results["rest"] = rest_phase(svc, cfg, rclient)
        if "inbox" not in skip:
            log("inbox list query counts")
            results["inbox"] = inbox_phase(cfg)

        need = (
            max([*cfg.conversations, *cfg.idle_counts, cfg.idle_probe])
            if "idle" not in skip
            else max(cfg.conversations)
        )
        convs = djangoside.ensure_conversations(need)
        staff = djangoside.staff_users(cfg.lobbies)
        fx = Fixtures(convs, staff, cfg.lobbies)
        djangoside.close_db()

        if "load" not in skip:
            log("load steps")
            runs = []
            for n in cfg.conversations:
                for name in cfg.targets:  # interleaved: noise hits every target alike
                    if name in EXPERIMENTS and n > cfg.experiment_max_n:
                        continue
                    target, proc = start_target(svc, name, fx)
                    probe.worker_pid = proc.pid if proc else None
                    try:
                        run = asyncio.run(load_run(target, n, cfg, probe))
                        runs.append(run)
                    finally:
                        stop_target(svc, proc, rclient)
                    run["server_log"] = server_log_errors(svc, proc)
            results["load"] = runs

        results["targets_eval"] = report.evaluate(results)
        missed = any(not t["met"] for t in results["targets_eval"] if t["met"] is not None)
        # Item 7: profile when the plugin misses a target (quick mode: only with --profile)
        wanted = args.profile or (missed and cfg.mode == "full")
        if "profile" not in skip and "plugin" in cfg.targets and wanted:
            n, prate = profile_point(results, cfg)
            log(f"profiling the plugin's worker with py-spy at N={n} x {prate:g} msg/s")
            path = RESULTS_DIR / f"profile-{cfg.mode}.txt"
            target, proc = start_target(svc, "plugin", fx)
            probe.worker_pid = proc.pid
            pcfg = Config(**{**asdict(cfg), "rates": [prate]})
            try:
                run = asyncio.run(
                    load_run(target, n, pcfg, probe, profile={"rate": prate, "path": path})
                )
            finally:
                stop_target(svc, proc, rclient)
            sent = max(1, run["steps"][0]["sent"])
            results["profile"] = {
                "n": n,
                "rate": prate,
                "run": run,
                "statements": [(calls / sent, q) for calls, q in pg.top(30)],
                **summarize_profile(path),
            }

        if "idle" not in skip:
            log("idle sockets")
            idle = []
            # With and without permessage-deflate: its per-socket compression contexts are
            # about half of an idle socket's memory, in the plugin and in the floor alike.
            variants = [
                ("plugin", True),
                ("channels_pubsub", True),
                ("plugin", False),
                ("channels_pubsub", False),
            ]
            for name, deflate in variants:
                if name not in cfg.targets:
                    continue
                target, proc = start_target(svc, name, fx, deflate=deflate)
                target.name = name + ("" if deflate else "_nodeflate")
                probe.worker_pid = proc.pid
                counts = list(cfg.idle_counts)
                if name == "plugin" and deflate and cfg.idle_probe > max(counts):
                    counts.append(cfg.idle_probe)
                try:
                    idle.append(asyncio.run(idle_run(target, counts, cfg, probe)))
                finally:
                    stop_target(svc, proc, rclient)
            results["idle"] = idle
        pg.close()
    finally:
        svc.stop_all()
    results["elapsed_seconds"] = time.time() - started
    results["load_avg_end"] = os.getloadavg()
    results["targets_eval"] = report.evaluate(results)
    json_path.write_text(json.dumps(results, indent=1, default=str))
    log(f"results in {json_path}")
    if not args.no_report:
        report.write(results, Path(args.out))
        log(f"wrote {args.out}")
    for t in results["targets_eval"]:
        log(
            f"target: {t['name']}: {t['value']} (goal {t['goal']}) -> "
            f"{'met' if t['met'] else 'MISSED' if t['met'] is not None else 'n/a'}"
        )
    log(f"done in {results['elapsed_seconds'] / 60:.1f} min")
    return 0


if __name__ == "__main__":
    sys.exit(main())
