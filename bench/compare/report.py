#!/usr/bin/env python3
"""report.py: the markdown tables of bench/compare from its results.jsonl.

    report.py OUT/results.jsonl

Input: one JSON object a line, as run.sh writes them: {"system", "redis",
"round", "loadavg", "result": <loadgen's JSON>} for each system and load
(closed loop in rounds, open loop at each rate, in rounds too when
OPEN_ROUNDS > 1), and {"system", "websockets": <wsload's JSON>, "idle_rss_kb"} for the
WebSocket part. loadgen's cpu_s / hwm_kb lists are [system, its Redis].

Output (stdout, markdown): the closed-loop table (median and range over the
rounds), the ratios (each round's systems against each other, since the
systems of one round ran within a couple of minutes of each other on the same
noisy machine), one open-loop table per rate (median (min–max) over the
rounds when there are several), the WebSocket line, and the issues'
targets checked against this run (medians over the rounds). "VM steal %" is
the share of the VM's CPU time its vCPUs waited for the host during each
measurement (/proc/stat; recorded by run.sh since the tenth round).
Extending: a new column is a new cell in the row printed in main().
"""
import json
import sys

PEERS = ("telegraf", "bottender", "telegraf-cluster", "bottender-cluster")
CIVICGATE = ("civicgate-aof", "civicgate-nopersist")


def fmt(x, nd=1):
    if x is None:
        return "–"
    if isinstance(x, float):
        return f"{x:,.{nd}f}"
    return f"{x:,}"


def lostdup(res):
    """lost / duplicates, and webhooks that failed (connection closed) if any."""
    if not res:
        return "–"
    extra = f" (failed {res['failed']})" if res.get("failed") else ""
    return f"{res['lost']} / {res['duplicates']}{extra}"


def median(xs):
    xs = sorted(xs)
    n = len(xs)
    return None if not n else xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2


def spread(xs, nd=0, unit=""):
    """median (min–max) of a list, or the one value."""
    xs = [x for x in xs if x is not None]
    if not xs:
        return "–"
    if len(xs) == 1:
        return fmt(float(xs[0]), nd) + unit
    return f"{fmt(float(median(xs)), nd)}{unit} ({fmt(float(min(xs)), nd)}–{fmt(float(max(xs)), nd)})"


def roles(res):
    """The role of each --watch pid: run.sh lists the system's processes
    (Node's cluster workers after the primary), then its Redis."""
    return res.get("_roles") or ["system"] + ["redis"] * (len(res["cpu_s"]) - 1)


def cpu_per_k(res, with_redis=True):
    good = res["replies"] - res["duplicates"]
    if good <= 0:
        return None
    total = sum(c for c, role in zip(res["cpu_s"], roles(res))
                if c >= 0 and (with_redis or role == "system"))
    return 1000.0 * total / good


def rss_mb(res):
    """Peak RSS of the system: the sum of its processes' VmHWM, MB."""
    kb = [h for h, role in zip(res["hwm_kb"], roles(res)) if role == "system" and h > 0]
    return sum(kb) / 1024.0 if kb else None


REDIS = {"no": "none", "aof": "AOF everysec", "none": "no persistence"}
SCRIPTS = ("eval", "evalsha", "eval_ro", "evalsha_ro", "fcall", "fcall_ro")
HOUSEKEEPING = ("info", "ping", "hello", "select", "config", "client", "command", "script")


def redis_per_webhook(calls, res):
    """(commands, scripts) Redis ran per webhook over the whole run, warm-up
    included (INFO commandstats counts the commands scripts call too), without
    connection housekeeping; None without Redis."""
    if not calls:
        return None
    n = res["sent"] + res.get("warmup_sent", 0)
    work = {k: v for k, v in calls.items() if k.split("|")[0] not in HOUSEKEEPING}
    return (sum(work.values()) / n, sum(v for k, v in work.items() if k in SCRIPTS) / n) if n else None


def open_median(opened, rate, s):
    """A system's open loop at rate over the rounds: the median ack and e2e
    p99 and the peak RSS, each p99 with its note naming the rounds' values
    ("" for one round); or None."""
    rs = list(opened.get(float(rate), opened.get(rate, {})).get(s, {}).values())
    if not rs:
        return None

    def note(xs):
        return f", the median of {len(xs)} rounds: {', '.join(f'{x:.1f}' for x in xs)}" if len(xs) > 1 else ""
    acks, e2es = [r["ack_ms"]["p99"] for r in rs], [r["e2e_ms"]["p99"] for r in rs]
    return {"ack": median(acks), "ack_note": note(acks), "e2e": median(e2es), "e2e_note": note(e2es),
            "rss": max((rss_mb(r) or 0) for r in rs)}


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    closed, opened, ws, systems, redis = {}, {}, None, [], {}
    for line in open(sys.argv[1], encoding="utf-8"):
        if not line.strip():
            continue
        r = json.loads(line)
        if "websockets" in r:
            ws = r
            continue
        s, res = r["system"], r["result"]
        res["_roles"] = r.get("watch_roles")
        res["_steal"] = r.get("steal_pct")
        if r.get("workers", 1) > 1:
            s = f"{s} ({r['workers']} workers)"
        if s not in systems:
            systems.append(s)
        redis[s] = r["redis"]
        if res["mode"] == "closed":
            closed.setdefault(s, {})[r.get("round", 1)] = res
            res["_redis"] = redis_per_webhook(r.get("redis_calls"), res)
        else:
            opened.setdefault(res["rate"], {}).setdefault(s, {})[r.get("round", 1)] = res
    rounds = sorted({k for v in closed.values() for k in v})

    if closed:
        print(f"Closed loop ({len(rounds)} round{'s' if len(rounds) > 1 else ''} over all systems; "
              "median (min–max) over the rounds):")
        print()
        print("| system | Redis | replies/s | lost / duplicates | peak RSS MB | "
              "CPU ms per reply: system + Redis | Redis commands per webhook (of them scripts) | "
              "load generator CPU ms per reply | VM steal % |")
        print("|---|---|---|---|---|---|---|---|---|")
        for s in systems:
            rs = list(closed.get(s, {}).values())
            if not rs:
                continue
            own = [cpu_per_k(r, False) for r in rs]
            tot = [cpu_per_k(r) for r in rs]
            if redis[s] == "no":
                cpu = spread(own, 3)
            else:
                cpu = f"{fmt(median(own), 3)} + {fmt(median(tot) - median(own), 3)} = {spread(tot, 3)}"
            lost = sum(r["lost"] for r in rs)
            dup = sum(r["duplicates"] for r in rs)
            failed = sum(r.get("failed", 0) for r in rs)
            rc = [r["_redis"] for r in rs if r.get("_redis")]
            rcs = f"{median([x[0] for x in rc]):.1f} ({median([x[1] for x in rc]):.1f})" if rc else "–"
            print(f"| {s} | {REDIS[redis[s]]} | {spread([r['replies_per_second'] for r in rs])} | "
                  f"{lost} / {dup}{f' (failed {failed})' if failed else ''} | "
                  f"{spread([rss_mb(r) for r in rs], 1)} | {cpu} | {rcs} | "
                  f"{spread([1000.0 * r['loadgen_cpu_s'] / max(1, r['replies']) for r in rs], 3)} | "
                  f"{spread([r.get('_steal') for r in rs], 1)} |")
        print()
        base = [b for b in systems if b in closed and b.split(" ")[0] in ("echo",) + PEERS]
        rows = [s for s in systems if s in closed and s.split(" ")[0] in CIVICGATE + PEERS]
        if base and rows:
            print("Closed-loop replies/s ratios, each round's systems against each other "
                  "(median (min–max) over the rounds):")
            print()
            print("| | " + " | ".join(f"vs {b}" for b in base) + " |")
            print("|---|" + "---|" * len(base))
            for s in rows:
                cells = []
                for b in base:
                    xs = [closed[s][k]["replies_per_second"] / closed[b][k]["replies_per_second"]
                          for k in rounds if k in closed[s] and k in closed[b] and closed[b][k]["replies_per_second"] > 0]
                    cells.append("–" if b == s else spread(xs, 2, "×"))
                print(f"| {s} | " + " | ".join(cells) + " |")
            print()

    for rate in sorted(opened, reverse=True):
        nr = max(len(v) for v in opened[rate].values())
        print(f"Open loop at {rate:g} webhooks/s (a system answering fewer a second could not hold the rate: its "
              "latencies then include the backlog, counted from each webhook's scheduled time"
              + (f"; {nr} rounds over all systems, median (min–max) over the rounds" if nr > 1 else "") + "):")
        print()
        print("| system | replies/s | webhook ack p50 / p99 / p99.9 ms | end-to-end p50 / p99 / p99.9 ms | "
              "lost / duplicates | peak RSS MB | VM steal % |")
        print("|---|---|---|---|---|---|---|")
        for s in systems:
            rs = list(opened[rate].get(s, {}).values())
            if not rs:
                continue
            lat = lambda key: " / ".join(spread([r[key][k] for r in rs], 1) for k in ("p50", "p99", "p999"))
            lost = {"lost": sum(r["lost"] for r in rs), "duplicates": sum(r["duplicates"] for r in rs),
                    "failed": sum(r.get("failed", 0) for r in rs)}
            print(f"| {s} | {spread([r['replies_per_second'] for r in rs])} | {lat('ack_ms')} | {lat('e2e_ms')} | "
                  f"{lostdup(lost)} | {spread([rss_mb(r) for r in rs], 1)} | {spread([r.get('_steal') for r in rs], 1)} |")
        print()

    if ws:
        w = ws["websockets"]
        print(f"Web chat: {w['welcomed']:,} of {w['connections']:,} WebSockets opened and greeted "
              f"(subprotocol civicgate-webchat, hello → welcome) in {w['ramp_seconds']:.1f} s, held "
              f"{w['hold_seconds']} s; civicgate (AOF) RSS {w['gateway_rss_kb'] / 1024:.1f} MB "
              f"(peak {w['gateway_hwm_kb'] / 1024:.1f} MB; {ws['idle_rss_kb'] / 1024:.1f} MB before), "
              f"{(w['gateway_rss_kb'] - ws['idle_rss_kb']) / max(1, w['welcomed']):.1f} kB per socket. "
              f"Errors {w['errors']}, closed early {w['closed_early']}.")
        print()

    # The targets, checked against this run.
    checks = []
    cg = closed.get("civicgate-aof", {})
    if cg:
        def ratio_to(b):
            xs = [cg[k]["replies_per_second"] / closed[b][k]["replies_per_second"]
                  for k in rounds if k in cg and k in closed.get(b, {}) and closed[b][k]["replies_per_second"] > 0]
            return median(xs)
        peers = [p for p in closed if p.split(" ")[0] in PEERS]
        if peers:
            # The peer civicgate compares worst with, round by round.
            x, faster = min((ratio_to(p), p) for p in peers)
            checks.append((f"replies/s ≥ 3× the faster peer ({faster}: {x:.2f}×)", x >= 3))
        if "echo" in closed:
            x = ratio_to("echo")
            checks.append((f"replies/s ≥ 50% of the echo ceiling ({100 * x:.0f}%)", x >= 0.5))
        lost = sum(r["lost"] for r in cg.values()) + sum(x["lost"] for o in opened.values()
                                                         for x in o.get("civicgate-aof", {}).values())
        checks.append((f"zero lost replies with Redis persisting ({lost} lost over all loads)", lost == 0))
    o = open_median(opened, 2000, "civicgate-aof")
    if o:
        checks.append((f"webhook-ack p99 ≤ 5 ms at 2,000/s ({o['ack']:.1f} ms{o['ack_note']})", o["ack"] <= 5))
        checks.append((f"end-to-end p99 ≤ 20 ms at 2,000/s ({o['e2e']:.1f} ms{o['e2e_note']})", o["e2e"] <= 20))
        checks.append((f"peak RSS ≤ 64 MB at that load ({o['rss']:.1f} MB)", 0 < (o["rss"] or 0) <= 64))
    if ws:
        w = ws["websockets"]
        checks.append((f"RSS ≤ 64 MB with {w['connections']:,} open web-chat WebSockets "
                       f"({w['gateway_rss_kb'] / 1024:.1f} MB, {w['welcomed']:,} open)",
                       w["welcomed"] == w["connections"] and 0 < w["gateway_rss_kb"] <= 64 * 1024))
    if checks:
        print("Issue 8's targets for civicgate (Redis AOF everysec), checked against this run:")
        print()
        for text, ok in checks:
            print(f"- {'met' if ok else 'NOT met'}: {text}")

    # Issue 3's benchmark targets (the gateway core), from the same run.
    checks3 = []
    if cg:
        rps = median([r["replies_per_second"] for r in cg.values()])
        lost = sum(r["lost"] for r in cg.values())
        checks3.append((f"≥ 5,000 replies/s with none lost, closed loop "
                        f"({spread([r['replies_per_second'] for r in cg.values()])} replies/s; {lost} lost)",
                        rps >= 5000 and lost == 0))
    o = open_median(opened, 1000, "civicgate-aof")
    if o:
        e = open_median(opened, 1000, "echo")
        also = f"; the echo bot's {e['ack']:.1f} ms" if e else ""
        checks3.append((f"webhook-ack p99 < 5 ms at 1,000/s ({o['ack']:.1f} ms{o['ack_note']}{also})",
                        o["ack"] < 5))
    if checks3:
        print()
        print("Issue 3's benchmark targets for civicgate (Redis AOF everysec), checked against this run:")
        print()
        for text, ok in checks3:
            print(f"- {'met' if ok else 'NOT met'}: {text}")


if __name__ == "__main__":
    main()
