"""The write path's load-independent profile of one worker phase.

What a phase costs PostgreSQL, in numbers that do not move with the rest of the
machine's load: rows written per event (pg_stat_user_tables), WAL bytes per
event (pg_current_wal_lsn before and after: the cluster's, so nothing else may
write to it meanwhile), statements per batch and each statement's share of the
phase's statement time (pg_stat_statements, when the server preloads it:
tests/bench/run starts its own stack with KA_PG_PRELOAD=pg_stat_statements).
"""

# The harness's own psql queries (progress polls, counters), left out of the
# worker's statements.
HARNESS = (
    "SELECT (SELECT coalesce(sum(next_offset)",
    "SELECT coalesce(sum(next_offset)",
    "SELECT coalesce(sum(n_tup_ins",
    "SELECT extract(epoch FROM min(processed_at))",
    "SELECT count(*) FROM dead_letter",
    "SELECT count(*) FROM information_schema",
    "SELECT pg_current_wal_lsn",
    "SELECT pg_stat_statements_reset",
    "SELECT pg_wal_lsn_diff",
    "CREATE EXTENSION",
)

TOP = 8


def _harness_filter():
    return " AND ".join("left(query, %d) <> '%s'" % (len(p), p.replace("'", "''"))
                        for p in HARNESS)


class Profile:
    """One per database: start() before a phase, stop() after it."""

    def __init__(self, pg):
        self.pg = pg
        self.statements = pg.query("SELECT count(*) FROM pg_settings WHERE name = "
                                   "'shared_preload_libraries' AND "
                                   "setting ~ 'pg_stat_statements'") == "1"
        if self.statements:
            pg.query("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")

    def start(self):
        if self.statements:
            self.pg.query("SELECT pg_stat_statements_reset()")
        self.lsn = self.pg.query("SELECT pg_current_wal_lsn()")

    def stop(self, events, batches, seconds):
        """The phase's figures: WAL bytes per event, and with pg_stat_statements
        the statements per batch, statement time / wall time and the top
        statements by total time."""
        wal = self.pg.scalar("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), :'v1')::bigint",
                             self.lsn)
        out = {"wal_bytes": wal, "wal_bytes_per_event": round(wal / events, 1)}
        if not self.statements:
            return out
        rows = self.pg.query(
            "SELECT calls, round((total_exec_time + total_plan_time)::numeric, 1), rows, "
            "round(max_exec_time::numeric, 1), shared_blks_hit + shared_blks_read, "
            "round(total_plan_time::numeric, 1), "
            "regexp_replace(query, '\\s+', ' ', 'g') FROM pg_stat_statements "
            "WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database()) "
            "AND " + _harness_filter() + " ORDER BY total_exec_time DESC")
        stmts = []
        for line in rows.splitlines():
            calls, ms, nrows, max_ms, blocks, plan_ms, query = line.split("|", 6)
            stmts.append({"calls": int(calls), "ms": float(ms), "rows": int(nrows),
                          "max_ms": float(max_ms), "blocks": int(blocks),
                          "plan_ms": float(plan_ms), "query": query})
        total_ms = sum(s["ms"] for s in stmts) or 1.0
        calls = sum(s["calls"] for s in stmts)
        blocks = sum(s["blocks"] for s in stmts)
        for s in stmts:
            s["share"] = round(s["ms"] / total_ms, 3)
            s["rows_per_event"] = round(s["rows"] / events, 2)
        out.update({
            "statement_ms": round(total_ms, 1),
            "statement_share_of_wall": round(total_ms / 1000 / seconds, 3) if seconds else None,
            "statements": calls,
            "plan_ms": round(sum(s["plan_ms"] for s in stmts), 1),
            # shared buffers hit or read: the work, whatever else runs
            "buffers_per_event": round(blocks / events, 1),
            "statements_per_batch": round(calls / batches, 1) if batches else None,
            "top": stmts[:TOP],
        })
        return out


def short(query, width=110):
    q = query.replace("|", "\\|")
    return q if len(q) <= width else q[:width - 3] + "..."


def report(throughput, workers):
    """bench.md's lines: the per-worker table, then each worker's top statements."""
    lines = ["", "Write path per worker (independent of the machine's load):", "",
             "| Worker | Rows/event | WAL bytes/event | Buffers/event | Batches | "
             "Statements/batch | Statement time / wall |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for w in workers:
        t = throughput[w]
        p = t.get("profile", {})
        share = p.get("statement_share_of_wall")
        lines.append(f"| {w} | {t['rows_per_event']} | {p.get('wal_bytes_per_event', '-')} | "
                     f"{p.get('buffers_per_event', '-')} | {t.get('batches', '-')} | {p.get('statements_per_batch', '-')} | "
                     f"{'-' if share is None else f'{100 * share:.0f}%'} |")
    for w in workers:
        top = throughput[w].get("profile", {}).get("top")
        if not top:
            continue
        lines += ["", f"Top statements, {w} worker (pg_stat_statements over the phase):", "",
                  "| Share | ms | Calls | Rows/event | Buffers/call | Statement |",
                  "|---:|---:|---:|---:|---:|---|"]
        for s in top:
            lines.append(f"| {100 * s['share']:.1f}% | {s['ms']:.0f} | {s['calls']} | "
                         f"{s['rows_per_event']} | {s['blocks'] // max(1, s['calls'])} | "
                         f"`{short(s['query'])}` |")
    if not any(throughput[w].get("profile", {}).get("top") for w in workers):
        lines += ["", "(No statement profile: the server does not preload pg_stat_statements; "
                      "start it with KA_PG_PRELOAD=pg_stat_statements.)"]
    return lines
