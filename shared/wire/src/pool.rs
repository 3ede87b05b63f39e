//! Pools: how the fleet is divided, and the rules of each part.
//!
//! A pool names its scheduling policy, the node labels its members carry, its
//! quotas and its defaults. The pool manager owns pools (requests on
//! `taskyard.api.pools.<op>`) and announces every change on
//! `taskyard.events.pool.<changed|deleted>`, which the scheduler and the
//! orchestrator follow.

use crate::Timestamp;
use crate::rejection::Rejection;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// How a pool picks among the nodes where a task fits.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum PlacementStrategy {
    /// The node left with the least free space: packs nodes, keeps large
    /// holes for large tasks.
    #[default]
    BestFit,
    /// The node with the most free space: spreads load.
    Spread,
}

impl PlacementStrategy {
    pub fn as_str(self) -> &'static str {
        match self {
            PlacementStrategy::BestFit => "best_fit",
            PlacementStrategy::Spread => "spread",
        }
    }
}

/// A pool's definition, as clients send it and as events carry it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolSpec {
    /// 1 to 64 letters, digits, `-` or `_`.
    pub name: String,
    /// Scheduling policy: `fcfs`, `round_robin` (tenants take turns), `sjf`
    /// (shortest estimated run time first, with aging) or `wfq` (weighted
    /// fair queuing across tenants).
    #[serde(default = "default_policy")]
    pub policy: String,
    #[serde(default)]
    pub placement: PlacementStrategy,
    /// Labels a node must carry to be a member; empty means every node.
    #[serde(default)]
    pub node_selector: BTreeMap<String, String>,
    /// Most tasks placed (scheduled or running) in the pool at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_running: Option<u32>,
    /// Most CPU (millicores) held by the pool's placed tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_cpu_millis: Option<u32>,
    /// Most memory (MiB) held by the pool's placed tasks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_memory_mb: Option<u32>,
    /// Most tasks of one tenant placed in the pool at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tenant_max_running: Option<u32>,
    /// Timeout of tasks that name none, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub default_timeout_ms: Option<u64>,
    /// Over-commit factor: nodes count as this many times their CPU and
    /// memory for the pool's tasks (1.0 = none; at most 10).
    #[serde(default = "default_overcommit")]
    pub overcommit: f64,
    /// Weights of tenants under `wfq` (1 to 1000; tenants not named weigh 1):
    /// backlogged tenants get work in proportion to their weights.
    #[serde(default)]
    pub tenant_weights: BTreeMap<String, u32>,
    /// Wait before the first retry of tasks that name none, in
    /// milliseconds; doubled for each further retry.
    #[serde(default = "default_backoff")]
    pub retry_backoff_ms: u64,
    /// Longest wait between attempts of tasks that name none.
    #[serde(default = "default_backoff_max")]
    pub retry_backoff_max_ms: u64,
}

fn default_backoff() -> u64 {
    DEFAULT_RETRY_BACKOFF_MS
}

fn default_backoff_max() -> u64 {
    DEFAULT_RETRY_BACKOFF_MAX_MS
}

/// A pool's default first backoff.
pub const DEFAULT_RETRY_BACKOFF_MS: u64 = 1000;
/// A pool's default longest backoff.
pub const DEFAULT_RETRY_BACKOFF_MAX_MS: u64 = 300_000;

fn default_policy() -> String {
    "fcfs".to_owned()
}

fn default_overcommit() -> f64 {
    1.0
}

/// The policies a pool may name (kept equal to `taskyard_policy::PolicyKind::NAMES`
/// by a test in the scheduler).
pub const POLICIES: [&str; 5] = ["fcfs", "round_robin", "sjf", "wfq", "drf"];
/// The largest over-commit factor.
pub const MAX_OVERCOMMIT: f64 = 10.0;
/// The largest tenant weight.
pub const MAX_WEIGHT: u32 = 1000;

impl PoolSpec {
    /// The `default` pool as it exists out of the box: every node, FCFS.
    pub fn default_pool() -> PoolSpec {
        PoolSpec {
            name: crate::task::DEFAULT_POOL.to_owned(),
            policy: default_policy(),
            placement: PlacementStrategy::BestFit,
            node_selector: BTreeMap::new(),
            max_running: None,
            max_cpu_millis: None,
            max_memory_mb: None,
            tenant_max_running: None,
            default_timeout_ms: None,
            overcommit: 1.0,
            tenant_weights: BTreeMap::new(),
            retry_backoff_ms: DEFAULT_RETRY_BACKOFF_MS,
            retry_backoff_max_ms: DEFAULT_RETRY_BACKOFF_MAX_MS,
        }
    }

    /// Checks a definition; errors name the field.
    pub fn validate(&self) -> Result<(), Rejection> {
        if !crate::subjects::is_token(&self.name) {
            return Err(Rejection::new(
                "name",
                format!(
                    "`{}` is not a valid name: use 1 to 64 letters, digits, `-` or `_`",
                    self.name
                ),
            ));
        }
        if !POLICIES.contains(&self.policy.as_str()) {
            return Err(Rejection::new(
                "policy",
                format!(
                    "unknown policy `{}` (known: {})",
                    self.policy,
                    POLICIES.join(", ")
                ),
            ));
        }
        for (field, value) in [
            ("max_running", self.max_running),
            ("max_cpu_millis", self.max_cpu_millis),
            ("max_memory_mb", self.max_memory_mb),
            ("tenant_max_running", self.tenant_max_running),
        ] {
            if value == Some(0) {
                return Err(Rejection::new(
                    field,
                    "must be at least 1 (leave it out for no limit)",
                ));
            }
        }
        if let Some(timeout) = self.default_timeout_ms
            && !(1..=crate::task::MAX_TIMEOUT_MS).contains(&timeout)
        {
            return Err(Rejection::new(
                "default_timeout_ms",
                format!("must be between 1 and {}", crate::task::MAX_TIMEOUT_MS),
            ));
        }
        for (field, value) in [
            ("retry_backoff_ms", self.retry_backoff_ms),
            ("retry_backoff_max_ms", self.retry_backoff_max_ms),
        ] {
            if value > crate::task::MAX_TIMEOUT_MS {
                return Err(Rejection::new(
                    field,
                    format!("must be at most {}", crate::task::MAX_TIMEOUT_MS),
                ));
            }
        }
        // Postgres cannot store a NUL in the selector's `jsonb` (the other
        // strings are names or policies, which hold none).
        for (key, value) in &self.node_selector {
            if crate::storable::has_nul(key) {
                return Err(Rejection::new(
                    "node_selector",
                    "holds a key with a NUL character (U+0000), which Postgres cannot store",
                ));
            }
            if crate::storable::has_nul(value) {
                return Err(Rejection::new(
                    format!("node_selector.{key}"),
                    "must not contain a NUL character (U+0000), which Postgres cannot store",
                ));
            }
        }
        for (tenant, weight) in &self.tenant_weights {
            if !crate::subjects::is_token(tenant) {
                return Err(Rejection::new(
                    "tenant_weights",
                    format!("`{tenant}` is not a valid tenant name"),
                ));
            }
            if !(1..=MAX_WEIGHT).contains(weight) {
                return Err(Rejection::new(
                    format!("tenant_weights.{tenant}"),
                    format!("must be between 1 and {MAX_WEIGHT}"),
                ));
            }
        }
        if !(1.0..=MAX_OVERCOMMIT).contains(&self.overcommit) {
            return Err(Rejection::new(
                "overcommit",
                format!("must be between 1.0 and {MAX_OVERCOMMIT}"),
            ));
        }
        Ok(())
    }

    /// Whether a node with `labels` is a member.
    pub fn admits(&self, labels: &BTreeMap<String, String>) -> bool {
        selector_matches(&self.node_selector, labels)
    }
}

/// Whether `labels` carry every `key = value` of `selector`.
pub fn selector_matches(
    selector: &BTreeMap<String, String>,
    labels: &BTreeMap<String, String>,
) -> bool {
    selector
        .iter()
        .all(|(key, value)| labels.get(key) == Some(value))
}

/// Published on `taskyard.events.pool.changed` and `.deleted`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolEvent {
    pub pool: PoolSpec,
    /// True on `deleted`.
    #[serde(default)]
    pub deleted: bool,
    #[serde(with = "crate::rfc3339")]
    #[schemars(with = "String")]
    pub at: Timestamp,
}

/// The body of pool `create` and `update`: a definition, with the
/// `requested_by` of a request the api service makes for its caller (see
/// [`crate::actor`]) beside its fields.
///
/// The definition stays a plain [`PoolSpec`] on the wire, so that every
/// client that sends one goes on working; `requested_by` is taken off
/// before the rest is read, which still refuses unknown fields.
#[derive(Debug, Clone, PartialEq)]
pub struct PoolChange {
    pub pool: PoolSpec,
    pub requested_by: Option<String>,
}

/// The field of [`PoolChange`] and [`PoolName`] that names who asked.
pub const REQUESTED_BY: &str = "requested_by";

impl Serialize for PoolChange {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut value = serde_json::to_value(&self.pool).map_err(serde::ser::Error::custom)?;
        if let (Some(by), serde_json::Value::Object(fields)) = (&self.requested_by, &mut value) {
            fields.insert(REQUESTED_BY.to_owned(), by.clone().into());
        }
        value.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for PoolChange {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error;
        let mut fields = serde_json::Map::<String, serde_json::Value>::deserialize(deserializer)?;
        let requested_by = match fields.remove(REQUESTED_BY) {
            None | Some(serde_json::Value::Null) => None,
            Some(serde_json::Value::String(by)) => Some(by),
            Some(_) => return Err(D::Error::custom("`requested_by` must be a string")),
        };
        let pool =
            PoolSpec::deserialize(serde_json::Value::Object(fields)).map_err(D::Error::custom)?;
        Ok(PoolChange { pool, requested_by })
    }
}

/// The body of pool `get` and `delete`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct PoolName {
    pub name: String,
    /// Who a `delete` is made for, kept in `pool_events.actor`; believed
    /// only from the api service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// Replies of pool requests: the pool (or pools), or what is wrong.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum PoolReply {
    One { pool: PoolSpec },
    Many { pools: Vec<PoolSpec> },
    Refused { error: Rejection },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validation_names_the_field() {
        let mut pool = PoolSpec::default_pool();
        assert!(pool.validate().is_ok());
        pool.policy = "lottery".to_owned();
        assert_eq!(
            pool.validate().map_err(|e| e.field),
            Err("policy".to_owned())
        );
        pool.policy = "fcfs".to_owned();
        pool.max_running = Some(0);
        assert_eq!(
            pool.validate().map_err(|e| e.field),
            Err("max_running".to_owned())
        );
        pool.max_running = None;
        pool.tenant_weights.insert("acme".to_owned(), 0);
        assert_eq!(
            pool.validate().map_err(|e| e.field),
            Err("tenant_weights.acme".to_owned())
        );
        pool.tenant_weights.clear();
        pool.node_selector
            .insert("zone".to_owned(), "eu\u{0}".to_owned());
        assert_eq!(
            pool.validate().map_err(|e| e.field),
            Err("node_selector.zone".to_owned())
        );
        pool.node_selector.clear();
        pool.node_selector
            .insert("zo\u{0}ne".to_owned(), "eu".to_owned());
        assert_eq!(
            pool.validate().map_err(|e| e.field),
            Err("node_selector".to_owned())
        );
        pool.node_selector.clear();
        pool.overcommit = 0.5;
        assert_eq!(
            pool.validate().map_err(|e| e.field),
            Err("overcommit".to_owned())
        );
    }

    #[test]
    fn a_pool_change_is_a_definition_with_who_asked_beside_it() {
        let change: PoolChange = crate::codec::decode(
            br#"{"name": "gpu", "policy": "sjf", "requested_by": "token:ci"}"#,
        )
        .expect("a change");
        assert_eq!(change.requested_by.as_deref(), Some("token:ci"));
        assert_eq!(change.pool.name, "gpu");
        assert_eq!(change.pool.policy, "sjf");
        let plain: PoolChange =
            crate::codec::decode(br#"{"name": "gpu"}"#).expect("a plain definition");
        assert_eq!(plain.requested_by, None);
        assert_eq!(
            crate::codec::decode::<PoolChange>(&crate::codec::encode(&change)).expect("again"),
            change,
            "what is sent is read back"
        );
        let typo = crate::codec::decode::<PoolChange>(br#"{"name": "gpu", "polcy": "sjf"}"#);
        assert!(
            typo.is_err_and(|err| err.to_string().contains("polcy")),
            "unknown fields are still refused"
        );
        assert!(
            crate::codec::decode::<PoolChange>(br#"{"name": "gpu", "requested_by": 7}"#).is_err()
        );
    }

    #[test]
    fn selectors_need_every_label() {
        let mut pool = PoolSpec::default_pool();
        let labels: BTreeMap<String, String> = [
            ("gpu".to_owned(), "a100".to_owned()),
            ("zone".to_owned(), "eu".to_owned()),
        ]
        .into();
        assert!(pool.admits(&labels), "an empty selector admits every node");
        pool.node_selector
            .insert("gpu".to_owned(), "a100".to_owned());
        assert!(pool.admits(&labels));
        pool.node_selector
            .insert("zone".to_owned(), "us".to_owned());
        assert!(!pool.admits(&labels));
    }
}
