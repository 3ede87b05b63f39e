//! Which NATS micro services are on the bus, and how busy they are.
//!
//! Every Taskyard process registers as a NATS micro service
//! (`taskyard-<service>`), and so may services in other languages (a `nats`
//! driver's executor, say). [`discover`] publishes one `$SRV.INFO` and one
//! `$SRV.STATS` request with reply inboxes, collects every answer that comes
//! within the window, and joins the two by instance id. `GET /api/v1/services`
//! and `taskyard services` both call it, through [`crate::Client::services`].

use crate::ClientError;
use bytes::Bytes;
use futures::StreamExt;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;
use taskyard_wire::Timestamp;

/// How long to collect answers: a service that has not answered by then is
/// left out (the protocol has no end-of-answers marker).
pub const DISCOVERY_WINDOW: Duration = Duration::from_secs(1);
/// Asks every micro service for its description and endpoints.
pub const INFO_SUBJECT: &str = "$SRV.INFO";
/// Asks every micro service for its request and error counts.
pub const STATS_SUBJECT: &str = "$SRV.STATS";

/// One instance of a micro service, as `GET /api/v1/services` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct ServiceInstance {
    /// The service's name, shared by its replicas (`taskyard-api`).
    pub name: String,
    /// This instance's id, unique on the bus.
    pub id: String,
    pub version: String,
    pub description: String,
    /// When the instance started, as it reports it.
    #[serde(with = "time::serde::rfc3339::option")]
    #[schema(value_type = Option<String>, format = DateTime)]
    pub started: Option<Timestamp>,
    /// Milliseconds since `started` (absent when it reported no readable time).
    pub uptime_ms: Option<u64>,
    /// Requests handled by all its endpoints.
    pub requests: u64,
    /// Errors answered by all its endpoints.
    pub errors: u64,
    /// What this instance does among its service's replicas, as it says
    /// (`active (epoch 3)`, `standby`; `active` where every replica shares
    /// the work); absent for a service that does not say.
    pub role: Option<String>,
    pub endpoints: Vec<EndpointStats>,
}

/// The counts of one endpoint.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct EndpointStats {
    pub name: String,
    pub subject: String,
    pub requests: u64,
    pub errors: u64,
}

/// `$SRV.INFO` as read here: only what is shown, every field optional, so
/// that a service written with another library still counts.
#[derive(Debug, Deserialize)]
struct InfoReply {
    name: String,
    id: String,
    #[serde(default)]
    version: String,
    #[serde(default)]
    description: Option<String>,
}

/// `$SRV.STATS` as read here.
#[derive(Debug, Deserialize)]
struct StatsReply {
    id: String,
    #[serde(default)]
    started: Option<String>,
    #[serde(default)]
    endpoints: Option<Vec<EndpointReply>>,
}

#[derive(Debug, Deserialize)]
struct EndpointReply {
    #[serde(default)]
    name: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    num_requests: u64,
    #[serde(default)]
    num_errors: u64,
    /// What the service's stats handler adds; Taskyard's carries `role`.
    #[serde(default)]
    data: Option<serde_json::Value>,
}

/// Every micro service instance that answers both `$SRV.INFO` and
/// `$SRV.STATS` within `window`, sorted by name then id.
pub async fn discover(
    client: &async_nats::Client,
    window: Duration,
) -> Result<Vec<ServiceInstance>, ClientError> {
    // Only the bus itself can fail here: a service that does not answer is
    // simply not listed.
    let fail = |subject: &str, source: async_nats::Error| ClientError::Nats {
        subject: subject.to_owned(),
        source,
    };
    let info_inbox = client.new_inbox();
    let stats_inbox = client.new_inbox();
    // Subscribed before asking, so that no early answer is missed; the
    // subscriptions end when they are dropped.
    let mut infos = client
        .subscribe(info_inbox.clone())
        .await
        .map_err(|e| fail(&info_inbox, e.into()))?;
    let mut stats = client
        .subscribe(stats_inbox.clone())
        .await
        .map_err(|e| fail(&stats_inbox, e.into()))?;
    for (subject, inbox) in [(INFO_SUBJECT, info_inbox), (STATS_SUBJECT, stats_inbox)] {
        client
            .publish_with_reply(subject, inbox, Bytes::new())
            .await
            .map_err(|e| fail(subject, e.into()))?;
    }
    client
        .flush()
        .await
        .map_err(|e| fail(STATS_SUBJECT, e.into()))?;

    let mut info_by_id: BTreeMap<String, InfoReply> = BTreeMap::new();
    let mut stats_by_id: BTreeMap<String, StatsReply> = BTreeMap::new();
    let deadline = tokio::time::sleep(window);
    tokio::pin!(deadline);
    loop {
        tokio::select! {
            () = &mut deadline => break,
            Some(message) = infos.next() => {
                match serde_json::from_slice::<InfoReply>(&message.payload) {
                    Ok(info) => { info_by_id.insert(info.id.clone(), info); }
                    Err(err) => tracing::debug!(error = %err, "ignoring an unreadable $SRV.INFO answer"),
                }
            }
            Some(message) = stats.next() => {
                match serde_json::from_slice::<StatsReply>(&message.payload) {
                    Ok(reply) => { stats_by_id.insert(reply.id.clone(), reply); }
                    Err(err) => tracing::debug!(error = %err, "ignoring an unreadable $SRV.STATS answer"),
                }
            }
        }
    }
    let now = taskyard_wire::now();
    let mut instances: Vec<ServiceInstance> = info_by_id
        .into_values()
        .filter_map(|info| {
            let stats = stats_by_id.remove(&info.id)?;
            Some(instance(info, stats, now))
        })
        .collect();
    instances.sort_by(|a, b| a.name.cmp(&b.name).then_with(|| a.id.cmp(&b.id)));
    Ok(instances)
}

fn instance(info: InfoReply, stats: StatsReply, now: Timestamp) -> ServiceInstance {
    let started = stats.started.as_deref().and_then(|text| {
        time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339).ok()
    });
    let uptime_ms = started.map(|at| {
        let ms = (now - at).whole_milliseconds().max(0);
        u64::try_from(ms).unwrap_or(u64::MAX)
    });
    let replies = stats.endpoints.unwrap_or_default();
    let role = replies.iter().find_map(|e| {
        e.data
            .as_ref()
            .and_then(|data| data.get("role"))
            .and_then(|role| role.as_str())
            .map(str::to_owned)
    });
    let endpoints: Vec<EndpointStats> = replies
        .into_iter()
        .map(|e| EndpointStats {
            name: e.name,
            subject: e.subject,
            requests: e.num_requests,
            errors: e.num_errors,
        })
        .collect();
    ServiceInstance {
        name: info.name,
        id: info.id,
        version: info.version,
        description: info.description.unwrap_or_default(),
        started,
        uptime_ms,
        requests: endpoints.iter().map(|e| e.requests).sum(),
        errors: endpoints.iter().map(|e| e.errors).sum(),
        role,
        endpoints,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stats_are_summed_and_uptime_measured() {
        let info: InfoReply = serde_json::from_str(
            r#"{"type":"io.nats.micro.v1.info_response","name":"taskyard-api","id":"abc",
                "version":"0.1.0","description":null,"metadata":null,"endpoints":[]}"#,
        )
        .expect("an info reply");
        let stats: StatsReply = serde_json::from_str(
            r#"{"type":"io.nats.micro.v1.stats_response","name":"taskyard-api","id":"abc",
                "version":"0.1.0","started":"2026-01-02T10:00:00.123456789Z",
                "endpoints":[{"name":"a","subject":"x.a","num_requests":3,"num_errors":1,
                              "data":{"role":"standby"}},
                             {"name":"b","subject":"x.b","num_requests":4,"num_errors":0}]}"#,
        )
        .expect("a stats reply");
        let now = time::OffsetDateTime::parse(
            "2026-01-02T10:01:00.123456789Z",
            &time::format_description::well_known::Rfc3339,
        )
        .expect("a time");
        let instance = instance(info, stats, now);
        assert_eq!(instance.requests, 7);
        assert_eq!(instance.errors, 1);
        assert_eq!(instance.uptime_ms, Some(60_000));
        assert_eq!(instance.description, "");
        assert_eq!(instance.role.as_deref(), Some("standby"));
    }
}
