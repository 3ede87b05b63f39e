//! Every service serves Prometheus metrics, and the series the Grafana
//! dashboard (`deploy/grafana/taskyard.json`) draws are there, with values
//! that match what happened.

use serde_json::json;
use std::collections::BTreeMap;
use std::time::Duration;
use taskyard_testkit::wait_until;
use taskyard_tests::{Cluster, WAIT, WorkerSpec};

/// One sample of an exposition: its name, labels and value.
#[derive(Debug, Clone)]
struct Sample {
    name: String,
    labels: BTreeMap<String, String>,
    value: f64,
}

/// Parses the Prometheus text format (what the exporters write: no escaped
/// quotes in label values, one sample per line).
fn parse(text: &str) -> anyhow::Result<Vec<Sample>> {
    let mut samples = Vec::new();
    for line in text
        .lines()
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
    {
        let (series, value) = line
            .rsplit_once(' ')
            .ok_or_else(|| anyhow::anyhow!("no value in {line:?}"))?;
        let value: f64 = value
            .parse()
            .map_err(|err| anyhow::anyhow!("bad value in {line:?}: {err}"))?;
        let (name, labels) = match series.split_once('{') {
            None => (series, BTreeMap::new()),
            Some((name, rest)) => {
                let body = rest
                    .strip_suffix('}')
                    .ok_or_else(|| anyhow::anyhow!("unclosed labels in {line:?}"))?;
                let mut labels = BTreeMap::new();
                for pair in body.split("\",").filter(|p| !p.is_empty()) {
                    let (key, value) = pair
                        .split_once("=\"")
                        .ok_or_else(|| anyhow::anyhow!("bad label {pair:?} in {line:?}"))?;
                    labels.insert(key.to_owned(), value.trim_end_matches('"').to_owned());
                }
                (name, labels)
            }
        };
        samples.push(Sample {
            name: name.to_owned(),
            labels,
            value,
        });
    }
    Ok(samples)
}

async fn scrape(http: &reqwest::Client, addr: &str) -> anyhow::Result<Vec<Sample>> {
    let text = http
        .get(format!("http://{addr}/metrics"))
        .timeout(Duration::from_secs(2))
        .send()
        .await?
        .error_for_status()?
        .text()
        .await?;
    parse(&text)
}

/// The value of the first sample named `name` whose labels include `with`.
fn value(samples: &[Sample], name: &str, with: &[(&str, &str)]) -> Option<f64> {
    samples
        .iter()
        .find(|s| {
            s.name == name
                && with
                    .iter()
                    .all(|(k, v)| s.labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|s| s.value)
}

#[tokio::test]
async fn every_service_exposes_the_series_the_dashboard_draws() -> anyhow::Result<()> {
    let mut cluster = Cluster::start(&[WorkerSpec {
        cpu_millis: 2000,
        ..WorkerSpec::new("w1")
    }])
    .await?;
    cluster.start_api().await?;
    // One id chosen by the client, not a UUIDv7: its wait still counts
    // (it is measured from `created_at`).
    let mut tasks: Vec<_> = (0..4)
        .map(|_| json!({"kind": "sleep", "spec": {"ms": 20}}))
        .collect();
    tasks.push(json!({"id": uuid::Uuid::from_u128(0x5eed), "kind": "sleep", "spec": {"ms": 20}}));
    let ids = cluster.submit_ok(&json!(tasks)).await?;
    for id in &ids {
        assert_eq!(cluster.wait_final(*id).await?, "succeeded");
    }
    let http = reqwest::Client::new();
    // Each service, with the series it must serve and a check on its value.
    type Check = (
        &'static str,
        Vec<(&'static str, &'static str)>,
        fn(f64) -> bool,
    );
    let expected: Vec<(&str, Vec<Check>)> = vec![
        (
            "orchestrator",
            vec![
                ("taskyard_orchestrator_tasks_total", vec![], |v| v >= 5.0),
                (
                    "taskyard_consumer_pending",
                    vec![("consumer", "orchestrator")],
                    |v| v >= 0.0,
                ),
            ],
        ),
        (
            "scheduler",
            vec![
                ("taskyard_scheduler_placements_total", vec![], |v| v >= 5.0),
                (
                    "taskyard_scheduler_queue_depth",
                    vec![("pool", "default")],
                    |v| v == 0.0,
                ),
                (
                    "taskyard_scheduler_held_nodes",
                    vec![("pool", "default")],
                    |v| v == 0.0,
                ),
                (
                    "taskyard_consumer_pending",
                    vec![("consumer", "scheduler")],
                    |v| v >= 0.0,
                ),
            ],
        ),
        (
            "pool-manager",
            vec![
                (
                    "taskyard_tasks",
                    vec![("pool", "default"), ("state", "succeeded")],
                    |v| v == 5.0,
                ),
                (
                    "taskyard_task_wait_seconds_count",
                    vec![("pool", "default")],
                    |v| v == 5.0,
                ),
                (
                    "taskyard_task_run_seconds_bucket",
                    vec![("outcome", "succeeded"), ("le", "+Inf")],
                    |v| v == 5.0,
                ),
                (
                    "taskyard_consumer_pending",
                    vec![("consumer", "pool-manager")],
                    |v| v >= 0.0,
                ),
            ],
        ),
        (
            "resource-manager",
            vec![
                (
                    "taskyard_node_cpu_capacity_millis",
                    vec![("node", "w1")],
                    |v| v == 2000.0,
                ),
                ("taskyard_node_memory_used_mb", vec![("node", "w1")], |v| {
                    v > 0.0
                }),
                ("taskyard_nodes", vec![("health", "alive")], |v| v == 1.0),
            ],
        ),
        (
            "worker-w1",
            vec![
                (
                    "taskyard_worker_attempts_total",
                    vec![("kind", "sleep")],
                    |v| v == 5.0,
                ),
                (
                    "taskyard_consumer_pending",
                    vec![("stream", "TASKYARD_DISPATCH")],
                    |v| v >= 0.0,
                ),
            ],
        ),
        (
            "api",
            vec![(
                "taskyard_api_requests_total",
                vec![("route", "/healthz")],
                |v| v >= 1.0,
            )],
        ),
    ];
    for (service, checks) in expected {
        let addr = cluster
            .metrics
            .get(service)
            .ok_or_else(|| anyhow::anyhow!("no metrics address for {service}"))?
            .clone();
        let result = wait_until(&format!("{service}'s metrics"), WAIT, || async {
            let samples = match scrape(&http, &addr).await {
                Ok(samples) => samples,
                Err(_) => return Ok(None),
            };
            let all_there = checks
                .iter()
                .all(|(name, labels, ok)| value(&samples, name, labels).is_some_and(ok));
            Ok(all_there.then_some(samples))
        })
        .await;
        let samples = match result {
            Ok(samples) => samples,
            Err(err) => {
                let samples = scrape(&http, &addr).await.unwrap_or_default();
                let missing: Vec<String> = checks
                    .iter()
                    .map(|(name, labels, _)| {
                        format!("{name}{labels:?} = {:?}", value(&samples, name, labels))
                    })
                    .collect();
                anyhow::bail!("{err}: {service} has {missing:?}");
            }
        };
        // Every series carries the service's name, so one dashboard can
        // tell the services apart.
        let name = if service.starts_with("worker-") {
            "worker"
        } else {
            service
        };
        let unlabelled: Vec<&str> = samples
            .iter()
            .filter(|s| s.labels.get("service").map(String::as_str) != Some(name))
            .map(|s| s.name.as_str())
            .collect();
        assert!(
            unlabelled.is_empty(),
            "{service}: series without service={name}: {unlabelled:?}"
        );
    }
    Ok(())
}

#[test]
fn the_grafana_dashboard_draws_only_series_that_exist() -> anyhow::Result<()> {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../deploy/grafana/taskyard.json"
    );
    let dashboard: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(path)?)?;
    let panels = dashboard["panels"]
        .as_array()
        .ok_or_else(|| anyhow::anyhow!("no panels"))?;
    assert!(panels.len() >= 8, "only {} panels", panels.len());
    // The series the services serve (see the test above and the sources).
    let known = [
        "taskyard_tasks",
        "taskyard_scheduler_queue_depth",
        "taskyard_scheduler_pool_running",
        "taskyard_scheduler_placements_total",
        "taskyard_task_wait_seconds_bucket",
        "taskyard_task_run_seconds_bucket",
        "taskyard_node_cpu_capacity_millis",
        "taskyard_node_cpu_used_percent",
        "taskyard_node_memory_capacity_mb",
        "taskyard_node_memory_used_mb",
        "taskyard_node_running_tasks",
        "taskyard_nodes",
        "taskyard_consumer_pending",
        "taskyard_consumer_ack_pending",
        "taskyard_log_events_total",
        "taskyard_api_requests_total",
        "taskyard_api_request_seconds_bucket",
        "taskyard_pool_manager_dead_letters_total",
        "taskyard_worker_attempts_total",
        "taskyard_orchestrator_tasks_total",
    ];
    for panel in panels {
        for target in panel["targets"].as_array().into_iter().flatten() {
            let expr = target["expr"].as_str().unwrap_or_default();
            let names: Vec<&str> = expr
                .split(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))
                .filter(|w| w.starts_with("taskyard_"))
                .collect();
            assert!(
                !names.is_empty(),
                "panel {} draws no taskyard series",
                panel["title"]
            );
            for name in names {
                assert!(
                    known.contains(&name),
                    "panel {} draws unknown {name}",
                    panel["title"]
                );
            }
        }
    }
    Ok(())
}
