#!/usr/bin/env python3
"""Statements per run of the PostgreSQL bench's engine phases, read from the server log.

Run the bench with `log_statement = all`, then point this script at the part of the server
log the run wrote:

    psql -h 127.0.0.1 -U postgres -c "ALTER SYSTEM SET log_statement = 'all'" \
         -c "SELECT pg_reload_conf()"
    LOG=/var/log/postgresql/postgresql-15-main.log; FROM=$(wc -l < $LOG)
    LOGLINE_BENCH_PGBENCH=0 LOGLINE_BENCH_SECS=1 LOGLINE_BENCH_ONLY=engine \
        cargo bench -p logline-postgres --bench pg
    tail -n +$FROM $LOG > /tmp/bench-statements.log
    psql -h 127.0.0.1 -U postgres -c "ALTER SYSTEM RESET log_statement" \
         -c "SELECT pg_reload_conf()"
    python3 scripts/pg_statements_per_run.py /tmp/bench-statements.log

The engine phases run 3-step runs, one checkpoint statement per step, so a phase's runs are
its checkpoint statements / 3 (run it with group commit off, where each checkpoint is a statement
of its own). Phases are told apart by the bench's pauses (no run created
for 0.2 s). Prints, per phase, the statements per run by kind (first line of their SQL).
"""

import collections
import re
import sys

LINE = re.compile(
    r"^\S+ (\d\d):(\d\d):(\d\d\.\d+) \S+ \[\d+\] \S+ LOG:  (?:statement|execute [^:]+): ?(.*)$"
)
STEPS_PER_RUN = 3


def statements(path):
    """(seconds, first line of SQL) of every statement the log holds, in order."""
    lines = open(path, errors="replace").read().split("\n")
    out = []
    for i, line in enumerate(lines):
        m = LINE.match(line)
        if not m:
            continue
        h, mi, s, text = m.groups()
        text = text.strip()
        j = i + 1
        # Multi-line SQL starts on the next non-empty line.
        while not text and j < len(lines):
            text = lines[j].strip()
            j += 1
        out.append((int(h) * 3600 + int(mi) * 60 + float(s), re.sub(r"\s+", " ", text)))
    return out


def is_checkpoint(text):
    return text.startswith("WITH upd AS") or text.startswith("WITH t AS")


def is_run_insert(text):
    return text.startswith("WITH ins AS")


def phases(stmts):
    """Index ranges of the bursts of run creations (one per bench phase, warm-ups apart)."""
    starts = [i for i, (_, text) in enumerate(stmts) if is_run_insert(text)]
    groups, current = [], starts[:1]
    for a, b in zip(starts, starts[1:]):
        if stmts[b][0] - stmts[a][0] < 0.2:
            current.append(b)
        else:
            groups.append(current)
            current = [b]
    groups.append(current)
    return [(g[0], g[-1]) for g in groups if len(g) > 20]


def main():
    stmts = statements(sys.argv[1])
    for n, (lo, hi) in enumerate(phases(stmts), 1):
        kinds = collections.Counter(text[:60] for _, text in stmts[lo:hi])
        checkpoints = sum(v for k, v in kinds.items() if is_checkpoint(k))
        runs = checkpoints / STEPS_PER_RUN
        if runs == 0:
            continue
        total = sum(kinds.values())
        print(f"phase {n}: {runs:.0f} runs, {total / runs:.2f} statements per run")
        for kind, count in kinds.most_common():
            print(f"  {count / runs:6.2f}  {kind}")


if __name__ == "__main__":
    main()
