//! `/api/v1/tenants`: who has work in the cluster, and their weights.

use crate::error::ErrorBody;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::State;
use serde::Serialize;
use std::collections::BTreeMap;
use taskyard_wire::TaskState;

/// One tenant: its tasks by state and its weight in each pool that names it.
#[derive(Debug, Clone, PartialEq, Serialize, utoipa::ToSchema)]
pub struct TenantSummary {
    pub name: String,
    /// Tasks in each state; every state is present, 0 when empty.
    pub states: BTreeMap<&'static str, i64>,
    /// All its tasks.
    pub total: i64,
    /// Its weight under `wfq`/`drf`, by pool; pools that do not name it
    /// (where it weighs 1) are left out.
    pub weights: BTreeMap<String, u32>,
}

/// `{"tenants": [...]}`, by name.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct TenantList {
    pub tenants: Vec<TenantSummary>,
}

/// `GET /api/v1/tenants`: every tenant seen in tasks or named in a pool's
/// `tenant_weights`.
#[utoipa::path(
    get,
    path = "/api/v1/tenants",
    tag = "tenants",
    responses(
        (status = 200, description = "every tenant", body = TenantList),
        (status = 500, description = "internal error", body = ErrorBody),
    )
)]
pub async fn list(State(state): State<AppState>) -> Result<Json<TenantList>, ApiError> {
    let (counts, pools) =
        tokio::try_join!(state.store.tenant_state_counts(), state.store.list_pools())?;
    let mut tenants: BTreeMap<String, TenantSummary> = BTreeMap::new();
    for (tenant, task_state, n) in counts {
        let summary = entry(&mut tenants, &tenant);
        summary.states.insert(task_state.as_str(), n);
        summary.total += n;
    }
    for pool in pools {
        for (tenant, weight) in &pool.tenant_weights {
            entry(&mut tenants, tenant)
                .weights
                .insert(pool.name.clone(), *weight);
        }
    }
    Ok(Json(TenantList {
        tenants: tenants.into_values().collect(),
    }))
}

/// The tenant `name` of `tenants`, added with zero counts if new.
fn entry<'a>(
    tenants: &'a mut BTreeMap<String, TenantSummary>,
    name: &str,
) -> &'a mut TenantSummary {
    tenants
        .entry(name.to_owned())
        .or_insert_with(|| TenantSummary {
            name: name.to_owned(),
            states: TaskState::ALL.iter().map(|s| (s.as_str(), 0)).collect(),
            total: 0,
            weights: BTreeMap::new(),
        })
}
