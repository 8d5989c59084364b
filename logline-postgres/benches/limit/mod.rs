//! The machine's own limit, measured in the same run as the figures: `pgbench -N` (the
//! simple-update transaction without the branch/teller updates, one fsync per transaction)
//! on the same server, at the bench's concurrencies, and its one-client latency.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

/// The database pgbench initializes (its own, so LogLine's tables stay untouched).
const DB: &str = "llbench_pgbench";

/// pgbench's transactions per second by client count, and its one-client latency.
#[derive(Debug, Default)]
pub struct Limit {
    tps: BTreeMap<usize, f64>,
    latency_ms: Option<f64>,
}

/// `url` with its database replaced by `db`.
fn with_db(url: &str, db: &str) -> String {
    let (base, query) = match url.split_once('?') {
        Some((b, q)) => (b, format!("?{q}")),
        None => (url, String::new()),
    };
    let authority_end = base
        .find("://")
        .map(|i| i + 3)
        .and_then(|start| base[start..].find('/').map(|j| start + j))
        .unwrap_or(base.len());
    format!("{}/{db}{query}", &base[..authority_end])
}

fn field(out: &str, prefix: &str) -> Option<f64> {
    out.lines()
        .find_map(|l| l.trim().strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
}

fn pgbench(args: &[String]) -> Option<String> {
    let out = Command::new("pgbench").args(args).output().ok()?;
    if !out.status.success() {
        eprintln!(
            "pgbench {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        );
        return None;
    }
    Some(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl Limit {
    /// Initializes pgbench's tables in their own database and runs `pgbench -N` for `phase`
    /// at each concurrency (1 is always measured, for the latency). Missing pgbench or a
    /// failing run leaves the figure out.
    pub async fn measure(url: &str, concurrencies: &[usize], phase: Duration) -> Limit {
        let mut limit = Limit::default();
        let admin = sqlx::PgPool::connect(url).await;
        if let Ok(pool) = admin {
            let exists: Option<i32> =
                sqlx::query_scalar("SELECT 1 FROM pg_database WHERE datname = $1")
                    .bind(DB)
                    .fetch_optional(&pool)
                    .await
                    .unwrap_or(None);
            if exists.is_none() {
                let _ = sqlx::query(&format!("CREATE DATABASE {DB}"))
                    .execute(&pool)
                    .await;
            }
        }
        let target = with_db(url, DB);
        let init = ["-i", "-q", "-s", "1", target.as_str()].map(String::from);
        if pgbench(&init).is_none() {
            return limit;
        }
        let mut clients: Vec<usize> = concurrencies.to_vec();
        clients.push(1);
        clients.sort_unstable();
        clients.dedup();
        for c in clients {
            let args = [
                "-N".to_string(),
                "-n".into(),
                "-M".into(),
                "prepared".into(),
                "-c".into(),
                c.to_string(),
                "-j".into(),
                c.min(2).to_string(),
                "-T".into(),
                phase.as_secs().max(1).to_string(),
                target.clone(),
            ];
            let Some(out) = pgbench(&args) else { continue };
            if let Some(tps) = field(&out, "tps =") {
                limit.tps.insert(c, tps);
            }
            if c == 1 {
                limit.latency_ms = field(&out, "latency average =");
            }
        }
        limit
    }

    /// Lines describing the limit, for the bench header.
    pub fn describe(&self) -> String {
        let mut parts: Vec<String> = self
            .tps
            .iter()
            .map(|(c, tps)| format!("-c {c}: {tps:.0} tps"))
            .collect();
        if let Some(l) = self.latency_ms {
            parts.push(format!("-c 1 latency {l:.3} ms"));
        }
        if parts.is_empty() {
            "machine limit: pgbench unavailable".into()
        } else {
            format!("machine limit (pgbench -N): {}", parts.join(", "))
        }
    }

    /// `per_s` as a share of pgbench's tps at `clients`.
    pub fn share(&self, per_s: f64, clients: usize) -> String {
        match self.tps.get(&clients) {
            Some(tps) => format!(
                "  [{:.0} % of pgbench -N -c {clients}: {tps:.0} tps]",
                per_s / tps * 100.0
            ),
            None => String::new(),
        }
    }

    /// `ms` as a multiple of pgbench's one-client latency.
    pub fn latency_ratio(&self, ms: f64) -> String {
        match self.latency_ms {
            Some(l) => format!("  [{:.2}× pgbench -N -c 1: {l:.3} ms]", ms / l),
            None => String::new(),
        }
    }
}

/// Server-wide counters that do not depend on the machine's load: committed transactions of
/// the database and WAL flushes (`pg_stat_wal.wal_sync`, PostgreSQL 14+).
#[derive(Debug, Clone, Copy, Default)]
pub struct Work {
    commits: i64,
    wal_syncs: i64,
}

impl Work {
    /// The counters now (statistics are flushed by idle backends within a second, so call
    /// this after a pause).
    pub async fn read(url: &str) -> Option<Work> {
        use sqlx::Connection;
        let mut c = sqlx::PgConnection::connect(url).await.ok()?;
        let _ = sqlx::query("SELECT pg_stat_force_next_flush()")
            .execute(&mut c)
            .await;
        let commits: i64 = sqlx::query_scalar(
            "SELECT xact_commit FROM pg_stat_database WHERE datname = current_database()",
        )
        .fetch_one(&mut c)
        .await
        .ok()?;
        let wal_syncs: i64 = sqlx::query_scalar("SELECT wal_sync FROM pg_stat_wal")
            .fetch_one(&mut c)
            .await
            .ok()?;
        Some(Work { commits, wal_syncs })
    }

    /// `after - self` per run, as text.
    pub fn per_run(&self, after: &Work, runs: f64) -> String {
        format!(
            "  {{{:.2} transactions, {:.2} WAL flushes per run}}",
            (after.commits - self.commits) as f64 / runs,
            (after.wal_syncs - self.wal_syncs) as f64 / runs
        )
    }
}
