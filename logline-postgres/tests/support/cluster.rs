//! A private PostgreSQL server for tests that restart or crash it (never the shared one).
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A throw-away cluster on a free port, owned by the `postgres` OS user when run as root.
pub struct PrivateCluster {
    dir: PathBuf,
    bin: PathBuf,
    port: u16,
}

fn bindir() -> PathBuf {
    if let Ok(out) = Command::new("pg_config").arg("--bindir").output() {
        let p = PathBuf::from(String::from_utf8_lossy(&out.stdout).trim());
        if p.join("initdb").exists() {
            return p;
        }
    }
    for v in ["17", "16", "15", "14", "13"] {
        let p = PathBuf::from(format!("/usr/lib/postgresql/{v}/bin"));
        if p.join("initdb").exists() {
            return p;
        }
    }
    panic!("PostgreSQL server binaries (initdb, pg_ctl) not found: install postgresql");
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false)
}

/// Runs a server binary, as `postgres` when we are root (the server refuses root).
fn run(bin: &Path, args: &[&str]) -> Output {
    let mut cmd = if is_root() {
        let mut c = Command::new("runuser");
        c.args(["-u", "postgres", "--"]).arg(bin);
        c
    } else {
        Command::new(bin)
    };
    cmd.args(args).output().expect("run a PostgreSQL binary")
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl PrivateCluster {
    /// Creates and starts the cluster (fsync and synchronous_commit on, as by default).
    pub fn start() -> Self {
        let bin = bindir();
        let dir = std::env::temp_dir().join(format!(
            "logline-pg-{}-{}",
            std::process::id(),
            uuid::Uuid::new_v4().simple()
        ));
        let port = free_port();
        let d = dir.to_string_lossy().to_string();
        let out = run(
            &bin.join("initdb"),
            &["-D", &d, "-U", "postgres", "--auth=trust", "-E", "UTF8"],
        );
        assert!(
            out.status.success(),
            "initdb: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let c = PrivateCluster { dir, bin, port };
        c.ctl(&["start"]);
        c
    }

    fn ctl(&self, action: &[&str]) {
        let d = self.dir.to_string_lossy().to_string();
        let log = self.dir.join("server.log").to_string_lossy().to_string();
        let opts = format!(
            "-p {} -c listen_addresses=127.0.0.1 -c unix_socket_directories='' -c max_connections=100",
            self.port
        );
        let mut args: Vec<&str> = action.to_vec();
        args.extend(["-D", &d, "-l", &log, "-w", "-t", "60", "-o", &opts]);
        let out = run(&self.bin.join("pg_ctl"), &args);
        assert!(
            out.status.success(),
            "pg_ctl {action:?}: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// The connection URL.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Stops the server like a crash (`-m immediate`: no checkpoint, recovery on start).
    pub fn crash(&self) {
        self.ctl(&["stop", "-m", "immediate"]);
    }

    /// Starts it again.
    pub fn start_again(&self) {
        self.ctl(&["start"]);
    }
}

impl Drop for PrivateCluster {
    fn drop(&mut self) {
        let d = self.dir.to_string_lossy().to_string();
        let _ = run(
            &self.bin.join("pg_ctl"),
            &["stop", "-D", &d, "-m", "immediate", "-w"],
        );
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
