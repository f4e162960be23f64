"""Senders and sources over every queue: what the summary, `stats`,
`/metrics`, `stats --sources` and `top` show of them.

The rows come from the queues' live files (appliance/live.py): per sender
(source address, and app_name for per-app sequence rules and unsequenced
records) its records, bytes and sequence counts; per source address under
a budget its passed and throttled datagrams. A sender whose packets hash
onto two queues has a row in each; they are added up here. Totals come
from the decoders' counters, never from these bounded tables (an evicted
sender's counts stay in the totals).
"""

from __future__ import annotations

from collections.abc import Iterable

from appliance.live import LiveQueue, addr_text

TOP_N = 10               # rows of each top list in the summary, the live stats and /metrics
SEQ_COUNTS = ("lost", "gaps", "duplicates", "reorders", "resets")


def sender_table(lives: Iterable[LiveQueue], *, lost_only: bool = False) -> tuple[list[dict], dict]:
    """Every sender of every queue, merged by (source, app): a list of dicts,
    and the tables' facts (slots, evictions) added up. `lost_only`: only
    senders with upstream loss (chosen in numpy: the supervisor asks every
    second, and a full table has tens of thousands of rows)."""
    merged: dict[tuple, dict] = {}
    facts = {"slots": 0, "evictions": 0}
    for live in lives:
        info, rows = live.sender_rows()
        if lost_only:
            rows = rows[rows["lost"] > 0]
        rules = live.rule_names()
        for k in facts:
            facts[k] += info.get(k, 0)
        for r in rows:
            key = (bytes(r["addr"]), bytes(r["app"][: r["app_len"]]))
            row = merged.get(key)
            if row is None:
                row = merged[key] = {
                    "src": addr_text(r["addr"]), "app": key[1].decode("utf-8", "replace") or None,
                    "records": 0, "bytes": 0, **{k: 0 for k in SEQ_COUNTS},
                    "rule": rules[r["seq_rule"] - 1] if 0 < r["seq_rule"] <= len(rules) else None,
                    "last_seq": int(r["seq_last"]) if r["seq_tracking"] else None, "last_ns": 0,
                }
            row["records"] += int(r["records"])
            row["bytes"] += int(r["bytes"])
            for k in SEQ_COUNTS:
                row[k] += int(r[k])
            row["last_ns"] = max(row["last_ns"], int(r["last_ns"]))
    return list(merged.values()), facts


def budget_table(lives: Iterable[LiveQueue], *, throttled_only: bool = False) -> tuple[list[dict], dict]:
    """Every source under a budget in an RX loop, merged over queues
    (`throttled_only`: those with throttled datagrams)."""
    per_queue = []
    facts = {"slots": 0, "evictions": 0}
    for live in lives:
        info, rows = live.budget_rows()
        if throttled_only:
            rows = rows[rows["throttled"] > 0]
        for k in facts:
            facts[k] += info.get(k, 0)
        per_queue.append([{"src": addr_text(r["addr"]), "passed": int(r["passed"]), "throttled": int(r["throttled"])}
                          for r in rows])
    return merge_sources(*per_queue), facts


def merge_sources(*tables: list[dict]) -> list[dict]:
    """Rows of several budget tables (RX loops, XDP) as one, by source."""
    out: dict[str, dict] = {}
    for rows in tables:
        for r in rows:
            row = out.setdefault(r["src"], {"src": r["src"], "passed": 0, "throttled": 0})
            row["passed"] += r.get("passed", 0)
            row["throttled"] += r.get("throttled", 0)
    return list(out.values())


def top(rows: list[dict], key: str, n: int = TOP_N) -> list[dict]:
    """The n rows with the most `key` (ties by source, app), zeros left out."""
    kept = [r for r in rows if r.get(key)]
    kept.sort(key=lambda r: (-r[key], r["src"], r.get("app") or ""))
    return kept[:n]


def upstream(sequence: dict, senders: list[dict], n: int = TOP_N) -> dict:
    """Loss before the box: the decoders' sequence totals and the senders
    that lost most (`sequence`: decoder counters' "sequence", summed)."""
    with_loss = [r for r in senders if r["lost"]]
    return {**sequence, "senders_with_loss": len(with_loss),
            "top": [{k: r[k] for k in ("src", "app", "rule", *SEQ_COUNTS)} for r in top(with_loss, "lost", n)]}


def group(rows: list[dict], by: str, n: int = TOP_N) -> list[dict]:
    """Records and bytes added up by one field (src, app), the n largest."""
    acc: dict = {}
    for r in rows:
        g = acc.setdefault(r[by], {by: r[by], "records": 0, "bytes": 0})
        g["records"] += r["records"]
        g["bytes"] += r["bytes"]
    out = sorted(acc.values(), key=lambda g: (-g["records"], str(g[by])))
    return out[:n]


def upstream_line(up: dict) -> str | None:
    """The summary's line on upstream loss, or None when no record carried a
    sequence number."""
    if not up.get("records"):
        return None
    line = (f"  lost before reaching us: {up['lost']:,} messages from {up['senders_with_loss']:,} senders "
            f"({up['records']:,} records carried a sequence number; duplicates {up['duplicates']:,}, "
            f"reordered {up['reorders']:,}, sequence resets {up['resets']:,})")
    if up["top"]:
        line += "\n    top: " + ", ".join(f"{r['src']}{'/' + r['app'] if r['app'] else ''} {r['lost']:,}"
                                         for r in up["top"][:5])
    return line


def throttled_line(throttled: int, sources: list[dict]) -> str | None:
    if not throttled:
        return None
    worst = top(sources, "throttled", 5)
    return (f"  throttled (over their budget): {throttled:,} datagrams from {len([s for s in sources if s['throttled']]):,} "
            f"sources; top: " + ", ".join(f"{s['src']} {s['throttled']:,}" for s in worst))


__all__ = ["sender_table", "budget_table", "merge_sources", "top", "upstream", "group", "upstream_line",
           "throttled_line", "TOP_N"]
