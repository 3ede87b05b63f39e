//! A throwaway PostgreSQL for the store's own tests: `initdb` into a fresh
//! folder, `postgres` on a free port, everything deleted on drop, and
//! `psql` to talk to it.
//!
//! The store cannot use `taskyard-testkit` (which starts NATS and service
//! binaries too, and depends on the store), and has no async runtime among
//! its dependencies; this is the part of the testkit the store needs, with
//! std only. Under root, PostgreSQL runs as the OS user `postgres`, as it
//! refuses to run as root. `TASKYARD_PG_BIN_DIR` names the folder holding
//! `initdb`, `postgres` and `psql` when they are not on the `PATH`.

// Each test binary that includes this module uses a part of it.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// How long a fresh server may take to accept connections.
const READY_TIMEOUT: Duration = Duration::from_secs(30);

pub struct Postgres {
    child: Child,
    dir: PathBuf,
    port: u16,
}

impl Postgres {
    /// Starts a server, or panics saying why (this is test support).
    pub fn start() -> Postgres {
        let dir = std::env::temp_dir().join(format!(
            "taskyard-store-test-{}-{}",
            std::process::id(),
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |elapsed| elapsed.as_nanos())
        ));
        let data = dir.join("data");
        std::fs::create_dir_all(&data).expect("create the test folder");
        let owner = run_as();
        if let Some((uid, gid)) = owner {
            for path in [&dir, &data] {
                std::os::unix::fs::chown(path, Some(uid), Some(gid)).expect("chown to postgres");
            }
        }
        let log = |name: &str| {
            let file = std::fs::File::create(dir.join(name)).expect("create a log file");
            if let Some((uid, gid)) = owner {
                std::os::unix::fs::chown(dir.join(name), Some(uid), Some(gid))
                    .expect("chown a log file");
            }
            Stdio::from(file)
        };
        let status = command("initdb", &dir, owner)
            .arg("-D")
            .arg(&data)
            .args([
                "-A",
                "trust",
                "-U",
                "postgres",
                "--no-sync",
                "-E",
                "UTF8",
                "--locale=C",
            ])
            .stdout(log("initdb.log"))
            .stderr(log("initdb.err"))
            .status()
            .unwrap_or_else(|err| panic!("cannot run initdb ({err}); {}", HINT));
        assert!(
            status.success(),
            "initdb failed ({status}); see {}",
            dir.join("initdb.err").display()
        );
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .expect("find a free port")
            .port();
        let child = command("postgres", &dir, owner)
            .arg("-D")
            .arg(&data)
            .arg("-p")
            .arg(port.to_string())
            .arg("-k")
            .arg(&dir)
            .args(["-c", "listen_addresses=127.0.0.1"])
            .args(["-c", "fsync=off", "-c", "synchronous_commit=off"])
            .args(["-c", "full_page_writes=off"])
            .stdout(log("postgres.log"))
            .stderr(log("postgres.err"))
            .spawn()
            .unwrap_or_else(|err| panic!("cannot run postgres ({err}); {}", HINT));
        let mut server = Postgres { child, dir, port };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if server.try_psql("SELECT 1").is_ok() {
                return server;
            }
            if let Ok(Some(status)) = server.child.try_wait() {
                panic!(
                    "postgres exited ({status}); see {}",
                    server.dir.join("postgres.err").display()
                );
            }
            assert!(
                Instant::now() < deadline,
                "postgres did not accept connections within {READY_TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// A URL for the `postgres` database, for tests that use the store.
    pub fn url(&self) -> String {
        format!("postgres://postgres@127.0.0.1:{}/postgres", self.port)
    }

    /// Runs `script` (stopping at its first error) and returns what it
    /// printed, unaligned and without headers; panics on an error.
    pub fn psql(&self, script: &str) -> String {
        self.try_psql(script)
            .unwrap_or_else(|err| panic!("{err}\n--- script:\n{script}"))
    }

    /// Applies the migrations in `folder` (`V<n>__<name>.sql`) in order.
    pub fn migrate(&self, folder: &Path) {
        let mut migrations: Vec<(u32, PathBuf)> = std::fs::read_dir(folder)
            .expect("read the migrations")
            .filter_map(|entry| {
                let path = entry.ok()?.path();
                let name = path.file_name()?.to_str()?;
                let version = name.strip_prefix('V')?.split("__").next()?.parse().ok()?;
                Some((version, path))
            })
            .collect();
        migrations.sort();
        assert!(
            !migrations.is_empty(),
            "no migrations in {}",
            folder.display()
        );
        for (_, path) in migrations {
            let sql = std::fs::read_to_string(&path).expect("read a migration");
            self.psql(&sql);
        }
    }

    fn try_psql(&self, script: &str) -> Result<String, String> {
        let mut child = command("psql", &self.dir, None)
            .args(["-X", "-q", "-A", "-t", "-v", "ON_ERROR_STOP=1"])
            .args(["-h", "127.0.0.1", "-U", "postgres", "-d", "postgres", "-p"])
            .arg(self.port.to_string())
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .map_err(|err| format!("cannot run psql ({err}); {HINT}"))?;
        child
            .stdin
            .take()
            .ok_or("psql has no stdin")?
            .write_all(script.as_bytes())
            .map_err(|err| format!("writing to psql: {err}"))?;
        let output = child
            .wait_with_output()
            .map_err(|err| format!("waiting for psql: {err}"))?;
        if output.status.success() {
            Ok(String::from_utf8_lossy(&output.stdout).into_owned())
        } else {
            Err(format!(
                "psql failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr)
            ))
        }
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        // SIGINT is PostgreSQL's fast shutdown: it ends its backends too.
        let stopped = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status()
            .is_ok_and(|status| status.success());
        if !stopped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

const HINT: &str = "the store's tests need PostgreSQL: install it (`apt-get install postgresql-15`) or set TASKYARD_PG_BIN_DIR to the folder holding initdb, postgres and psql";

fn command(program: &str, dir: &Path, owner: Option<(u32, u32)>) -> Command {
    // psql may live elsewhere than the server (`/usr/bin` and a versioned
    // folder): the folder is used for the programs it holds.
    let program = match std::env::var_os("TASKYARD_PG_BIN_DIR") {
        Some(bin) if PathBuf::from(&bin).join(program).exists() => PathBuf::from(bin).join(program),
        _ => PathBuf::from(program),
    };
    let mut cmd = Command::new(program);
    // The inherited folder may be closed to the postgres user.
    cmd.current_dir(dir)
        .stdin(Stdio::null())
        .env("LC_ALL", "C")
        .env_remove("PGDATA")
        .env_remove("PGPORT");
    if let Some((uid, gid)) = owner {
        use std::os::unix::process::CommandExt;
        cmd.uid(uid).gid(gid);
    }
    cmd
}

/// The uid and gid of the OS user `postgres` when we are root, else `None`.
fn run_as() -> Option<(u32, u32)> {
    let ours = Command::new("id").arg("-u").output().expect("run `id -u`");
    if String::from_utf8_lossy(&ours.stdout).trim() != "0" {
        return None;
    }
    let passwd = std::fs::read_to_string("/etc/passwd").expect("read /etc/passwd");
    let entry = passwd
        .lines()
        .find(|line| line.starts_with("postgres:"))
        .expect(
            "running as root, but there is no OS user postgres (PostgreSQL refuses to run as root)",
        );
    let fields: Vec<&str> = entry.split(':').collect();
    let id = |index: usize| -> u32 {
        fields
            .get(index)
            .and_then(|field| field.parse().ok())
            .unwrap_or_else(|| panic!("unreadable /etc/passwd entry `{entry}`"))
    };
    Some((id(2), id(3)))
}
