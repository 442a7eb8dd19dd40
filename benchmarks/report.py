"""Turn the results of benchmarks/run.py into docs/performance.md (issue #14's figures and
targets). Every figure in the document comes from the results JSON: nothing is typed in."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

P99_LIMIT_MS = 250.0
PUSHBACK_P99_MS = 500.0
FLOOR = "channels_pubsub"
BEFORE_JSON = Path(__file__).resolve().parent / "results" / "before.json"


# -- derived figures ---------------------------------------------------------------------------------


def fmt(v: float | None, digits: int = 1) -> str:
    if v is None:
        return "-"
    if abs(v) >= 1000 and digits <= 1:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def ratio(a: float | None, b: float | None) -> float | None:
    if a is None or b is None or b <= 0:
        return None
    return a / b


def rx(r: float | None) -> str:
    return "-" if r is None else f"{r:.2f}x"


def table(headers: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def runs_of(results: dict[str, Any]) -> list[int]:
    return list(range(1, int(results["config"].get("runs", 2)) + 1))


def once_note(results: dict[str, Any]) -> str:
    once = results["config"].get("once") or []
    if not once:
        return ""
    names = {
        "rest_max": f"REST at {max(results['config'].get('rest_clients') or [0])} clients",
        "scaleout": "the scale-out arms",
        "idle": "the idle-socket arms",
    }
    return (
        " In this mode "
        + ", ".join(names.get(p, p) for p in once)
        + " ran in run 1 only (to stay under two minutes): their run 2 reads `-`."
    )


def arm(
    results: dict[str, Any], target: str, run: int, workers: int = 1, key: str = "ws"
) -> dict[str, Any] | None:
    src = results.get(key) or []
    if workers != 1 and key == "ws":
        src = results.get("scaleout") or []
    for a in src:
        if a["target"] == target and a["run"] == run and a.get("workers", 1) == workers:
            return a
    return None


def cpu_net_ms(a: dict[str, Any] | None, step_key: str, key: str = "worker_cpu") -> float | None:
    """Worker CPU ms per acknowledged message of a step, less the arm's idle baseline CPU
    rate (heartbeats and presence of the same sockets) over the step's wall time."""
    if a is None or step_key not in a:
        return None
    st = a[step_key]
    done = st.get("acked") or 0
    if not done:
        return None
    idle = a["idle_baseline"]
    rate = idle["counters"].get(key, 0.0) / max(1e-9, idle["seconds"])
    wall = st["counters"].get("wall", 0.0)
    return 1000.0 * max(0.0, st["counters"].get(key, 0.0) - rate * wall) / done


def passes(st: dict[str, Any]) -> bool:
    p99 = st["latency"]["all"]["p99"]
    return (
        p99 is not None
        and p99 < P99_LIMIT_MS
        and st["lost_messages"] == 0
        and st["duplicates"] == 0
        and not st["aborted"]
        and st["errors"] == 0
        and st["sent"] > 0
    )


def sustained(a: dict[str, Any] | None) -> float | None:
    return None if a is None or "sustained" not in a else a["sustained"]


def rss_under_load_kb(a: dict[str, Any] | None) -> float | None:
    if a is None or not a.get("sockets") or not a.get("rss_before"):
        return None
    return (a["rss_under_load"] - a["rss_before"]) / a["sockets"] / 1000


def idle_kb(results: dict[str, Any], target: str, run: int, deflate: bool) -> float | None:
    """RSS per idle socket, from the idle arms (a fresh server each)."""
    point = next(
        (
            i
            for i in results.get("idle") or []
            if i["target"] == target and i.get("run") == run and i.get("deflate") == deflate
        ),
        None,
    )
    return None if not point else point["rss_per_socket"] / 1000


def rest_step_of(
    results: dict[str, Any], arm_name: str, method: str, clients: int, run: int
) -> dict[str, Any] | None:
    for st in (results.get("rest") or {}).get("steps", []):
        if (
            st["arm"] == arm_name
            and st["method"] == method
            and st["clients"] == clients
            and st["run"] == run
        ):
            return st
    return None


def rest_cpu_ms(st: dict[str, Any] | None) -> float | None:
    if st is None or not st["ok"]:
        return None
    return 1000.0 * st["counters"].get("worker_cpu", 0.0) / st["ok"]


def stored_ok(stored: dict[str, int] | None) -> bool | None:
    if not stored:
        return None
    return stored["once"] == stored["messages"] and not stored["missing"]


def stored_text(stored: dict[str, int] | None) -> str:
    if not stored:
        return "-"
    return (
        f"{stored['once']:,}/{stored['messages']:,} once"
        + (f", {stored['missing']} missing" if stored["missing"] else "")
        + (f", {stored['more_than_once']} more than once" if stored["more_than_once"] else "")
    )


# -- targets (issue #14) ---------------------------------------------------------------------------


def _target(
    name: str, values: list[tuple[str, bool | None]], goal: str, note: str = ""
) -> dict[str, Any]:
    mets = [m for _, m in values if m is not None]
    if not mets:
        result = "not measured"
    elif all(mets):
        result = "met"
    elif not any(mets):
        result = "missed"
    else:
        result = (
            "mixed (met in "
            + ", ".join(f"run {i + 1}" for i, (_, m) in enumerate(values) if m)
            + ")"
        )
    return {
        "name": name,
        "value": " / ".join(v for v, _ in values) + (f" ({note})" if note else ""),
        "goal": goal,
        "result": result,
        "met": result == "met" if mets else None,
    }


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    out: list[dict[str, Any]] = []
    runs = runs_of(results)
    if results.get("ws"):
        for key, label in (("c2s", "customer → staff"), ("s2c", "staff → customer")):
            vals = []
            for r in runs:
                p = cpu_net_ms(arm(results, "plugin", r), key)
                f = cpu_net_ms(arm(results, FLOOR, r), key)
                q = ratio(p, f)
                vals.append(
                    (f"{fmt(p, 2)} vs {fmt(f, 2)} ms = {rx(q)}", None if q is None else q <= 2.0)
                )
            out.append(
                _target(f"WebSocket worker CPU per message, {label}, ≤ 2x the relay", vals, "≤ 2x")
            )
        vals = []
        for r in runs:
            p, f = sustained(arm(results, "plugin", r)), sustained(arm(results, FLOOR, r))
            q = ratio(p, f)
            vals.append(
                (
                    f"{fmt(p, 0)} vs {fmt(f, 0)} msg/s = {'-' if q is None else f'{100 * q:.0f} %'}",
                    None if q is None else q >= 0.5,
                )
            )
        out.append(
            _target(
                "sustained throughput on one worker (p99 < 250 ms, nothing lost) ≥ 50 % of the "
                "relay's",
                vals,
                "≥ 50 %",
                "the ladder's highest passing step",
            )
        )
        vals = []
        for r in runs:
            pb = (arm(results, "plugin", r) or {}).get("pushback")
            if not pb:
                vals.append(("-", None))
                continue
            # From the attempt the server accepted: a refused one waits retry_after (1 s)
            # by the protocol; from the first attempt is in the pushback table.
            p99 = (pb.get("latency_accepted_attempt") or pb["latency"]["all"])["p99"]
            ok = stored_ok(pb.get("stored"))
            vals.append(
                (
                    f"p99 {fmt(p99, 0)} ms, {sum(pb['rejected'].values())} rejected, "
                    + stored_text(pb.get("stored")),
                    p99 is not None and p99 < PUSHBACK_P99_MS and bool(ok),
                )
            )
        out.append(
            _target(
                "pushback at 2x the sustained rate: p99 delivery of accepted messages < 500 ms, "
                "every message stored once",
                vals,
                "< 500 ms, all once",
            )
        )
    if results.get("rest"):
        for method, label in (("POST", "send"), ("GET", "history page")):
            for n in results["config"]["rest_clients"]:
                vals = []
                for r in runs:
                    p = rest_cpu_ms(rest_step_of(results, "plugin", method, n, r))
                    f = rest_cpu_ms(rest_step_of(results, "rest_floor", method, n, r))
                    q = ratio(p, f)
                    vals.append(
                        (
                            f"{fmt(p, 1)} vs {fmt(f, 1)} ms = {rx(q)}",
                            None if q is None else q <= 2.0,
                        )
                    )
                out.append(
                    _target(
                        f"REST {label}: worker CPU per 2xx request at {n} clients ≤ 2x the floor",
                        vals,
                        "≤ 2x",
                    )
                )
        vals = []
        for r in runs:
            bad = 0
            no_ra = 0
            for n in results["config"]["rest_clients"]:
                for method in ("POST", "GET"):
                    st = rest_step_of(results, "plugin", method, n, r)
                    if st:
                        bad += st["statuses"].get("other 5xx", 0)
                        no_ra += st.get("retry_after_missing", 0)
            vals.append(
                (
                    f"{bad} other 5xx, {no_ra} 429/503 without Retry-After",
                    bad == 0 and no_ra == 0,
                )
            )
        out.append(
            _target(
                "no 5xx at "
                + " and ".join(str(n) for n in results["config"]["rest_clients"])
                + " REST clients (429/503 only with Retry-After)",
                vals,
                "0",
            )
        )
    if results.get("idle"):
        vals = []
        for r in runs:
            p, f = idle_kb(results, "plugin", r, False), idle_kb(results, FLOOR, r, False)
            q = ratio(p, f)
            vals.append((f"{fmt(p)} vs {fmt(f)} KB = {rx(q)}", None if q is None else q <= 1.1))
        out.append(
            _target("idle socket RSS, permessage-deflate off, ≤ 1.1x the relay's", vals, "≤ 1.1x")
        )
    return out


# -- the document ------------------------------------------------------------------------------------


def write(results: dict[str, Any], out: Path) -> None:
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(render(results))


def loadavg(x: list[float] | None) -> str:
    return "-" if not x else ", ".join(f"{v:.2f}" for v in x)


def load_cell(load: dict[str, Any] | None) -> str:
    if not load:
        return "-"
    busy = load.get("cpu_busy_pct")
    return f"{load['loadavg_before'][0]:.2f} → {load['loadavg_after'][0]:.2f}" + (
        "" if busy is None else f", {busy:.0f} % busy"
    )


def render(results: dict[str, Any]) -> str:
    cfg = results["config"]
    results["machine"]
    runs = runs_of(results)
    L: list[str] = []
    add = L.append
    add("# Performance")
    add("")
    add(
        "Generated by `python benchmarks/run.py"
        + (" --quick" if cfg["mode"] == "quick" else "")
        + f"` on {results['started']} ({cfg['mode']} mode, "
        f"{results['elapsed_seconds'] / 60:.1f} minutes). Do not edit by hand: rerun the "
        "command. Every figure below comes from `benchmarks/results/"
        f"{cfg['mode']}.json`; benchmarks print figures, they never fail on time."
    )
    if cfg["mode"] == "quick":
        add("")
        add(
            "> **Quick mode**: short steps and small sizes for development; the figures are "
            "indicative only. The full run is `python benchmarks/run.py`."
        )
    add("")
    add("## How to run")
    add("")
    add("```bash")
    add('pip install -e ".[example,bench]"   # psutil, py-spy, websockets, h11, numpy, ...')
    add("python benchmarks/run.py            # full run, ~25 minutes, writes this file")
    add("python benchmarks/run.py --quick    # under two minutes, for development")
    add("```")
    add("")
    add("Options and what each phase does: `benchmarks/README.md`.")
    add("")
    render_machine(results, add)
    render_settings(results, add)
    evals = results.get("targets_eval") or evaluate(results)
    add("## Targets (issue #14)")
    add("")
    add(
        "Each target measured in every run ("
        + " / ".join(f"run {r}" for r in runs)
        + "), plugin vs its floor in the same run. Met = met in every run that measured it."
        + once_note(results)
    )
    add("")
    add(
        table(
            ["target", "measured (" + " / ".join(f"run {r}" for r in runs) + ")", "goal", "result"],
            [[t["name"], t["value"], t["goal"], f"**{t['result']}**"] for t in evals],
        )
    )
    add("")
    if results.get("ws"):
        render_ws(results, add)
    if results.get("scaleout"):
        render_scaleout(results, add)
    if results.get("rest"):
        render_rest(results, add)
    render_memory(results, add)
    render_profiles(results, add)
    L.extend(render_before_after(results))
    add(CAVEATS)
    return "\n".join(L) + "\n"


def render_machine(results: dict[str, Any], add: Any) -> None:
    m = results["machine"]
    s0 = results.get("machine_idle_sample") or {}
    s1 = results.get("machine_idle_sample_end") or {}
    add("## Machine")
    add("")
    add(
        table(
            ["", ""],
            [
                ["CPU", f"{m['cpu']}, {m['cores']} logical cores"],
                ["RAM", f"{m['ram_gb']} GiB"],
                ["OS", f"{m['os']}, kernel {m['kernel']}"],
                ["Python", m["python"]],
                ["PostgreSQL", m["postgresql"]],
                ["Redis", m["redis_server"]],
                ["packages", ", ".join(f"{k} {v}" for k, v in m["versions"].items())],
                [
                    "commit",
                    f"{m['git']}{' + uncommitted changes in src/' if m['git_dirty_src'] else ''}",
                ],
                [
                    "load average at the start / end",
                    f"{loadavg(m['load_avg_start'])} / {loadavg(results.get('load_avg_end'))}",
                ],
                [
                    "machine CPU busy (/proc/stat, 0.5 s) at the start / end",
                    f"{fmt(s0.get('cpu_busy_pct'), 0)} % / {fmt(s1.get('cpu_busy_pct'), 0)} %",
                ],
            ],
        )
    )
    add("")
    add(
        "Every arm's table row also shows the 1-minute load average before → after the arm "
        "and the machine's CPU busy % (all processes, /proc/stat) during it: other jobs share "
        "this machine; compare ratios within a run rather than absolute figures across runs."
    )
    add("")


def render_settings(results: dict[str, Any], add: Any) -> None:
    s = results.get("settings") or {}
    add("## Settings: what users run")
    add("")
    add(
        "The plugin is the example project with the documented production settings on top "
        "(`deploy/settings_production.py`, as tests/e2e/nginx_settings.py applies them), in "
        "`benchmarks/bench_settings.py`. uvicorn runs with the flags of "
        "`deploy/systemd/support-chat@.service` ("
        + (" ".join(f"`{f}`" for f in results.get("uvicorn_flags", [])) or "none")
        + "), on loopback"
        + (
            "; the email worker (`manage.py db_worker`, as "
            "`deploy/systemd/support-chat-worker.service`) runs for the whole run, so email "
            "rows that fall due are sent or skipped as on a site (the REST phase's pending "
            "rows, one per staff member in hundreds of conversations opened at once, are "
            "deleted before the WebSocket phase, so that backlog does not load the arms "
            "measured after it)"
            if results.get("email_worker")
            else ""
        )
        + ". Differences from production, all of them:"
    )
    add("")
    for k, v in (s.get("differences") or {}).items():
        add(f"- `{k}`: {v}")
    add(
        "- Environment: `SECRET_KEY`, `ALLOWED_HOSTS=127.0.0.1,localhost`, `DATABASE_URL`, "
        "`REDIS_URL`, `STATIC_ROOT` (a temp dir); no TLS, so `request.is_secure()` is false "
        "(the load generator sends its cookies itself: Secure cookies change nothing)."
    )
    add("")
    add(
        table(
            ["setting in force", "value"],
            [
                ["DATABASES CONN_MAX_AGE", f"`{s.get('CONN_MAX_AGE')}`"],
                ["DATABASES OPTIONS", f"`{json.dumps(s.get('OPTIONS'), default=str)}`"],
                ["CHANNEL_LAYERS", f"`{s.get('CHANNEL_LAYERS')}`"],
                ["SUPPORT_CHAT SEND_QUEUE_LIMIT", f"`{s.get('SEND_QUEUE_LIMIT')}`"],
                ["SUPPORT_CHAT SEND_RETRY_AFTER", f"`{s.get('SEND_RETRY_AFTER')}`"],
                ["SUPPORT_CHAT SEND_MAX_LAG", f"`{s.get('SEND_MAX_LAG', '-')}`"],
                ["SUPPORT_CHAT WS_DATABASE_THREADS", f"`{s.get('WS_DATABASE_THREADS', '-')}`"],
                [
                    "PostgreSQL",
                    "defaults (fsync, synchronous_commit, full_page_writes on; "
                    "max_connections 100) + pg_stat_statements: `"
                    + results.get("pg_opts", "")
                    + "`",
                ],
                [
                    "permessage-deflate in the one-worker arms",
                    "on (uvicorn's default, the unit does not change it)"
                    if results.get("deflate_default", True)
                    else "off (the unit's `--ws-per-message-deflate false`)",
                ],
            ],
        )
    )
    add("")
    add(
        "Floors: the bare Channels relay (`benchmarks/relay_asgi.py`: no database, no auth; "
        "the same frames and fan-out) with the same uvicorn flags; the REST floor "
        "(`benchmarks/bench_urls.py`: a bare DRF `APIView` + `ModelSerializer` over the same "
        "tables, the newest page of the same rows; POST a plain create) on the plugin's own "
        "server."
    )
    add("")


def ws_row_cells(a: dict[str, Any] | None) -> dict[str, str]:
    if a is None:
        return {}
    lad = a.get("ladder") or []
    return {
        "c2s": fmt(cpu_net_ms(a, "c2s"), 2),
        "s2c": fmt(cpu_net_ms(a, "s2c"), 2),
        "c2s_p99": fmt((a.get("c2s") or {}).get("latency", {}).get("all", {}).get("p99")),
        "s2c_p99": fmt((a.get("s2c") or {}).get("latency", {}).get("all", {}).get("p99")),
        "sustained": fmt(sustained(a), 0),
        "ladder": "; ".join(
            f"{st['offered_rate']:g}: p99 {fmt(st['latency']['all']['p99'], 0)}"
            + (f" ({st['retried_messages']:,} retried)" if st.get("retried_messages") else "")
            + ("" if passes(st) else " ✗")
            for st in lad
        ),
        "rss": fmt(rss_under_load_kb(a)),
        "load": load_cell(a.get("load")),
    }


def render_ws(results: dict[str, Any], add: Any) -> None:
    cfg = results["config"]
    runs = runs_of(results)
    floors = [FLOOR, *[f for f in cfg.get("floors", []) if f != FLOOR]]
    add("## WebSocket, one uvicorn worker")
    add("")
    add(
        f"{cfg['conversations']} conversations, each with a customer socket and a staff socket, "
        f"plus {cfg['lobbies']} staff lobby sockets ({2 * cfg['conversations'] + cfg['lobbies']} "
        "sockets). CPU per message: after a warm-up, a Poisson stream of "
        f"{cfg['direction_rate']:g} messages/s for {cfg['duration']:g} s from one side only "
        "(customer → staff: delivered to the conversation's staff socket and every lobby; staff "
        "→ customer: to the customer socket and every lobby), the worker's CPU (user + "
        "system; with `--workers`, summed over the process tree) less the idle baseline of the "
        "same sockets, per acknowledged message"
        + (
            f" (the baseline and each step span whole windows of {cfg['cpu_window']:g} s, the "
            "heartbeat interval: the periodic work of both servers, heartbeats and the "
            "plugin's watchdog sweep, falls in each window once)"
            if cfg.get("cpu_window")
            else ""
        )
        + ". Sustained: a ladder of offered rates ("
        + ", ".join(f"{r:g}" for r in cfg["ladder"])
        + " messages/s, random sides), each for "
        f"{cfg['duration']:g} s, stopped at the first step that misses; the clients retry "
        "an `overloaded` answer after its `retry_after` with the same `client_id`, as the "
        "widget does; a step passes with p99 delivery < "
        f"{P99_LIMIT_MS:.0f} ms over every recipient, from a message's first attempt (a "
        "refused message counts with its wait), nothing lost or duplicated, no error; "
        '"retried" counts the messages refused at least once.'
    )
    add("")
    rows = []
    for r in runs:
        for t in ["plugin", *floors]:
            a = arm(results, t, r)
            if a is None:
                continue
            c = ws_row_cells(a)
            rows.append(
                [
                    f"run {r}",
                    t,
                    c["c2s"],
                    c["s2c"],
                    c["c2s_p99"] + " / " + c["s2c_p99"],
                    c["sustained"],
                    c["ladder"],
                    c["rss"],
                    stored_text(a.get("stored")),
                    c["load"],
                ]
            )
    add(
        table(
            [
                "run",
                "target",
                "CPU ms/msg c→s",
                "CPU ms/msg s→c",
                "p99 ms c→s / s→c",
                "sustained msg/s",
                "ladder (msg/s: p99 ms)",
                "RSS KB/socket under load",
                "acknowledged messages stored once (DB)",
                "load (1-min avg, busy)",
            ],
            rows,
        )
    )
    add("")
    ratios = []
    for r in runs:
        p, f = arm(results, "plugin", r), arm(results, FLOOR, r)
        ratios.append(
            [
                f"run {r}",
                rx(ratio(cpu_net_ms(p, "c2s"), cpu_net_ms(f, "c2s"))),
                rx(ratio(cpu_net_ms(p, "s2c"), cpu_net_ms(f, "s2c"))),
                rx(ratio(sustained(p), sustained(f))),
                rx(ratio(rss_under_load_kb(p), rss_under_load_kb(f))),
            ]
        )
    add(
        table(
            ["plugin / relay", "CPU c→s", "CPU s→c", "sustained", "RSS per socket under load"],
            ratios,
        )
    )
    add("")
    add("### Pushback")
    add("")
    add(
        "Offered at twice the plugin's sustained rate of the same run (twice the ladder's "
        "first step when none passed), random sides, for "
        f"{cfg['pushback_duration']:g} s. The load generator retries every `overloaded`, "
        "`unavailable` or `throttled` error frame after its `retry_after` (plus up to 20 % "
        "jitter) with the same `client_id`, and waits up to "
        f'{cfg["pushback_drain"]:g} s for the rest. "First try / retried / all" latency runs '
        "from a message's first attempt to its delivery (a retried one includes the "
        '`retry_after` it was told to wait); "accepted" from the attempt the server '
        'accepted to the delivery, which is what the target judges. "Stored once" counts '
        "the rows per `client_id` in the database afterwards."
    )
    add("")
    rows = []
    for key, _src in (("ws", 1), ("scaleout", None)):
        for a in results.get(key) or []:
            pb = a.get("pushback")
            if a["target"] != "plugin" or not pb:
                continue
            rows.append(pushback_row(a, pb))
    add(
        table(
            [
                "run",
                "workers",
                "offered msg/s",
                "sent",
                "accepted first try",
                "retried",
                "rejections (by code)",
                "p99 first try / retried / all (ms)",
                "p99 accepted (ms)",
                "lost deliveries",
                "stored once (DB)",
                "load",
            ],
            rows,
        )
    )
    add("")


def pushback_row(a: dict[str, Any], pb: dict[str, Any]) -> list[str]:
    rej = pb.get("rejected") or {}
    return [
        f"run {a['run']}",
        str(a.get("workers", 1)),
        f"{pb['offered_rate']:g}",
        f"{pb['sent']:,}",
        f"{pb['sent'] - pb.get('retried_messages', 0):,}",
        f"{pb.get('retried_messages', 0):,}",
        ", ".join(f"{k} {v:,}" for k, v in rej.items()) or "0",
        " / ".join(fmt(pb[k]["p99"], 0) for k in ("latency_first_try", "latency_retried"))
        + f" / {fmt(pb['latency']['all']['p99'], 0)}",
        fmt((pb.get("latency_accepted_attempt") or {}).get("p99"), 0),
        f"{pb['lost_deliveries']:,}",
        stored_text(pb.get("stored")),
        load_cell(a.get("load")),
    ]


def render_scaleout(results: dict[str, Any], add: Any) -> None:
    cfg = results["config"]
    runs = runs_of(results)
    add("## Scale-out: uvicorn `--workers`")
    add("")
    add(
        "The same WebSocket steps on "
        + ", ".join(str(w) for w in cfg["scaleout_full"])
        + " workers (CPU per message each way, the ladder, pushback), and CPU per message on "
        + ", ".join(str(w) for w in cfg["scaleout_cpu"])
        + " workers, beside one worker. CPU is summed over uvicorn's supervisor and its "
        f"workers. **This machine has {results['machine']['cores']} cores**, shared by the "
        "workers, PostgreSQL, Redis and the load generator: figures beyond "
        f"{results['machine']['cores']} workers are CPU-bound by the machine, and even 2 "
        "workers compete with the rest for the second core."
    )
    add("")
    rows = []
    workers_all = [1, *cfg["scaleout_full"], *cfg["scaleout_cpu"]]
    for w in workers_all:
        for r in runs:
            for t in ["plugin", FLOOR]:
                a = arm(results, t, r, workers=w)
                if a is None:
                    continue
                c = ws_row_cells(a)
                rows.append(
                    [
                        str(w),
                        f"run {r}",
                        t,
                        c["c2s"],
                        c["s2c"],
                        c["sustained"] if a.get("ladder") else "-",
                        c["ladder"] or "-",
                        c["load"],
                    ]
                )
    add(
        table(
            [
                "workers",
                "run",
                "target",
                "CPU ms/msg c→s",
                "CPU ms/msg s→c",
                "sustained msg/s",
                "ladder (msg/s: p99 ms)",
                "load",
            ],
            rows,
        )
    )
    add("")


def render_rest(results: dict[str, Any], add: Any) -> None:
    cfg = results["config"]
    runs = runs_of(results)
    rest = results["rest"]
    add("## REST")
    add("")
    add(
        "Concurrent clients (asyncio + h11, one keep-alive connection each), each a distinct "
        "signed-in customer (session cookie, CSRF cookie and header) in its own conversation "
        f"of {rest.get('history_rows', cfg['rest_history'])} messages, in a closed loop for "
        f"{cfg['rest_duration']:g} s: POST a message (`/api/chat/conversations/<id>/messages/`) "
        "or GET the newest history page. A POST answered 503 or 429 is sent again after its "
        "`Retry-After` with the same `client_id` until stored or "
        f'{cfg["rest_drain"]:g} s after the window (then it gives up: "gave up"); a '
        'request in flight is waited for up to 30 s ("other" counts timeouts and connection '
        "errors). The floor (`bench/floor/...`) runs on the "
        "same server, right after the plugin, with the same clients (its POSTs go to "
        "conversations only it writes to). CPU = the worker's CPU over the window / 2xx "
        "answers. One uvicorn worker."
    )
    add("")
    rows = []
    for n in cfg["rest_clients"]:
        for method in ("POST", "GET"):
            for r in runs:
                p = rest_step_of(results, "plugin", method, n, r)
                f = rest_step_of(results, "rest_floor", method, n, r)
                for name, st in (("plugin", p), ("floor", f)):
                    if st is None:
                        continue
                    s = st["statuses"]
                    rows.append(
                        [
                            f"{n}",
                            "send (POST)" if method == "POST" else "history (GET)",
                            f"run {r}",
                            name,
                            f"{s.get('2xx', 0):,} / {s.get('429', 0):,} / {s.get('503', 0):,} / "
                            f"{s.get('other 5xx', 0):,} / {s.get('other', 0) + st['client_errors']:,}",
                            fmt(st["req_per_s"], 0),
                            f"{fmt(st['latency']['p50'], 0)} / {fmt(st['latency']['p99'], 0)}",
                            fmt(rest_cpu_ms(st), 1),
                            rx(ratio(rest_cpu_ms(p), rest_cpu_ms(f))) if name == "plugin" else "",
                            (
                                stored_text(st.get("stored"))
                                + (
                                    f", {st['retried_messages']} retried, {st['gave_up']} gave up"
                                    if name == "plugin"
                                    else ""
                                )
                            )
                            if method == "POST"
                            else "",
                            load_cell(st.get("load")),
                        ]
                    )
    add(
        table(
            [
                "clients",
                "operation",
                "run",
                "arm",
                "2xx / 429 / 503 / other 5xx / other",
                "req/s",
                "p50 / p99 ms",
                "worker CPU ms per 2xx",
                "CPU vs floor",
                "stored once (DB)",
                "load",
            ],
            rows,
        )
    )
    add("")
    bodies = [
        b for st in rest.get("steps", []) for b in st.get("bodies_5xx", []) if st["arm"] == "plugin"
    ]
    if bodies:
        add("First 5xx bodies (plugin): " + "; ".join(f"`{b[:160]}`" for b in bodies[:3]))
        add("")
    if rest.get("server_log", {}).get("errors"):
        add(
            f"The server logged {rest['server_log']['errors']} error lines, first: "
            + "; ".join(f"`{x[:160]}`" for x in rest["server_log"]["first"][:3])
        )
        add("")


def render_memory(results: dict[str, Any], add: Any) -> None:
    cfg = results["config"]
    runs = runs_of(results)
    if not (results.get("idle") or any(a.get("idle") for a in results.get("ws") or [])):
        return
    add("## Memory")
    add("")
    add(
        f"{cfg['idle_sockets']:,} idle customer sockets (each its own user and conversation, "
        "heartbeating) on a fresh worker of their own: (RSS with them - RSS with 10) / sockets. "
        "permessage-deflate off = uvicorn `--ws-per-message-deflate false`; on = uvicorn's "
        "default (the client always offers it, like browsers). Under load: (RSS after the "
        "one-worker WebSocket steps - RSS of the fresh server before its first ramp, after 5 "
        "sockets and a few messages paid the first-use costs) / the sockets open, message "
        "buffers and caches included."
    )
    add("")
    rows = []
    for r in runs:
        po, fo = idle_kb(results, "plugin", r, False), idle_kb(results, FLOOR, r, False)
        pn, fn = idle_kb(results, "plugin", r, True), idle_kb(results, FLOOR, r, True)
        pl, fl = (
            rss_under_load_kb(arm(results, "plugin", r)),
            rss_under_load_kb(arm(results, FLOOR, r)),
        )
        rows.append(
            [
                f"run {r}",
                f"{fmt(po)} / {fmt(fo)} = {rx(ratio(po, fo))}",
                f"{fmt(pn)} / {fmt(fn)} = {rx(ratio(pn, fn))}",
                f"{fmt(pl)} / {fmt(fl)} = {rx(ratio(pl, fl))}",
            ]
        )
    add(
        table(
            [
                "run",
                "idle KB/socket, deflate off: plugin / relay",
                "idle KB/socket, deflate on: plugin / relay",
                "KB/socket under load: plugin / relay",
            ],
            rows,
        )
    )
    add("")


def render_profiles(results: dict[str, Any], add: Any) -> None:
    profiles = []
    if results.get("ws_profile"):
        profiles.append(
            ("WebSocket (plugin, one worker, the sustained rate)", results["ws_profile"])
        )
    for method, prof in ((results.get("rest") or {}).get("profiles") or {}).items():
        profiles.append(
            (f"REST {method} (plugin, {min(results['config']['rest_clients'])} clients)", prof)
        )
    if not profiles:
        return
    add("## Profile (py-spy)")
    add("")
    add(
        "py-spy `record --gil --nonblocking` of the plugin's worker during an extra step after "
        "the measured ones (so its own CPU is in no figure above). Shares of the samples "
        "holding the GIL, inclusive (a frame and everything it calls); raw stacks in the "
        "files named."
    )
    add("")
    for label, prof in profiles:
        add(f"### {label}")
        add("")
        if prof.get("error"):
            add(f"No profile: {prof['error']}")
            add("")
            continue
        add(f"{prof.get('samples', 0):,} samples; raw stacks: `{prof.get('path')}`.")
        add("")
        add(
            table(
                ["frame (django_support_chat)", "%"],
                [[f"`{k}`", fmt(v)] for k, v in prof.get("inclusive_ours", [])[:12]],
            )
        )
        add("")
        add(
            table(
                ["frame (all, inclusive)", "%"],
                [[f"`{k}`", fmt(v)] for k, v in prof.get("inclusive_all", [])[:12]],
            )
        )
        add("")


# -- before / after ------------------------------------------------------------------------------------


def headline(results: dict[str, Any]) -> dict[str, float | None]:
    """The figures the before/after table compares (run means where there are two)."""

    def mean(vals: list[float | None]) -> float | None:
        vals2 = [v for v in vals if v is not None]
        return sum(vals2) / len(vals2) if vals2 else None

    runs = runs_of(results)
    out: dict[str, float | None] = {}
    for key, label in (("c2s", "customer → staff"), ("s2c", "staff → customer")):
        out[f"WS worker CPU ms/msg, {label}"] = mean(
            [cpu_net_ms(arm(results, "plugin", r), key) for r in runs]
        )
    out["WS sustained msg/s, one worker"] = mean(
        [sustained(arm(results, "plugin", r)) for r in runs]
    )

    def pushback_p99(pb: dict[str, Any]) -> float | None:
        # From the accepted attempt (what the target judges); a results file without it
        # had no refusals to retry, so its first attempts are the accepted ones.
        latency = pb.get("latency_accepted_attempt") or pb.get("latency", {}).get("all", {})
        return latency.get("p99")

    out["WS pushback p99 ms (accepted attempt; 2x each code's own sustained rate)"] = mean(
        [pushback_p99((arm(results, "plugin", r) or {}).get("pushback") or {}) for r in runs]
    )
    for n in results["config"].get("rest_clients", []):
        for method, label in (("POST", "send"), ("GET", "history")):
            out[f"REST {label} CPU ms/2xx, {n} clients"] = mean(
                [rest_cpu_ms(rest_step_of(results, "plugin", method, n, r)) for r in runs]
            )
            out[f"REST {label} p99 ms, {n} clients"] = mean(
                [
                    (rest_step_of(results, "plugin", method, n, r) or {})
                    .get("latency", {})
                    .get("p99")
                    for r in runs
                ]
            )
            out[f"REST {label} other 5xx, {n} clients"] = mean(
                [
                    (rest_step_of(results, "plugin", method, n, r) or {})
                    .get("statuses", {})
                    .get("other 5xx", 0)
                    for r in runs
                    if rest_step_of(results, "plugin", method, n, r)
                ]
            )
    out["idle KB/socket, deflate off"] = mean([idle_kb(results, "plugin", r, False) for r in runs])
    return out


def render_before_after(results: dict[str, Any]) -> list[str]:
    if not BEFORE_JSON.exists():
        return []
    before = json.loads(BEFORE_JSON.read_text())
    if "ws" not in before or not isinstance(before.get("rest", {}), dict):
        return []  # a results file of the earlier harness: not the same figures
    b, a = headline(before), headline(results)
    L = ["## Before / after", ""]
    note = before.get("change_note", "").strip()
    if note:
        L += [note, ""]
    L.append(
        table(
            ["plugin (mean of the runs)", "before", "after"],
            [[k, fmt(b.get(k), 1), fmt(a.get(k), 1)] for k in a],
        )
    )
    L.append("")
    L.append(
        f"Before: `benchmarks/results/before.json` ({before.get('started', '?')}, "
        f"{before['config']['mode']} mode, commit {before['machine'].get('git')}, load average "
        f"{loadavg(before['machine']['load_avg_start'])} at its start); after: this run "
        f"(load average {loadavg(results['machine']['load_avg_start'])})."
    )
    L.append("")
    prof = before.get("ws_profile") or {}
    if prof.get("inclusive_ours"):
        L += [
            "### Before: WebSocket profile (py-spy)",
            "",
            f"The same step on the code before; {prof.get('samples', 0):,} samples, raw "
            f"stacks: `{prof.get('path')}`. After: [Profile](#profile-py-spy).",
            "",
            table(
                ["frame (django_support_chat)", "%"],
                [[f"`{k}`", fmt(v)] for k, v in prof["inclusive_ours"][:12]],
            ),
            "",
            table(
                ["frame (all, inclusive)", "%"],
                [[f"`{k}`", fmt(v)] for k, v in (prof.get("inclusive_all") or [])[:12]],
            ),
            "",
        ]
    return L


CAVEATS = """## Caveats

- Two cores for everything: the worker(s), PostgreSQL, Redis and the load generator compete,
  and other jobs may run on the machine at the same time (see the load columns). Compare
  ratios within a run rather than absolute figures across runs.
- One Python load-generator process: at the floor's highest ladder steps it can be the
  limit (the floor's sustained rate is then a lower bound).
- CPU per message is net of the idle baseline (heartbeats and presence of the same sockets,
  measured right after the ramp) and divided by the messages the server acknowledged. In
  full mode the baseline and the steps span whole heartbeat intervals (10 s), so the
  periodic work (the watchdog's sweep) is in each of them once; quick mode measures shorter
  windows and its CPU figures move more from run to run.
- The email worker runs, as in production, but each plugin arm's pending email rows are
  deleted when the arm ends: they fall due 120 s after their window opened, and the burst
  of the email worker and PostgreSQL would land in the next arm's measurements.
- PostgreSQL runs with its defaults, fsync on: every commit waits for the disk of this
  machine (a cloud VM's virtual disk), as it would in production.
"""
