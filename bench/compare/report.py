#!/usr/bin/env python3
"""report.py: the markdown tables of bench/compare from its results.jsonl.

    report.py OUT/results.jsonl

Input: one JSON object a line, as run.sh writes them: {"system", "redis",
"loadavg", "result": <loadgen's JSON>} for each system and load (closed,
open), and {"system", "websockets": <wsload's JSON>, "idle_rss_kb"} for the
WebSocket part. loadgen's cpu_s / hwm_kb lists are [system, its Redis].

Output (stdout): the per-system table, the ratios, the issue's targets
checked against this run. Everything is computed from this one run, so the
ratios compare systems measured minutes apart on the same machine.
Extending: a new column is a new entry in the row built in main().
"""
import json
import sys

PEERS = ("telegraf", "bottender")
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


def main():
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    runs, ws = {}, None
    for line in open(sys.argv[1], encoding="utf-8"):
        if not line.strip():
            continue
        r = json.loads(line)
        if "websockets" in r:
            ws = r
            continue
        runs.setdefault(r["system"], {"redis": r["redis"]})[r["result"]["mode"]] = r
    systems = list(runs)

    def cpu_per_k(res, with_redis=True):
        good = res["replies"] - res["duplicates"]
        if good <= 0:
            return None
        cpu = [c for c in res["cpu_s"] if c >= 0]
        total = cpu[0] + (sum(cpu[1:]) if with_redis else 0)
        return 1000.0 * total / good

    print("| system | Redis | closed loop replies/s | lost / dup (closed) | open loop: replies/s | "
          "ack p50 / p99 / p99.9 ms | e2e p50 / p99 / p99.9 ms | lost / dup (open) | peak RSS MB | "
          "CPU s per 1,000 replies (system + Redis) | load generator CPU s per 1,000 |")
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    rps = {}
    for s in systems:
        c, o = runs[s].get("closed"), runs[s].get("open")
        cr = c["result"] if c else None
        orr = o["result"] if o else None
        rps[s] = cr["replies_per_second"] if cr else None
        hwm = max([h for x in (cr, orr) if x for h in x["hwm_kb"][:1] if h > 0] or [0]) / 1024.0
        redis = {"no": "none (no Redis)", "aof": "AOF everysec", "none": "no persistence"}[runs[s]["redis"]]
        if cr:
            own = cpu_per_k(cr, with_redis=False)
            tot = cpu_per_k(cr)
            cpu = f"{fmt(own, 2)}" if runs[s]["redis"] == "no" else f"{fmt(own, 2)} + {fmt(tot - own, 2)} = {fmt(tot, 2)}"
            lg = 1000.0 * cr["loadgen_cpu_s"] / max(1, cr["replies"])
        else:
            cpu, lg = "–", None
        row = [s, redis,
               fmt(cr["replies_per_second"], 0) if cr else "–",
               lostdup(cr),
               fmt(orr["replies_per_second"], 0) if orr else "–",
               " / ".join(fmt(orr["ack_ms"][k], 1) for k in ("p50", "p99", "p999")) if orr else "–",
               " / ".join(fmt(orr["e2e_ms"][k], 1) for k in ("p50", "p99", "p999")) if orr else "–",
               lostdup(orr),
               fmt(hwm, 1), cpu, fmt(lg, 2)]
        print("| " + " | ".join(row) + " |")
    print()
    rate = next((runs[s]["open"]["result"]["rate"] for s in systems if "open" in runs[s]), None)
    if rate:
        print(f"Open loop: {rate:g} webhooks/s scheduled; a system whose open-loop replies/s is below that "
              "could not hold the rate (its latencies then count the backlog from the schedule).")
        print()

    base = [s for s in systems if s in PEERS or s == "echo"]
    cg = [s for s in systems if s in CIVICGATE]
    if cg and base:
        print("Closed-loop replies/s ratios (same run):")
        print()
        print("| | " + " | ".join(f"vs {b}" for b in base) + " |")
        print("|---|" + "---|" * len(base))
        for s in cg + [p for p in systems if p in PEERS]:
            cells = [f"{rps[s] / rps[b]:.2f}×" if rps.get(s) and rps.get(b) else "–" for b in base]
            print(f"| {s} | " + " | ".join(cells) + " |")
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
    a = runs.get("civicgate-aof", {})
    checks = []
    if a.get("closed"):
        r = a["closed"]["result"]
        peers = [rps[p] for p in PEERS if rps.get(p)]
        if peers:
            checks.append((f"replies/s ≥ 3× the faster peer ({rps['civicgate-aof'] / max(peers):.2f}×)",
                           rps["civicgate-aof"] >= 3 * max(peers)))
        if rps.get("echo"):
            checks.append((f"replies/s ≥ 50% of the echo ceiling ({100 * rps['civicgate-aof'] / rps['echo']:.0f}%)",
                           rps["civicgate-aof"] >= 0.5 * rps["echo"]))
        checks.append((f"zero lost replies, Redis persisting (closed {r['lost']}, open "
                       f"{a['open']['result']['lost'] if a.get('open') else '–'})",
                       r["lost"] == 0 and (not a.get("open") or a["open"]["result"]["lost"] == 0)))
    if a.get("open"):
        r = a["open"]["result"]
        checks.append((f"webhook-ack p99 ≤ 5 ms at {r['rate']:g}/s ({r['ack_ms']['p99']:.1f} ms)", r["ack_ms"]["p99"] <= 5))
        checks.append((f"end-to-end p99 ≤ 20 ms at {r['rate']:g}/s ({r['e2e_ms']['p99']:.1f} ms)", r["e2e_ms"]["p99"] <= 20))
        checks.append((f"peak RSS ≤ 64 MB at that load ({r['hwm_kb'][0] / 1024:.1f} MB)", 0 < r["hwm_kb"][0] <= 64 * 1024))
    if ws:
        w = ws["websockets"]
        checks.append((f"RSS ≤ 64 MB with {w['connections']:,} open web-chat WebSockets "
                       f"({w['gateway_rss_kb'] / 1024:.1f} MB, {w['welcomed']:,} open)",
                       w["welcomed"] == w["connections"] and 0 < w["gateway_rss_kb"] <= 64 * 1024))
    if checks:
        print("Issue 8's targets for civicgate (Redis AOF everysec) in this run:")
        print()
        for text, ok in checks:
            print(f"- {'met' if ok else 'NOT met'}: {text}")


if __name__ == "__main__":
    main()
