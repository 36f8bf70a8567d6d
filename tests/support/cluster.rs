//! A PostgreSQL cluster of a test's own, for faults that would hurt other
//! tests on the shared one: a restart (`pg_ctl restart -m fast`, which
//! terminates every session, a COPY included) while s3loader loads.
//! Made with the server binaries `tests/services.sh` found
//! (`S3LOADER_TEST_PG_BIN`); stopped and removed on drop.

use std::path::PathBuf;
use std::process::Command;

pub struct PgCluster {
    pub port: u16,
    dir: tempfile::TempDir,
    bin: PathBuf,
}

impl PgCluster {
    /// initdb and start, trusting local TCP connections (no TLS).
    pub fn start() -> Self {
        let bin = PathBuf::from(crate::service("S3LOADER_TEST_PG_BIN"));
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir(&data).unwrap();
        let cluster = Self {
            port: crate::closed_port(),
            dir,
            bin,
        };
        cluster.chown();
        cluster.pg(
            "initdb",
            &[
                "-D",
                data.to_str().unwrap(),
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
            ],
        );
        cluster.ctl("start");
        cluster
    }

    /// The URL s3loader and the test connect with.
    pub fn url(&self) -> String {
        format!(
            "host=127.0.0.1 port={} user=postgres dbname=postgres",
            self.port
        )
    }

    /// A fast restart: every session is terminated (a COPY under way is
    /// rolled back), and the server takes connections again when this
    /// returns.
    pub fn restart(&self) {
        self.ctl("restart");
    }

    fn ctl(&self, action: &str) {
        let data = self.dir.path().join("data");
        let opts = format!(
            "-p {} -k {} -c listen_addresses=127.0.0.1 -c fsync=off",
            self.port,
            self.dir.path().display()
        );
        let log = self.dir.path().join("server.log");
        self.pg(
            "pg_ctl",
            &[
                "-D",
                data.to_str().unwrap(),
                "-l",
                log.to_str().unwrap(),
                "-w",
                "-t",
                "30",
                "-m",
                "fast",
                "-o",
                &opts,
                action,
            ],
        );
    }

    /// PostgreSQL refuses to run as root: as root, the cluster belongs to
    /// the `postgres` user.
    fn chown(&self) {
        if is_root() {
            let status = Command::new("chown")
                .args(["-R", "postgres"])
                .arg(self.dir.path())
                .status()
                .unwrap();
            assert!(status.success(), "chown postgres");
        }
    }

    fn pg(&self, program: &str, args: &[&str]) {
        let exe = self.bin.join(program);
        let out = if is_root() {
            Command::new("runuser")
                .args(["-u", "postgres", "--"])
                .arg(&exe)
                .args(args)
                .output()
        } else {
            Command::new(&exe).args(args).output()
        }
        .unwrap_or_else(|e| panic!("{}: {e}", exe.display()));
        let log = std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default();
        assert!(
            out.status.success(),
            "{program} {args:?}: {}{}\nserver log:\n{log}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

fn is_root() -> bool {
    // The effective uid, without a libc dependency: /proc/self/status.
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("Uid:"))
                .and_then(|l| l.split_whitespace().nth(2).map(|u| u == "0"))
        })
        .unwrap_or(false)
}

impl Drop for PgCluster {
    fn drop(&mut self) {
        let data = self.dir.path().join("data");
        let stop = |exe: PathBuf| {
            let args = ["-D", data.to_str().unwrap(), "-m", "immediate", "stop"];
            if is_root() {
                Command::new("runuser")
                    .args(["-u", "postgres", "--"])
                    .arg(exe)
                    .args(args)
                    .output()
            } else {
                Command::new(exe).args(args).output()
            }
        };
        let _ = stop(self.bin.join("pg_ctl"));
    }
}
