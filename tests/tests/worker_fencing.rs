//! Self-fencing workers on the real stack. A worker frozen (SIGSTOP) past the
//! lost threshold while it runs an `exec` attempt is declared lost and the
//! task runs again elsewhere; on waking the worker stops the old attempt
//! itself, and never reports it as a success, even when its command ended
//! during the freeze. Postgres records one success either way.

use serde_json::json;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};
use taskyard_testkit::{ServiceHandle, Signal, wait_until};
use taskyard_tests::{Cluster, WAIT, WorkerSpec};
use uuid::Uuid;

/// The harness's resource manager declares a node lost after 3 s of
/// silence; the frozen worker fences after as long, as in production where
/// both default to 10 s.
const LOST_AFTER_MS: &str = "3000";
/// How long the worker stays frozen: well past the threshold.
const FREEZE: Duration = Duration::from_millis(4_500);

/// A cluster whose worker `w1` runs attempt 1 of one `exec` task. Its
/// command records the pids of its shell and of a child in
/// `pids-<attempt>`; the child waits for the file `go`, so that the run's
/// time counts from the freeze rather than from a worker's start-up, and
/// sleeps `run_secs`; then the attempt number is appended to `marks`.
struct Scene {
    cluster: Cluster,
    frozen: ServiceHandle,
    dir: PathBuf,
    id: Uuid,
    /// Attempt 1's shell and child.
    pids: Vec<i32>,
}

impl Scene {
    async fn start(run_secs: u64) -> anyhow::Result<Scene> {
        let mut cluster = Cluster::start(&[]).await?;
        let frozen = cluster
            .start_worker(&WorkerSpec::new("w1").env("TASKYARD_FENCE_AFTER_MS", LOST_AFTER_MS))
            .await?;
        let dir = cluster.stack.dir().join("fencing");
        std::fs::create_dir_all(&dir)?;
        let script = format!(
            "p=pids-$TASKYARD_ATTEMPT; echo $$ > $p.tmp; \
             (while [ ! -e go ]; do sleep 0.1; done; sleep {run_secs}) & echo $! >> $p.tmp; \
             mv $p.tmp $p; wait; echo $TASKYARD_ATTEMPT >> marks"
        );
        let ids = cluster
            .submit_ok(&json!({
                "kind": "exec",
                "spec": {"command": "sh", "args": ["-c", script], "working_dir": dir.display().to_string()},
                "max_attempts": 2
            }))
            .await?;
        let first_pids = dir.join("pids-1");
        let pids: Vec<i32> = wait_until("attempt 1 to start its command", WAIT, || async {
            Ok(std::fs::read_to_string(&first_pids)
                .ok()
                .map(|text| text.lines().filter_map(|l| l.trim().parse().ok()).collect()))
        })
        .await?;
        anyhow::ensure!(pids.len() == 2, "attempt 1 wrote {pids:?}");
        // Where the task goes once w1 is lost.
        cluster.start_worker(&WorkerSpec::new("w2")).await?;
        Ok(Scene {
            cluster,
            frozen,
            dir,
            id: ids[0],
            pids,
        })
    }

    /// Lets the command's run begin and freezes w1 at once, until the task
    /// has moved to w2 and at least [`FREEZE`] has passed; then wakes it.
    /// Returns whether attempt 1's command was still running just before the
    /// wake, and when the wake was, from the run's beginning.
    async fn freeze_until_moved(&self) -> anyhow::Result<(bool, Duration)> {
        std::fs::write(self.dir.join("go"), "")?;
        self.frozen.signal(Signal::SIGSTOP)?;
        let frozen_at = Instant::now();
        let moved = wait_until("the task to move to w2", WAIT, || async {
            let task = self.cluster.task_json(self.id).await?;
            Ok((task["attempt"] == 2 && task["node_id"] == "w2").then_some(()))
        })
        .await;
        // Not a wait for something to happen: the freeze's length is the
        // fault itself, which must outlast the worker's fencing threshold.
        tokio::time::sleep_until((frozen_at + FREEZE).into()).await;
        let running = self.attempt_1_running();
        // Resumed before any check can fail, so that no stopped process is left.
        self.frozen.signal(Signal::SIGCONT)?;
        let woke = frozen_at.elapsed();
        moved?;
        Ok((running, woke))
    }

    fn attempt_1_running(&self) -> bool {
        self.pids.iter().any(|pid| alive(*pid))
    }

    fn marks(&self) -> anyhow::Result<Vec<String>> {
        let marks = read_or_empty(&self.dir.join("marks"))?;
        Ok(marks.lines().map(str::to_owned).collect())
    }

    /// Postgres saw exactly one success, attempt 2's on w2, and attempt 1
    /// never succeeded.
    async fn assert_one_success(&self) -> anyhow::Result<()> {
        let rows = self
            .cluster
            .db
            .query(
                "SELECT attempt, to_state::text, node_id FROM task_events \
                 WHERE task_id = $1 ORDER BY id",
                &[&self.id],
            )
            .await?;
        let history: Vec<(i32, String, Option<String>)> = rows
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect();
        let successes: Vec<_> = history
            .iter()
            .filter(|(_, to, _)| to == "succeeded")
            .collect();
        assert_eq!(successes.len(), 1, "{history:?}");
        assert_eq!(successes[0].0, 2, "{history:?}");
        assert_eq!(successes[0].2.as_deref(), Some("w2"), "{history:?}");
        assert!(
            !history
                .iter()
                .any(|(attempt, to, _)| *attempt == 1 && to == "succeeded"),
            "{history:?}"
        );
        Ok(())
    }

    /// w1 counted one fenced attempt and logged it once, at WARN, with the
    /// task's id and the reason.
    async fn assert_fenced_once(&self) -> anyhow::Result<()> {
        let addr = self
            .cluster
            .metrics
            .get("worker-w1")
            .cloned()
            .ok_or_else(|| anyhow::anyhow!("no metrics address for w1"))?;
        let http = reqwest::Client::new();
        let fenced = wait_until(
            "w1 to count its fenced attempt",
            Duration::from_secs(5),
            || async {
                let page = http
                    .get(format!("http://{addr}/metrics"))
                    .timeout(Duration::from_secs(2))
                    .send()
                    .await?
                    .text()
                    .await?;
                Ok(counter(&page, "taskyard_worker_fenced_attempts_total").filter(|n| *n >= 1.0))
            },
        )
        .await
        .map_err(|err| err.context(format!("w1's log:\n{}", self.frozen.log())))?;
        assert_eq!(fenced, 1.0);
        let log = self.frozen.log();
        let fencings = lines_with(&log, "attempt fenced");
        assert_eq!(fencings.len(), 1, "{log}");
        assert!(fencings[0].contains("WARN"), "{}", fencings[0]);
        assert!(
            fencings[0].contains(&self.id.to_string()),
            "{}",
            fencings[0]
        );
        assert!(
            fencings[0].contains("longer than the lost threshold of 3 s"),
            "{}",
            fencings[0]
        );
        Ok(())
    }
}

#[tokio::test]
async fn a_worker_frozen_past_the_lost_threshold_stops_its_old_attempt_on_waking()
-> anyhow::Result<()> {
    // Longer than the freeze, the move and the wake together: only a stop
    // keeps attempt 1 from finishing its work.
    const RUN_SECS: u64 = 12;
    let scene = Scene::start(RUN_SECS).await?;
    let run_began = Instant::now();
    let (running, woke) = scene.freeze_until_moved().await?;
    assert!(
        running,
        "attempt 1's command runs on through the freeze: only the worker was stopped"
    );
    assert!(
        woke < Duration::from_secs(RUN_SECS - 2),
        "the worker woke {woke:?} into attempt 1's run, too close to its end to prove anything"
    );

    // On waking, the old attempt's whole process group goes, at once.
    wait_until(
        "attempt 1's processes to be gone",
        Duration::from_secs(3),
        || async { Ok((!scene.attempt_1_running()).then_some(())) },
    )
    .await?;

    assert_eq!(scene.cluster.wait_final(scene.id).await?, "succeeded");
    // Attempt 2 started after attempt 1 and ran as long, so attempt 1 would
    // have left its mark by now had it gone on.
    assert!(run_began.elapsed() > Duration::from_secs(RUN_SECS));
    assert_eq!(scene.marks()?, ["2"], "only attempt 2 finished its work");
    scene.assert_one_success().await?;
    scene.assert_fenced_once().await?;
    Ok(())
}

#[tokio::test]
async fn a_command_that_ended_during_the_freeze_is_not_reported_as_a_success() -> anyhow::Result<()>
{
    // Issue 10: the command ends while its worker is frozen; on waking, the
    // worker sees an exit 0 and must not call that a success, since the task
    // is attempt 2's on another node by now.
    let scene = Scene::start(2).await?;
    let (running, _woke) = scene.freeze_until_moved().await?;
    assert!(!running, "attempt 1's command ended during the freeze");

    assert_eq!(scene.cluster.wait_final(scene.id).await?, "succeeded");
    // What no worker can prevent: the command did its work before the
    // worker could know. The task author sees both runs' side effects.
    assert_eq!(scene.marks()?, ["1", "2"]);
    scene.assert_one_success().await?;
    scene.assert_fenced_once().await?;

    // And the worker's own verdict on attempt 1: failed, because fenced.
    let log = scene.frozen.log();
    let id = scene.id.to_string();
    let ended: Vec<&str> = lines_with(&log, "attempt ended")
        .into_iter()
        .filter(|line| line.contains(&id))
        .collect();
    assert_eq!(ended.len(), 1, "{log}");
    assert!(ended[0].contains("outcome=\"failed\""), "{}", ended[0]);
    // Killed by its fencing or by the pool manager's kill, whichever the
    // waking worker read first; either way not a success.
    assert!(
        ended[0].contains("error=killed on node w1: "),
        "{}",
        ended[0]
    );
    Ok(())
}

/// Alive and not a zombie (a killed command waits for its parent to reap it).
fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|state| state != "Z" && state != "X"),
        Err(_) => false,
    }
}

fn read_or_empty(path: &Path) -> std::io::Result<String> {
    match std::fs::read_to_string(path) {
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(String::new()),
        read => read,
    }
}

fn lines_with<'a>(log: &'a str, needle: &str) -> Vec<&'a str> {
    log.lines().filter(|line| line.contains(needle)).collect()
}

/// The value of a counter on a Prometheus page (one series: its only label
/// is the service's), if it is there.
fn counter(page: &str, name: &str) -> Option<f64> {
    page.lines()
        .filter(|line| !line.starts_with('#'))
        .filter(|line| {
            line.strip_prefix(name)
                .is_some_and(|rest| rest.starts_with([' ', '{']))
        })
        .find_map(|line| line.rsplit_once(' ')?.1.trim().parse().ok())
}
