"""Turn the results of benchmarks/run.py into docs/performance.md and docs/performance-*.png."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

P99_LIMIT_MS = 250.0
FLOOR = "channels_pubsub"
ORDER = [
    "plugin",
    "plugin_threadpool",
    "plugin_2workers",
    "channels_pubsub",
    "channels_core",
    "redis_pubsub",
]
SHORT = {
    "plugin": "plugin",
    "plugin_threadpool": "plugin, DB thread pool (experiment)",
    "plugin_2workers": "plugin, 2 workers (experiment)",
    "channels_pubsub": "Channels PubSub",
    "channels_core": "Channels core",
    "redis_pubsub": "raw Redis",
}
BEFORE_JSON = Path(__file__).resolve().parent / "results" / "before.json"


# -- derived figures ---------------------------------------------------------------------------------


def steps_of(results: dict[str, Any], target: str) -> list[dict[str, Any]]:
    out = []
    for run in results.get("load", []):
        if run["target"] == target:
            for st in run["steps"]:
                out.append({**st, "_run": run})
    return out


def step_at(results: dict[str, Any], target: str, n: int, rate: float) -> dict[str, Any] | None:
    for st in steps_of(results, target):
        if st["n"] == n and abs(st["rate_per_conv"] - rate) < 1e-9:
            return st
    return None


def passes(st: dict[str, Any]) -> bool:
    p99 = st["latency"]["all"]["p99"]
    return (
        p99 is not None
        and p99 < P99_LIMIT_MS
        and st["lost_messages"] == 0
        and st["duplicates"] == 0
        and not st["aborted"]
        and st["sent"] > 0
    )


def sustained(results: dict[str, Any], target: str) -> float | None:
    ok = [st["offered_rate"] for st in steps_of(results, target) if passes(st)]
    return max(ok) if ok else (0.0 if steps_of(results, target) else None)


def per_msg(st: dict[str, Any] | None, key: str, scale: float = 1.0) -> float | None:
    """Per message the server acknowledged (stored / relayed): a saturated server did not
    process all the messages offered to it."""
    if st is None or not st.get("sent"):
        return None
    done = st.get("acked") or st["sent"]
    return st["counters"].get(key, 0.0) * scale / done


def cpu_net_per_msg(st: dict[str, Any] | None, key: str) -> float | None:
    """CPU ms per acknowledged message, less the idle baseline's CPU rate (heartbeats,
    presence, watchdogs of the same sockets, measured right after the ramp): the marginal
    cost of a message."""
    if st is None or not st.get("sent") or "_run" not in st:
        return None
    idle = st["_run"]["idle"]
    rate = idle["counters"].get(key, 0.0) / max(1e-9, idle["seconds"])
    wall = st["counters"].get("wall", 0.0)
    done = st.get("acked") or st["sent"]
    return 1000.0 * max(0.0, st["counters"].get(key, 0.0) - rate * wall) / done


def redis_net_per_msg(st: dict[str, Any]) -> float | None:
    """Redis commands per message, less the heartbeat/idle rate measured before the steps."""
    if not st.get("sent"):
        return None
    idle = st["_run"]["idle"]
    idle_rate = idle["counters"].get("redis_cmds", 0.0) / max(1e-9, idle["seconds"])
    wall = st["counters"].get("wall", 0.0)
    done = st.get("acked") or st["sent"]
    return max(0.0, st["counters"].get("redis_cmds", 0.0) - idle_rate * wall) / done


def client_cpu_pct(st: dict[str, Any]) -> float:
    wall = st["counters"].get("wall", 0.0)
    return 100.0 * st["counters"].get("client_cpu", 0.0) / wall if wall else 0.0


def headline_point(results: dict[str, Any]) -> tuple[int, float]:
    ns = results["config"]["conversations"]
    rates = results["config"]["rates"]
    n = 500 if 500 in ns else max(ns)
    rate = 1.0 if 1.0 in rates else rates[0]
    return n, rate


def idle_rss_per_socket(results: dict[str, Any], target: str) -> dict[int, float]:
    for run in results.get("idle", []):
        if run["target"] == target:
            return {
                p["sockets"]: p["rss_per_socket"] for p in run["points"] if "rss_per_socket" in p
            }
    return {}


def evaluate(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Item 7 of issue #6: goals, not gates."""
    out: list[dict[str, Any]] = []
    if results.get("load"):
        n, rate = headline_point(results)
        plug, floor = step_at(results, "plugin", n, rate), step_at(results, FLOOR, n, rate)
        where = f"{n} conversations x {rate:g} msg/s"
        if plug and floor and floor["latency"]["all"]["p99"]:
            p, f = plug["latency"]["all"]["p99"], floor["latency"]["all"]["p99"]
            ratio = (p / f) if p is not None else None
            clean = plug["lost_messages"] == 0 and plug["duplicates"] == 0
            if plug.get("skipped"):
                value = (
                    f"not measurable: the plugin saturated at {n} x "
                    f"{plug['saturated_at']:g} msg/s already (floor p99 {fmt(f)} ms)"
                )
            else:
                value = (
                    f"{fmt(p)} ms vs {fmt(f)} ms = {fmt(ratio, 2)}x; lost "
                    f"{plug['lost_messages']} of {plug['sent']}, duplicated {plug['duplicates']}"
                )
            out.append(
                {
                    "name": f"p99 delivery at {where} within 1.5x the Channels PubSub floor, "
                    "nothing lost or duplicated",
                    "value": value,
                    "goal": "<= 1.5x, 0 lost, 0 duplicated",
                    "met": bool(ratio is not None and ratio <= 1.5 and clean),
                }
            )
        sp, sf = sustained(results, "plugin"), sustained(results, FLOOR)
        if sp is not None and sf:
            out.append(
                {
                    "name": "sustained throughput >= 60 % of the Channels PubSub floor",
                    "value": f"{sp:g} vs {sf:g} msg/s = {100 * sp / sf:.0f} %",
                    "goal": ">= 60 %",
                    "met": sp >= 0.6 * sf,
                }
            )
    asked = set(results["config"].get("idle_counts", []))
    variants = [
        ("plugin", "RSS per idle socket <= 40 KB (uvicorn's default: permessage-deflate on)"),
        (
            "plugin_nodeflate",
            "RSS per idle socket <= 40 KB, compression off (`--ws-per-message-deflate false`)",
        ),
    ]
    for target, name in variants:
        rss = {k: v for k, v in idle_rss_per_socket(results, target).items() if k in asked}
        if rss:
            out.append(
                {
                    "name": name,
                    "value": ", ".join(
                        f"{v / 1000:.1f} KB at {k:,}" for k, v in sorted(rss.items())
                    ),
                    "goal": "<= 40 KB (40,000 bytes) at every count",
                    "met": max(rss.values()) <= 40_000,
                }
            )
    return out


# -- formatting ----------------------------------------------------------------------------------------


def fmt(v: float | None, digits: int = 1) -> str:
    if v is None:
        return "-"
    if abs(v) >= 1000 and digits <= 1:
        return f"{v:,.0f}"
    return f"{v:.{digits}f}"


def ratio(a: float | None, b: float | None, digits: int = 1) -> str:
    if a is None or b is None or b == 0:
        return "-"
    r = a / b
    if r >= 100:
        return f"{r:,.0f}x"
    if 0 < r < 0.01:
        return "<0.01x"
    if 0 < r < 1:
        return f"{r:.2g}x"
    return f"{r:.{digits}f}x"


def table(headers: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(headers) + " |", "| " + " | ".join("---" for _ in headers) + " |"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def status_of(st: dict[str, Any]) -> str:
    if st.get("skipped"):
        return f"not run: saturated at r = {st['saturated_at']:g}"
    flags = []
    if st["aborted"]:
        flags.append("saturated")
    if client_cpu_pct(st) >= 90:
        flags.append("client-bound")
    if st.get("sockets_closed"):
        flags.append(f"{st['sockets_closed']} sockets closed")
    if passes(st):
        flags.insert(0, "ok")
    return ", ".join(flags) or "missed"


# -- plots -------------------------------------------------------------------------------------------


def _save(fig: Any, path: Path) -> str:
    """Write ``fig`` as a PNG next to performance.md and return its file name."""
    import matplotlib.pyplot as plt

    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path.name


def _style_rate_axis(ax: Any, n: int) -> None:
    """Log-log axes of one conversation count, offered rate on x."""
    from matplotlib.ticker import NullFormatter

    ax.set_xscale("log")
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_yscale("log")
    ax.set_title(f"N = {n} conversations")
    ax.set_xlabel("offered messages/s")
    ax.grid(alpha=0.3, which="both")


def plots(results: dict[str, Any], docs: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    written = []
    colors = {
        "plugin": "C3",
        "plugin_threadpool": "C1",
        "plugin_2workers": "C4",
        "channels_pubsub": "C0",
        "channels_core": "C2",
        "redis_pubsub": "C7",
    }
    ns = results["config"]["conversations"]
    targets = [t for t in ORDER if steps_of(results, t)]
    if targets:
        fig, axes = plt.subplots(1, len(ns), figsize=(4.2 * len(ns), 3.8), squeeze=False)
        for ax, n in zip(axes[0], ns, strict=True):
            for t in targets:
                pts = sorted(
                    (st["offered_rate"], st["latency"]["all"]["p99"], st["latency"]["all"]["p50"])
                    for st in steps_of(results, t)
                    if st["n"] == n and st["latency"]["all"]["p99"] is not None
                )
                if pts:
                    ax.plot(
                        [p[0] for p in pts],
                        [p[1] for p in pts],
                        "o-",
                        color=colors[t],
                        label=f"{SHORT[t]} p99",
                    )
                    ax.plot([p[0] for p in pts], [p[2] for p in pts], ":", color=colors[t])
            ax.axhline(P99_LIMIT_MS, color="k", lw=0.8, ls="--")
            _style_rate_axis(ax, n)
        axes[0][0].set_ylabel("delivery latency, ms (p99 solid, p50 dotted)")
        axes[0][0].legend(fontsize=7)
        written.append(_save(fig, docs / "performance-latency.png"))

        fig, axes = plt.subplots(1, len(ns), figsize=(4.2 * len(ns), 3.8), squeeze=False)
        for ax, n in zip(axes[0], ns, strict=True):
            top, low = 1.0, float("inf")
            for t in targets:
                pts = sorted(
                    (st["offered_rate"], st["delivered_msgs_per_s"])
                    for st in steps_of(results, t)
                    if st["n"] == n and not st.get("skipped") and st["delivered_msgs_per_s"] > 0
                )
                if pts:
                    top = max(top, *(p[0] for p in pts))
                    low = min(low, *(p[0] for p in pts))
                    ax.plot(
                        [p[0] for p in pts],
                        [p[1] for p in pts],
                        "o-",
                        color=colors[t],
                        label=SHORT[t],
                    )
            low = low / 2 if low != float("inf") else 1.0
            ax.plot([low, top], [low, top], color="k", lw=0.6, ls="--")
            _style_rate_axis(ax, n)
        axes[0][0].set_ylabel("messages/s delivered to every recipient")
        axes[0][0].legend(fontsize=7)
        written.append(_save(fig, docs / "performance-throughput.png"))

        ref = reference_step(results)
        n, rate = (ref["n"], ref["rate_per_conv"]) if ref else headline_point(results)
        fig, ax = plt.subplots(figsize=(7.5, 4.0))
        labels, parts = [], {"worker": [], "PostgreSQL": [], "Redis": []}
        for t in targets:
            st = step_at(results, t, n, rate)
            if st is None or not st["sent"]:
                continue
            labels.append(SHORT[t].replace(", ", ",\n").replace(" (", "\n("))
            parts["worker"].append(cpu_net_per_msg(st, "worker_cpu") or 0)
            parts["PostgreSQL"].append(cpu_net_per_msg(st, "pg_cpu") or 0)
            parts["Redis"].append(cpu_net_per_msg(st, "redis_cpu") or 0)
        bottom = [0.0] * len(labels)
        for (name, vals), color in zip(parts.items(), ["C3", "C0", "C1"], strict=True):
            ax.bar(labels, vals, bottom=bottom, label=name, color=color)
            bottom = [b + v for b, v in zip(bottom, vals, strict=True)]
        ax.set_ylabel("server CPU ms per message (net of idle)")
        ax.set_title(f"Server CPU per message at {n} conversations x {rate:g} msg/s")
        ax.legend(fontsize=8)
        written.append(_save(fig, docs / "performance-cpu.png"))

    if results.get("idle"):
        fig, ax = plt.subplots(figsize=(6.5, 3.6))
        for run in results["idle"]:
            pts = [(p["sockets"], p["rss"] / 2**20) for p in run["points"]]
            ax.plot([p[0] for p in pts], [p[1] for p in pts], "o-", label=run["target"])
        ax.set_xlabel("open sockets on one worker")
        ax.set_ylabel("worker RSS, MiB")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
        written.append(_save(fig, docs / "performance-memory.png"))

    if results.get("rest"):
        fig, ax = plt.subplots(figsize=(8, 3.8))
        ops = list(results["rest"][0]["latency"].keys())
        width = 0.8 / len(results["rest"])
        for k, stage in enumerate(results["rest"]):
            xs = [i + k * width for i in range(len(ops))]
            ax.bar(
                xs,
                [stage["latency"][o]["p50"] for o in ops],
                width,
                label=f"p50, {stage['conversation_rows']:,} messages",
            )
            ax.scatter(xs, [stage["latency"][o]["p99"] for o in ops], marker="_", s=200, color="k")
        ax.set_xticks([i + width * (len(results["rest"]) - 1) / 2 for i in range(len(ops))])
        ax.set_xticklabels([o.replace(" (", "\n(") for o in ops], fontsize=7)
        ax.set_ylabel("ms (bar p50, tick p99)")
        ax.legend(fontsize=8)
        written.append(_save(fig, docs / "performance-rest.png"))
    return written


# -- the document ------------------------------------------------------------------------------------


def write(results: dict[str, Any], out: Path) -> None:
    docs = out.parent
    docs.mkdir(parents=True, exist_ok=True)
    images = plots(results, docs)
    out.write_text(render(results, images))


def render(results: dict[str, Any], images: list[str]) -> str:
    cfg = results["config"]
    m = results["machine"]
    L: list[str] = []
    add = L.append
    add("# Performance")
    add("")
    add(
        "Generated by `python benchmarks/run.py"
        + (" --quick" if cfg["mode"] == "quick" else "")
        + f"` on {results['started']} ({cfg['mode']} mode, {results['elapsed_seconds'] / 60:.1f} "
        "minutes). Do not edit by hand: rerun the command. Benchmarks print figures; they never "
        "fail on time."
    )
    if cfg["mode"] == "quick":
        add("")
        add(
            "> **Quick mode**: shortened steps and smaller sizes for development; the figures "
            "are indicative only. The full run is `python benchmarks/run.py`."
        )
    add("")
    add("## How to run")
    add("")
    add("```bash")
    add('pip install -e ".[example,bench]"   # matplotlib, psutil, py-spy, websockets, ...')
    add("python benchmarks/run.py            # full run, ~20 minutes, writes this file")
    add("python benchmarks/run.py --quick    # under two minutes, for development")
    add("```")
    add("")
    add(
        "It starts its own PostgreSQL 15 cluster and redis-server on free loopback ports in a "
        "temporary directory and removes them at the end. Options: `--targets`, "
        "`--conversations`, `--rates`, `--skip rest,inbox,load,idle,profile`, `--profile`; "
        "see `benchmarks/README.md`."
    )
    add("")
    add("## Machine")
    add("")
    la0 = ", ".join(f"{x:.2f}" for x in m["load_avg_start"])
    la1 = ", ".join(f"{x:.2f}" for x in results.get("load_avg_end", [0, 0, 0]))
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
                    "load average",
                    f"{la0} at the start, {la1} at the end (other jobs share this machine)",
                ],
            ],
        )
    )
    add("")
    add(
        SETUP_TEXT.format(
            S=cfg["lobbies"],
            duration=cfg["duration"],
            drain=cfg["drain"],
            abort=cfg["abort_after"],
            ramp=cfg["ramp_rate"],
            limit=P99_LIMIT_MS,
        )
    )

    # -- headline
    evals = results.get("targets_eval") or evaluate(results)
    if results.get("load"):
        n, rate = headline_point(results)
        add(f"## Headline: {n} conversations x {rate:g} msg/s per conversation")
        add("")
        add(
            "Every figure of the plugin beside the floors, measured in the same run with the same "
            "client and payload. Ratios are plugin / floor."
        )
        add("")
        targets = [t for t in ORDER if steps_of(results, t)]
        pts = {t: step_at(results, t, n, rate) for t in targets}
        rss = {t: idle_rss_per_socket(results, t) for t in targets}
        rows = []

        def row(label: str, fn: Any, digits: int = 1, ratios: bool = True) -> None:
            vals = {
                t: (
                    fn(t)
                    if pts.get(t) is not None or label.startswith(("sustained", "RSS"))
                    else None
                )
                for t in targets
            }
            cells = [fmt(vals[t], digits) for t in targets]
            p = vals.get("plugin")
            for f in ("channels_pubsub", "channels_core", "redis_pubsub"):
                if f in targets and "plugin" in targets:
                    cells.append(ratio(p, vals[f]) if ratios else "")
            rows.append([label, *cells])

        lat = lambda key, q: lambda t: pts[t]["latency"][key][q]  # noqa: E731
        row("p50 delivery, all recipients (ms)", lat("all", "p50"))
        row("p99 delivery, all recipients (ms)", lat("all", "p99"))
        row("p99 customer → staff (ms)", lat("customer_to_staff", "p99"))
        row("p99 staff → customer (ms)", lat("staff_to_customer", "p99"))
        row("max delivery (ms)", lat("all", "max"))
        row("lost messages", lambda t: pts[t]["lost_messages"], 0, ratios=False)
        row("duplicated deliveries", lambda t: pts[t]["duplicates"], 0, ratios=False)
        row("messages/s delivered", lambda t: pts[t]["delivered_msgs_per_s"], 0)
        row("sustained throughput (msg/s)", lambda t: sustained(results, t), 0)
        row(
            "worker CPU ms / message (net of idle)",
            lambda t: None if t == "redis_pubsub" else cpu_net_per_msg(pts[t], "worker_cpu"),
            2,
        )
        row(
            "worker+PG+Redis CPU ms / message (net of idle)",
            lambda t: sum(
                cpu_net_per_msg(pts[t], k) or 0 for k in ("worker_cpu", "pg_cpu", "redis_cpu")
            ),
            2,
        )
        row("SQL statements / message", lambda t: per_msg(pts[t], "sql_statements"), 1)
        row("Redis commands / message (net of heartbeats)", redis_net_per_msg_t(pts), 1)
        row("RSS per socket under load (KB)", lambda t: rss_under_load(pts[t]), 1)
        top_count = max(results["config"].get("idle_counts") or [0])
        row(
            f"RSS per idle socket at {top_count:,} sockets (KB)",
            lambda t: (rss[t][top_count] / 1000) if top_count in rss.get(t, {}) else None,
            1,
        )
        row("load generator CPU (% of one core)", lambda t: client_cpu_pct(pts[t]), 0, ratios=False)
        headers = ["", *[SHORT[t] for t in targets]]
        headers += [
            f"plugin / {SHORT[f]}"
            for f in ("channels_pubsub", "channels_core", "redis_pubsub")
            if f in targets and "plugin" in targets
        ]
        add(table(headers, rows))
        add("")
        add(
            "Floors have no database: their SQL figures are 0 and the raw Redis floor has no "
            "server process (its CPU is Redis' alone). Ratios against 0 print as `-`."
        )
        add("")

    add("## Targets (issue #6, item 7)")
    add("")
    if evals:
        add(
            table(
                ["target", "measured", "goal", "result"],
                [
                    [
                        e["name"],
                        e["value"],
                        e["goal"],
                        "met" if e["met"] else ("**missed**" if e["met"] is not None else "n/a"),
                    ]
                    for e in evals
                ],
            )
        )
    else:
        add("Not evaluated in this run (phases skipped).")
    add("")
    if cfg["mode"] == "quick":
        add("In quick mode the p99 target is read at the largest N of the run, not at 500.")
        add("")

    L.extend(analysis(results))

    if images:
        add("## Plots")
        add("")
        for img in images:
            add(f"![{img}]({img})")
            add("")

    if results.get("load"):
        add("## All load steps")
        add("")
        add(
            "Latencies in ms over every delivery of the step (customer → staff socket and lobbies, "
            "staff → customer socket and lobbies). CPU in ms per acknowledged message, net of the idle baseline; SQL from "
            "`pg_stat_statements`; Redis from `INFO commandstats` net of the heartbeat rate. "
            "`acked` = `message:sent` replies received (stored by the server); `deliv. msg/s` = "
            "messages received by all their recipients per second. "
            "`client %` is the load generator's own CPU (100 = one core): near 100 the figures "
            "measure the client, not the server."
        )
        add("")
        rows = []
        for n in cfg["conversations"]:
            for rate in cfg["rates"]:
                for t in ORDER:
                    st = step_at(results, t, n, rate)
                    if st is None:
                        continue
                    a = st["latency"]["all"]
                    rows.append(
                        [
                            f"{n}",
                            f"{rate:g}",
                            SHORT[t],
                            fmt(st["offered_rate"], 0),
                            fmt(st["achieved_rate"], 0),
                            str(st["sent"]),
                            str(st["acked"]),
                            fmt(st["delivered_msgs_per_s"], 0),
                            fmt(a["p50"]),
                            fmt(a["p95"]),
                            fmt(a["p99"]),
                            fmt(a["max"]),
                            fmt(st["latency"]["customer_to_staff"]["p99"]),
                            fmt(st["latency"]["staff_to_customer"]["p99"]),
                            str(st["lost_messages"]),
                            str(st["duplicates"]),
                            fmt(cpu_net_per_msg(st, "worker_cpu"), 2),
                            fmt(cpu_net_per_msg(st, "pg_cpu"), 2),
                            fmt(cpu_net_per_msg(st, "redis_cpu"), 2),
                            fmt(per_msg(st, "sql_statements"), 1),
                            fmt(per_msg(st, "sql_roundtrips"), 1),
                            fmt(redis_net_per_msg(st), 1),
                            fmt(client_cpu_pct(st), 0),
                            status_of(st),
                        ]
                    )
        add(
            table(
                [
                    "N",
                    "r",
                    "target",
                    "offered/s",
                    "sent/s",
                    "sent",
                    "acked",
                    "deliv. msg/s",
                    "p50",
                    "p95",
                    "p99",
                    "max",
                    "c→s p99",
                    "s→c p99",
                    "lost",
                    "dup",
                    "worker ms",
                    "PG ms",
                    "Redis ms",
                    "SQL stmts",
                    "DB round trips",
                    "Redis cmds",
                    "client %",
                    "status",
                ],
                rows,
            )
        )
        add("")
        add("## Ratios to the floors, step by step")
        add("")
        rows = []
        for n in cfg["conversations"]:
            for rate in cfg["rates"]:
                p = step_at(results, "plugin", n, rate)
                if p is None:
                    continue
                cells = [f"{n}", f"{rate:g}"]
                for f in ("channels_pubsub", "channels_core", "redis_pubsub"):
                    s = step_at(results, f, n, rate)
                    cells += [
                        ratio(p["latency"]["all"]["p99"], s["latency"]["all"]["p99"]) if s else "-",
                        ratio(p["delivered_msgs_per_s"], s["delivered_msgs_per_s"], 2)
                        if s
                        else "-",
                    ]
                rows.append(cells)
        add(
            table(
                [
                    "N",
                    "r",
                    "p99 vs Channels PubSub",
                    "msg/s vs Channels PubSub",
                    "p99 vs Channels core",
                    "msg/s vs Channels core",
                    "p99 vs raw Redis",
                    "msg/s vs raw Redis",
                ],
                rows,
            )
        )
        add("")
        add(
            "Sustained throughput (highest offered rate with p99 < "
            f"{P99_LIMIT_MS:.0f} ms and nothing lost): "
            + ", ".join(
                f"{SHORT[t]} {fmt(sustained(results, t), 0)} msg/s"
                for t in ORDER
                if steps_of(results, t)
            )
            + "."
        )
        add("")
        add(
            "Ramp: "
            + "; ".join(
                f"{SHORT[r['target']]} N={r['n']}: {r['sockets']} sockets in {r['ramp']['seconds']:.1f} s"
                + (
                    f" ({r['ramp']['failed']} failed: {r['connect_errors'][:1]})"
                    if r["ramp"]["failed"]
                    else ""
                )
                for r in results["load"]
            )
            + "."
        )
        add("")

    if results.get("idle"):
        add("## Idle sockets on one worker")
        add("")
        add(
            "Customer sockets only (each in its own conversation, heartbeating every "
            "`heartbeat_interval` as clients must), ramped to each count on one uvicorn worker. "
            "RSS per socket = (RSS at the count - RSS with 10 warm sockets) / sockets held. "
            "`_nodeflate`: the same server started with `--ws-per-message-deflate false` "
            "(the client still offers compression; the server declines). `closed`: close codes "
            "of sockets the server dropped (4408: no heartbeat processed for two intervals; "
            "1006: connection lost without a close frame)."
        )
        add("")
        rows = []
        for run in results["idle"]:
            for p in run["points"][1:]:
                codes = p.get("close_codes") or {}
                rows.append(
                    [
                        run["target"],
                        f"{p['sockets']:,}",
                        f"{p['held']:,}",
                        str(p["failed"]),
                        ", ".join(f"{v:,} x {k}" for k, v in sorted(codes.items())) or "-",
                        fmt(p["rss"] / 2**20, 0),
                        fmt(p["rss_per_socket"] / 1000, 1),
                        fmt(p["ramp_seconds"], 1),
                        fmt(100 * p["worker_cpu_per_s"], 0),
                        fmt(100 * p["client_cpu_per_s"], 0) if "client_cpu_per_s" in p else "-",
                    ]
                )
        add(
            table(
                [
                    "server",
                    "sockets",
                    "held",
                    "failed",
                    "closed",
                    "worker RSS MiB",
                    "KB / socket",
                    "ramp s",
                    "worker CPU % while idle",
                    "client CPU %",
                ],
                rows,
            )
        )
        add("")
        plugin_points = [
            p for r in results["idle"] if r["target"] == "plugin" for p in r["points"][1:]
        ]
        if plugin_points:
            full = [p["sockets"] for p in plugin_points if p["held"] == p["sockets"]]
            last = plugin_points[-1]
            text = (
                f"One plugin worker held every socket up to {max(full):,}"
                if full
                else "One plugin worker did not hold the first count"
            )
            if last["held"] < last["sockets"]:
                text += (
                    f"; asked for {last['sockets']:,} it held {last['held']:,} (the ramp slowed "
                    f"to {last['sockets'] / max(1e-9, last['ramp_seconds']):.0f} sockets/s"
                    " overall, and sockets were dropped as listed)"
                )
            else:
                text += ", the most this run asked for"
            add(text + f". `ulimit -n` was {results['nofile']:,}.")
            add("")

    if results.get("rest"):
        add("## REST API")
        add("")
        add(
            "Sequential keep-alive HTTP/1.1 requests to one uvicorn worker (session cookie + "
            "CSRF token), after 3 warm-up requests each. All messages sit in the one conversation "
            "being read, so the history pages read the largest conversation there is. The deep "
            "page is DRF's keyset cursor pointing near the oldest message."
        )
        add("")
        ops = list(results["rest"][0]["latency"].keys())
        rows = []
        for op in ops:
            cells = [op]
            for stage in results["rest"]:
                r = stage["latency"][op]
                cells += [fmt(r["p50"]), fmt(r["p95"]), fmt(r["p99"])]
            small, big = results["rest"][0]["latency"][op], results["rest"][-1]["latency"][op]
            cells.append(ratio(big["p50"], small["p50"], 2))
            rows.append(cells)
        heads = ["operation"]
        for stage in results["rest"]:
            heads += [f"p50 @ {stage['size']:,} msgs", "p95", "p99"]
        heads.append("p50 ratio")
        add(table(heads, rows))
        add("")
        add(
            "Rows: "
            + "; ".join(
                f"{s['table_rows']:,} in the table ({s['conversation_rows']:,} in the "
                f"conversation), inserted in {s['insert_seconds']:.1f} s"
                for s in results["rest"]
            )
            + "."
        )
        add("")

    if results.get("inbox"):
        add("## Inbox list: queries per page")
        add("")
        add(
            "Django's `CaptureQueriesContext` around one request through the test client, as a "
            "staff user; every conversation has a last message and one unread."
        )
        add("")
        rows = []
        for r in results["inbox"]:
            for key, label in (
                ("api_inbox", "REST `GET /api/chat/inbox/`"),
                ("html_inbox", "HTML inbox `GET /admin/chat/`"),
            ):
                rows.append(
                    [
                        f"{r['conversations']:,}",
                        label,
                        str(r[key]["queries"]),
                        fmt(r[key]["ms_median"], 1),
                        str(r[key]["status"]),
                    ]
                )
        add(table(["conversations", "page", "queries", "median ms", "status"], rows))
        add("")

    prof = results.get("profile")
    if prof and "inclusive_all" in prof:
        add("## Profile of the plugin's worker")
        add("")
        add(
            f"py-spy (`record --gil --nonblocking`, 200 Hz) on the uvicorn worker during the "
            f"{prof['n']} x {prof['rate']:g} msg/s step: only the thread holding the GIL is sampled, "
            f"so this is where the worker's Python CPU goes. {prof['samples']:,} samples. Shares are "
            "of all samples; inclusive = the frame is anywhere on the stack (the database thread's "
            "frames sit under `SyncToAsync.thread_handler`, the event loop's under "
            "`run_until_complete`). Raw stacks: `benchmarks/results/profile-*.txt`."
        )
        add("")
        add(
            table(
                ["frame (django_support_chat)", "inclusive %"],
                [[f"`{k}`", fmt(v)] for k, v in prof["inclusive_ours"]],
            )
        )
        add("")
        add(
            table(
                ["frame (any)", "inclusive %"],
                [[f"`{k}`", fmt(v)] for k, v in prof["inclusive_all"]],
            )
        )
        add("")
        add(table(["frame (any)", "self %"], [[f"`{k}`", fmt(v)] for k, v in prof["self_all"]]))
        add("")
        if prof.get("statements"):
            add(
                "SQL of the same step, from `pg_stat_statements` (reset at the start of the step), "
                "per message sent. `FOR KEY SHARE` rows are PostgreSQL's own checks of the "
                "deferred foreign keys at COMMIT, not statements Django sends."
            )
            add("")
            add(
                table(
                    ["per message", "statement (normalised, cut)"],
                    [
                        [fmt(c, 2), "`" + q[:150].replace("|", "/") + "`"]
                        for c, q in prof["statements"]
                        if c >= 0.05
                    ],
                )
            )
            add("")

    before_after = render_before_after(results)
    if before_after:
        L.extend(before_after)

    add(CAVEATS)
    return "\n".join(L) + "\n"


def reference_step(results: dict[str, Any]) -> dict[str, Any] | None:
    """The plugin step the analysis compares: its highest passing offered rate, else the
    unsaturated (or least saturated) step with the most messages."""
    steps = [st for st in steps_of(results, "plugin") if not st.get("skipped") and st["sent"]]
    if not steps:
        return None
    ok = [st for st in steps if passes(st)]
    if ok:
        return max(ok, key=lambda st: st["offered_rate"])
    return min(steps, key=lambda st: st["offered_rate"])


def _share(prof: dict[str, Any], prefix: str) -> float | None:
    found = [v for k, v in prof.get("inclusive_map", {}).items() if k.startswith(prefix)]
    return max(found) if found else None


def step_pairs(results: dict[str, Any], other_target: str, with_cpu: bool) -> list[str]:
    """ "N x r: p99 a → b ms[, worker CPU a → b ms/msg]" for every step the plugin and
    ``other_target`` both ran (not skipped)."""
    pairs = []
    for st in steps_of(results, "plugin"):
        other = step_at(results, other_target, st["n"], st["rate_per_conv"])
        if other is None or st.get("skipped") or other.get("skipped"):
            continue
        text = (
            f"{st['n']} x {st['rate_per_conv']:g}: p99 {fmt(st['latency']['all']['p99'], 0)}"
            f" → {fmt(other['latency']['all']['p99'], 0)} ms"
        )
        if with_cpu:
            text += (
                f", worker CPU {fmt(cpu_net_per_msg(st, 'worker_cpu'))} → "
                f"{fmt(cpu_net_per_msg(other, 'worker_cpu'))} ms/msg"
            )
        pairs.append(text)
    return pairs


def analysis(results: dict[str, Any]) -> list[str]:
    ref = reference_step(results)
    if ref is None:
        return []
    n, rate = ref["n"], ref["rate_per_conv"]
    L = ["## Analysis", ""]
    L.append(
        f"Compared at {n} conversations x {rate:g} msg/s ({fmt(ref['offered_rate'], 0)} msg/s "
        f"offered), the plugin's "
        + (
            "highest step within the p99 and loss limits."
            if passes(ref)
            else "least loaded step (it met no step's limits)."
        )
    )
    L.append("")
    cols = [
        t
        for t in (
            "plugin",
            "plugin_threadpool",
            "plugin_2workers",
            "channels_pubsub",
            "channels_core",
        )
        if step_at(results, t, n, rate) is not None
    ]
    rows = []

    def line(label: str, fn: Any, digits: int = 2, ratios: bool = True) -> None:
        vals = [fn(step_at(results, t, n, rate)) for t in cols]
        base = fn(step_at(results, FLOOR, n, rate)) if FLOOR in cols else None
        rows.append(
            [label, *[fmt(v, digits) for v in vals], ratio(vals[0], base) if ratios else ""]
        )

    line("worker CPU ms / message (net of idle)", lambda st: cpu_net_per_msg(st, "worker_cpu"))
    line(
        "PostgreSQL CPU ms / message (net of idle)",
        lambda st: cpu_net_per_msg(st, "pg_cpu"),
        ratios=False,  # the floors have no database: theirs is background noise
    )
    line("Redis CPU ms / message (net of idle)", lambda st: cpu_net_per_msg(st, "redis_cpu"))
    line("SQL statements / message", lambda st: per_msg(st, "sql_statements"), 1)
    line("DB round trips / message", lambda st: per_msg(st, "sql_roundtrips"), 1)
    line("Redis commands / message", redis_net_per_msg, 1)
    line("p99 delivery ms", lambda st: st["latency"]["all"]["p99"], 1)
    L.append(table(["", *[SHORT[t] for t in cols], "plugin / Channels PubSub"], rows))
    L.append("")
    w_plugin = cpu_net_per_msg(ref, "worker_cpu")
    floor = step_at(results, FLOOR, n, rate)
    w_floor = cpu_net_per_msg(floor, "worker_cpu") if floor else None
    if w_plugin:
        L.append(
            f"One core divided by the worker's CPU per message bounds one worker at about "
            f"**{1000 / w_plugin:,.0f} msg/s** for the plugin"
            + (
                f" and {1000 / w_floor:,.0f} msg/s for the bare Channels PubSub relay"
                if w_floor
                else ""
            )
            + ", before PostgreSQL, Redis and the load generator take their share of the two cores. "
            "Beyond that the plugin's worker falls behind: sends are still stored and answered "
            "(`acked`) while the broadcasts to the sockets queue up, which is why saturated steps "
            "show many acknowledged messages and few delivered ones."
        )
        L.append("")
    prof = results.get("profile")
    if prof and prof.get("inclusive_map"):
        db = _share(prof, "DatabaseSyncToAsync.thread_handler")
        loop = _share(prof, "BaseEventLoop.run_until_complete")
        send = _share(prof, "send_message (django_support_chat")
        ser = _share(prof, "message_data (django_support_chat")
        bleach = _share(prof, "render_text (django_support_chat")
        pub = _share(prof, "send_to_groups (django_support_chat")
        hop = _share(prof, "SyncToAsync.__call__ (asgiref")
        orm = _share(prof, "SQLCompiler.execute_sql")
        fanout = _share(prof, "BaseChatConsumer.chat_event")
        beat = _share(prof, "BaseChatConsumer.on_heartbeat")
        recv = _share(prof, "BaseChatConsumer.receive")
        pstep = (prof.get("run") or {}).get("steps") or [{}]
        saturated = bool(pstep[0].get("aborted"))
        L.append(
            f"Where the worker's Python CPU goes (py-spy `--gil` at {prof['n']} x "
            f"{prof['rate']:g} msg/s, "
            + ("a saturated step" if saturated else "the plugin's busiest unsaturated step")
            + ", the profile below): "
            f"{fmt(db, 0)} % on the database thread, where `send_message` takes {fmt(send, 0)} % "
            f"(Django ORM statements {fmt(orm, 0)} %) and building the message "
            f"(`message_data`, for the event and the `message:sent` reply) {fmt(ser, 0)} %, of "
            f"which bleach's linkify (`render_text`) {fmt(bleach, 0)} %; {fmt(loop, 0)} % on the "
            f"event loop, of which inbound frames (`receive`) {fmt(recv, 0)} %, handing calls to "
            f"the database thread (asgiref's `SyncToAsync`) {fmt(hop, 0)} %, publishing to Redis "
            f"(`send_to_groups`) {fmt(pub, 0)} %, fanning events out to sockets (`chat_event`) "
            f"{fmt(fanout, 0)} %" + (f" and heartbeats {fmt(beat, 0)} %" if beat else "") + "; "
            "the rest of the loop's share is Channels, uvicorn, websockets and redis-py plumbing. "
            f"The remaining {fmt(100 - (db or 0) - (loop or 0), 0)} % are stacks py-spy could not "
            "unwind to their thread's root (it samples without pausing the process)."
        )
        L.append("")
    tp = sustained(results, "plugin_threadpool")
    pl = sustained(results, "plugin")
    if tp is not None and pl is not None:
        pairs = step_pairs(results, "plugin_threadpool", with_cpu=True)
        L.append(
            "The thread-pool experiment (same code, the consumers' database calls on asgiref's "
            f"thread pool instead of one shared thread) sustained {fmt(tp, 0)} msg/s against the "
            f"plugin's {fmt(pl, 0)} msg/s. Step by step, plugin → thread pool: "
            + "; ".join(pairs)
            + ". Where the pool shortens the queue (lower p99 at the same rate) while the CPU per "
            "message stays the same, requests were waiting for the one database thread; where "
            "both saturate at the same rate, the limit is the CPU per message."
        )
        L.append("")
    w2 = sustained(results, "plugin_2workers")
    if w2 is not None and pl is not None:
        pairs = step_pairs(results, "plugin_2workers", with_cpu=False)
        L.append(
            "One worker per core (the same plugin on `--workers 2`) sustained "
            f"{fmt(w2, 0)} msg/s against one worker's {fmt(pl, 0)} msg/s. Step by step, "
            "one worker → two: " + "; ".join(pairs) + ". On this two-core machine the "
            "second worker shares its core with the load generator, PostgreSQL and Redis: "
            "the experiment shows the direction, not what a dedicated core would give."
        )
        L.append("")
    idle = {r["target"]: r for r in results.get("idle", [])}
    asked = set(results["config"].get("idle_counts") or [])

    def worst_rss(target: str) -> float | None:
        points = [p for p in idle.get(target, {}).get("points", [])[1:] if p["sockets"] in asked]
        return max((p["rss_per_socket"] for p in points), default=None)

    a, b = worst_rss("plugin"), worst_rss("plugin_nodeflate")
    fa, fb = worst_rss("channels_pubsub"), worst_rss("channels_pubsub_nodeflate")
    if a is not None and b is not None:
        floor_text = (
            f" The bare Channels PubSub relay: {fa / 1000:.0f} KB and {fb / 1000:.0f} KB."
            if fa is not None and fb is not None
            else ""
        )
        L.append(
            f"Idle memory: with permessage-deflate (what browsers negotiate by default) a socket "
            f"costs the plugin's worker up to {a / 1000:.0f} KB (at 1,000-5,000 sockets); with the "
            "server's compression off "
            f"(`--ws-per-message-deflate false`) {b / 1000:.1f} KB.{floor_text} The two zlib "
            "contexts of each socket are most of the difference; the rest of the plugin's "
            "share over the floor is the host's `AuthMiddlewareStack` (a scope copy per "
            "middleware, the session), its three groups per customer socket and the user "
            "and conversation it keeps."
        )
        L.append("")
    L.append(RECOMMENDATIONS)
    return L


RECOMMENDATIONS = """**What is left, and what would close the gap.** This round moved publishing to the
event loop, serialised each event once, cut the events and SQL statements per message and
shrank the idle socket (see the before/after table). What is left of the gap is the price of
storing every message: the ORM work of a send on the database thread, and the hand-off of
that work between the event loop and the thread, which share one GIL. Proposals for the
maintainers, larger than this round:

- Batch the database work of concurrent sends: one hand-off to the database thread for all
  the sends waiting, each still in its own transaction. This saves asgiref's per-call
  overhead and GIL hand-offs under load.
- Scale out: one uvicorn worker uses at most one core. Run one worker per core
  (`uvicorn --workers N`, or gunicorn with uvicorn workers). The Redis channel layer and
  presence already work across workers (tests/realtime/test_multiworker.py). Every server
  here runs on one worker, so the ratios compare like with like; the two-worker experiment
  above shows what a second worker buys.
- Memory: with permessage-deflate each socket holds two zlib contexts. For sites with many
  mostly idle sockets, `--ws-per-message-deflate false` halves the memory per socket
  (docs/realtime.md).
"""


def redis_net_per_msg_t(pts: dict[str, Any]) -> Any:
    return lambda t: redis_net_per_msg(pts[t])


def rss_under_load(st: dict[str, Any]) -> float | None:
    run = st["_run"]
    rss = st.get("gauges", {}).get("worker_rss")
    if not rss or not run.get("rss_before") or not run.get("sockets"):
        return None
    return (rss - run["rss_before"]) / run["sockets"] / 1000


def render_before_after(results: dict[str, Any]) -> list[str]:
    if not BEFORE_JSON.exists():
        return []
    before = json.loads(BEFORE_JSON.read_text())
    L = ["## Before / after the hot-path change", ""]
    L.append(before.get("change_note", "").strip())
    L.append("")
    rows = []
    for b in before.get("load", []):
        if b["target"] != "plugin":
            continue
        for bs in b["steps"]:
            bs = {**bs, "_run": b}
            a = step_at(results, "plugin", bs["n"], bs["rate_per_conv"])
            if a is None:
                continue
            rows.append(
                [
                    f"{bs['n']} x {bs['rate_per_conv']:g}",
                    f"{fmt(bs['latency']['all']['p99'])} → {fmt(a['latency']['all']['p99'])}",
                    f"{fmt(bs['delivered_msgs_per_s'], 0)} → {fmt(a['delivered_msgs_per_s'], 0)}",
                    f"{fmt(cpu_net_per_msg(bs, 'worker_cpu'), 2)} → {fmt(cpu_net_per_msg(a, 'worker_cpu'), 2)}",
                    f"{fmt(per_msg(bs, 'sql_roundtrips'), 1)} → {fmt(per_msg(a, 'sql_roundtrips'), 1)}",
                    f"{bs['lost_messages']} → {a['lost_messages']}",
                ]
            )
    if rows:
        L.append(
            table(
                [
                    "step",
                    "p99 ms",
                    "msg/s delivered",
                    "worker CPU ms/msg",
                    "DB round trips/msg",
                    "lost",
                ],
                rows,
            )
        )
        L.append("")
        L.extend(render_before_after_totals(before, results))
        la = lambda r: ", ".join(f"{x:.1f}" for x in r["machine"]["load_avg_start"])  # noqa: E731
        L.append(
            f"Before: `benchmarks/results/before.json` ({before.get('started', '?')}, load "
            f"average {la(before)} at its start); after: this run (load average {la(results)}). "
            "Same machine and harness; the other jobs on the machine differed."
        )
        L.append("")
    return L


def render_before_after_totals(before: dict[str, Any], after: dict[str, Any]) -> list[str]:
    """Whole-run figures before → after: throughput, idle memory and idle CPU."""

    def idle_point(results: dict[str, Any], target: str, count: int) -> dict[str, Any] | None:
        for run in results.get("idle", []):
            if run["target"] == target:
                for point in run["points"][1:]:
                    if point["sockets"] == count:
                        return point
        return None

    def pair(fn: Any, digits: int = 1) -> str:
        return f"{fmt(fn(before), digits)} → {fmt(fn(after), digits)}"

    def rss(target: str, count: int) -> Any:
        def get(results: dict[str, Any]) -> float | None:
            point = idle_point(results, target, count)
            return point["rss_per_socket"] / 1000 if point else None

        return get

    def idle_cpu(count: int) -> Any:
        def get(results: dict[str, Any]) -> float | None:
            point = idle_point(results, "plugin", count)
            return 100 * point["worker_cpu_per_s"] if point else None

        return get

    def held(results: dict[str, Any]) -> float | None:
        point = idle_point(results, "plugin", 10_000)
        return point["held"] if point else None

    rows = [
        ["sustained throughput (msg/s)", pair(lambda r: sustained(r, "plugin"), 0)],
        [
            "RSS per idle socket at 1,000 / 5,000 (KB)",
            f"{pair(rss('plugin', 1000))} / {pair(rss('plugin', 5000))}",
        ],
        [
            "the same, compression off (KB)",
            f"{pair(rss('plugin_nodeflate', 1000))} / {pair(rss('plugin_nodeflate', 5000))}",
        ],
        ["worker CPU with 5,000 idle sockets (% of a core)", pair(idle_cpu(5000), 0)],
        ["idle sockets held when 10,000 were opened", pair(held, 0)],
    ]
    return [table(["whole run: plugin", "before → after"], rows), ""]


SETUP_TEXT = """## What is measured

**Systems under test**, each served by **one uvicorn worker** (`--loop asyncio --http h11
--ws websockets-sansio`; the venv has no uvloop/httptools), all on the same throwaway
PostgreSQL and redis-server:

- **plugin**: the example project (`example.asgi:application`) with `benchmarks/bench_settings.py`:
  `RedisPubSubChannelLayer` + Redis presence, PostgreSQL, `DEBUG=False`, the send throttle and
  the flood limit lifted (`THROTTLE_RATES` both `None`, `WS_FLOOD_LIMIT` 1,000,000), tokens valid
  for a day, persistent DB connections (`CONN_MAX_AGE=60`; the example project has 0).
- **Channels PubSub / Channels core floors**: `benchmarks/relay_asgi.py`, a bare
  `AsyncJsonWebsocketConsumer` relay (no database, no auth) on `RedisPubSubChannelLayer` /
  `RedisChannelLayer`: same frames, same fan-out (conversation group + lobby group).
- **plugin, DB thread pool (experiment)**: `benchmarks/plugin_threadpool_asgi.py`, the same
  plugin with the consumers' `database_sync_to_async` calls on asgiref's thread pool
  (`thread_sensitive=False`) instead of the worker's one shared thread. Not a shipped
  configuration: it tests whether that one thread is the bottleneck. Run up to N = 500 only.
- **plugin, 2 workers (experiment)**: the plugin as shipped on `uvicorn --workers 2` (one
  worker per core of this machine), to show what the second core buys when the load
  generator, PostgreSQL and Redis share it. CPU and RSS are summed over the supervisor and
  its workers. Run up to N = 500 only.
- **raw Redis floor**: no server. One redis-py pub/sub connection per "socket"; the client
  publishes each message to the conversation channel and the lobby channel (one pipeline).

**Topology and load** (same client, same payload for all): N conversations, each with a customer
socket (`ws/chat/user/<id>/`) and a staff socket in the conversation (`ws/chat/admin/<id>/`,
staff users round-robin), plus S = {S} staff lobby sockets (`ws/chat/admin/`): 2N + {S} sockets.
Sockets ramp up at {ramp:.0f}/s (25 handshakes at a time), then 3 s of idle baseline. Each step
offers one Poisson stream of N x r messages/s for {duration:g} s, each from a random side of a
random conversation, 120-character texts carrying `~M<step>.<seq>.<send ns>.<side>~`; drain up to
{drain:g} s; a step stops early ("saturated") when a send has waited {abort:g} s for its
`message:sent`; the higher rates of that N are then not run (the server is still working
through the backlog, and a higher rate can only do worse). Every socket sends a heartbeat every `heartbeat_interval` (10 s). The client offers
permessage-deflate like browsers do (uvicorn accepts it by default).

**Figures**: latency = receive time - send time on one clock (the load generator's), over every
delivery: customer → staff = the conversation's staff socket and the S lobbies; staff → customer =
the customer socket (staff messages also reach the lobbies, counted in "all"). Lost = a delivery
not received by the end of the drain; duplicated = a second copy on the same socket. Messages/s
delivered = messages received by all their recipients / (last delivery - first send). CPU =
psutil user+system time of the worker, of PostgreSQL (postmaster, live and reaped backends) and
of redis-server over the step. SQL = `pg_stat_statements` calls in the bench database
(statements = SELECT/INSERT/UPDATE/DELETE; DB round trips also count BEGIN/COMMIT/SET...;
per-message figures divide by the messages the server acknowledged),
which is exact per statement, unlike `pg_stat_database` (flushed lazily). Redis = `INFO
commandstats` total calls (without INFO), minus the idle-baseline rate (heartbeats + presence).
Sustained throughput = the highest offered rate (N x r) of any step with p99 < {limit:.0f} ms and
nothing lost or duplicated.
"""

CAVEATS = """## Caveats

- Two cores for everything: the worker, PostgreSQL, Redis and the load generator compete, and
  other jobs ran on the machine at the same time (see the load average). Compare ratios
  within this run rather than absolute figures across runs.
- One Python load generator process: at high rates it saturates its own core (`client %`), and
  then the floors measure the client. The plugin's own limits sit far below that point.
- PostgreSQL runs with `fsync=off`, `synchronous_commit=off` (the test suite's settings):
  commit latency of a real disk is not included.
- "Lost" means not delivered within the drain window; the database still holds every
  acknowledged message, and clients re-sync on reconnect (design: the DB is the only record).
"""
