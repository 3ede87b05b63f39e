//! The web console in a real browser: headless Chromium (Debian's
//! `chromium`, driven by `playwright-core` from `tests/browser/`) submits an
//! exec task through the console's form, watches its page until it has
//! succeeded, reads the timeline and the log, and saves screenshots of the
//! pages under `target/screenshots/`.
//!
//! `scripts/ensure-deps.sh` installs Chromium and the npm package; without
//! them this test fails and says so (it never skips).

use std::path::{Path, PathBuf};
use std::time::Duration;
use taskyard_tests::{Cluster, WorkerSpec};

const CHROMIUM: &str = "/usr/bin/chromium";
/// The whole browser script, launch included.
const BROWSER_TIMEOUT: Duration = Duration::from_secs(120);
const PAGES: [&str; 6] = ["overview", "tasks", "task", "nodes", "node", "pools"];

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("tests/ is inside the workspace")
        .to_path_buf()
}

#[tokio::test]
async fn the_console_runs_a_task_in_a_browser() -> anyhow::Result<()> {
    let root = workspace();
    let script = root.join("tests/browser/console.mjs");
    let chromium = std::env::var("TASKYARD_CHROMIUM").unwrap_or_else(|_| CHROMIUM.to_owned());
    anyhow::ensure!(
        Path::new(&chromium).exists(),
        "Chromium is not installed at {chromium}: run scripts/ensure-deps.sh \
         (apt-get install chromium chromium-driver) or set TASKYARD_CHROMIUM"
    );
    anyhow::ensure!(
        root.join("tests/browser/node_modules/playwright-core")
            .exists(),
        "playwright-core is not installed: run scripts/ensure-deps.sh (npm ci --prefix tests/browser)"
    );
    let shots = root.join("target/screenshots");
    for page in PAGES {
        let _ = std::fs::remove_file(shots.join(format!("{page}.png")));
    }

    let mut cluster = Cluster::start(&[WorkerSpec::new("w1")]).await?;
    let url = cluster.start_api().await?;

    let output = tokio::time::timeout(
        BROWSER_TIMEOUT,
        tokio::process::Command::new("node")
            .arg(&script)
            .arg(&url)
            .arg(&shots)
            .env("TASKYARD_CHROMIUM", &chromium)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| anyhow::anyhow!("the browser script did not finish in {BROWSER_TIMEOUT:?}"))?
    .map_err(|err| anyhow::anyhow!("cannot run node (is Node.js installed?): {err}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    println!("{stdout}");
    eprintln!("{stderr}");
    anyhow::ensure!(
        output.status.success(),
        "the browser script failed ({}):\n{stdout}\n{stderr}",
        output.status
    );
    assert!(stdout.contains("the task page shows succeeded"), "{stdout}");

    for page in PAGES {
        let path = shots.join(format!("{page}.png"));
        let bytes = std::fs::read(&path)
            .map_err(|err| anyhow::anyhow!("no screenshot {}: {err}", path.display()))?;
        assert!(
            bytes.len() > 1000 && bytes.starts_with(b"\x89PNG\r\n\x1a\n"),
            "{} is not a PNG screenshot ({} bytes)",
            path.display(),
            bytes.len()
        );
    }
    Ok(())
}
