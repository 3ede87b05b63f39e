//! `GET /pools`: every pool with a form to change its policy and quotas;
//! `POST /console/pools/{name}`: the form's target, an update through the
//! pool manager (the same request as `PUT /api/v1/pools/{name}`).

use super::overview::pools_card;
use super::{Page, layout, query_escape, see_other};
use crate::AppState;
use crate::auth::Actor;
use crate::routes::pools::list_pools;
use axum::Form;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::response::{Html, IntoResponse, Response};
use maud::{Markup, html};
use serde::Deserialize;
use serde_json::Value;
use std::collections::BTreeMap;
use taskyard_client::ClientError;
use taskyard_wire::pool::{POLICIES, PoolSpec};

/// What the page says after a save: `?saved=NAME` or `?error=...&pool=NAME`.
#[derive(Debug, Default, Deserialize)]
pub struct Notice {
    pub saved: Option<String>,
    pub error: Option<String>,
    pub pool: Option<String>,
}

/// `GET /pools`.
pub async fn page(
    State(state): State<AppState>,
    notice: Result<Query<Notice>, QueryRejection>,
) -> Page {
    let Query(notice) = notice?;
    let quick = state.client.clone().with_timeout(super::POOLS_TIMEOUT);
    let (pools, loads) = tokio::join!(list_pools(&quick), state.store.pool_loads());
    let loads = loads?;
    let forms = pools.as_ref().map(|p| p.clone()).unwrap_or_default();
    let body = html! {
        @if let Some(name) = &notice.saved {
            p.notice #pool-saved { "Saved pool " strong { (name) } "." }
        }
        @if let Some(error) = &notice.error {
            p.error #pool-error { "Pool " (notice.pool.as_deref().unwrap_or("")) " was not changed: " (error) }
        }
        div #pools data-live { (pools_card(pools, &loads)) }
        div.grid2 {
            @for pool in &forms { (pool_form(pool)) }
        }
    };
    Ok(Html(layout("Pools", "pools", body).into_string()))
}

fn optional(value: Option<u32>) -> String {
    value.map(|n| n.to_string()).unwrap_or_default()
}

fn pool_form(pool: &PoolSpec) -> Markup {
    let weights = pool
        .tenant_weights
        .iter()
        .map(|(tenant, weight)| format!("{tenant}={weight}"))
        .collect::<Vec<_>>()
        .join("\n");
    html! {
        section.card {
            h2 { "Pool " (pool.name) }
            form.pool method="post" action={ "/console/pools/" (query_escape(&pool.name)) } {
                div.row {
                    label { "policy "
                        select name="policy" {
                            @for policy in POLICIES {
                                option value=(policy) selected[pool.policy == policy] { (policy) }
                            }
                        }
                    }
                    label { "placement "
                        select name="placement" {
                            @for placement in ["best_fit", "spread"] {
                                option value=(placement) selected[pool.placement.as_str() == placement] { (placement) }
                            }
                        }
                    }
                }
                div.row {
                    label { "max running " input name="max_running" size="6" inputmode="numeric" value=(optional(pool.max_running)); }
                    label { "max cpu (m) " input name="max_cpu_millis" size="7" inputmode="numeric" value=(optional(pool.max_cpu_millis)); }
                    label { "max memory (MiB) " input name="max_memory_mb" size="7" inputmode="numeric" value=(optional(pool.max_memory_mb)); }
                    label { "per tenant " input name="tenant_max_running" size="5" inputmode="numeric" value=(optional(pool.tenant_max_running)); }
                }
                label.block { "tenant weights (wfq), one tenant=weight a line "
                    textarea name="tenant_weights" rows="2" spellcheck="false" { (weights) }
                }
                button type="submit" { "Save" }
            }
        }
    }
}

/// The pool form's fields; an empty quota means none.
#[derive(Debug, Deserialize)]
pub struct PoolForm {
    pub policy: String,
    #[serde(default)]
    pub placement: Option<String>,
    #[serde(default)]
    pub max_running: String,
    #[serde(default)]
    pub max_cpu_millis: String,
    #[serde(default)]
    pub max_memory_mb: String,
    #[serde(default)]
    pub tenant_max_running: String,
    #[serde(default)]
    pub tenant_weights: String,
}

impl PoolForm {
    /// `current`'s definition with the form's changes; errors name the field.
    pub fn apply(&self, current: &PoolSpec) -> Result<Value, String> {
        let mut definition = serde_json::to_value(current).map_err(|err| err.to_string())?;
        let Some(map) = definition.as_object_mut() else {
            return Err("the pool is not an object".to_owned());
        };
        map.insert("policy".to_owned(), Value::from(self.policy.trim()));
        if let Some(placement) = self.placement.as_deref().filter(|p| !p.is_empty()) {
            map.insert("placement".to_owned(), Value::from(placement));
        }
        for (name, raw) in [
            ("max_running", &self.max_running),
            ("max_cpu_millis", &self.max_cpu_millis),
            ("max_memory_mb", &self.max_memory_mb),
            ("tenant_max_running", &self.tenant_max_running),
        ] {
            let raw = raw.trim();
            if raw.is_empty() {
                map.remove(name);
            } else {
                let n: u32 = raw
                    .parse()
                    .map_err(|_| format!("{name}: `{raw}` is not a whole number"))?;
                map.insert(name.to_owned(), Value::from(n));
            }
        }
        let mut weights = BTreeMap::new();
        for line in self
            .tenant_weights
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty())
        {
            let (tenant, weight) = line
                .split_once('=')
                .ok_or_else(|| format!("tenant_weights: `{line}` is not tenant=weight"))?;
            let weight: u32 = weight.trim().parse().map_err(|_| {
                format!("tenant_weights: `{}` is not a whole number", weight.trim())
            })?;
            weights.insert(tenant.trim().to_owned(), weight);
        }
        map.insert(
            "tenant_weights".to_owned(),
            serde_json::to_value(weights).unwrap_or_default(),
        );
        Ok(definition)
    }
}

/// `POST /console/pools/{name}`: 303 back to `/pools` saying what happened.
pub async fn update(
    State(state): State<AppState>,
    actor: Actor,
    name: Result<Path<String>, PathRejection>,
    Form(form): Form<PoolForm>,
) -> Response {
    let Ok(Path(name)) = name else {
        return see_other("/pools?error=bad+pool+name");
    };
    let failed = |message: String| {
        see_other(&format!(
            "/pools?pool={}&error={}",
            query_escape(&name),
            query_escape(&message)
        ))
    };
    let current = match state.client.pool(&name).await {
        Ok(pool) => pool,
        Err(err) => return failed(why(err)),
    };
    let definition = match form.apply(&current) {
        Ok(definition) => definition,
        Err(message) => return failed(message),
    };
    match state.client_for(&actor).update_pool(&definition).await {
        Ok(pool) => see_other(&format!("/pools?saved={}", query_escape(&pool.name))),
        Err(err) => failed(why(err)),
    }
    .into_response()
}

/// What the form says when a pool request fails: the refusal as
/// `field: message`, anything else as the API would say it.
fn why(err: ClientError) -> String {
    match err {
        ClientError::Refused(error) => format!("{}: {}", error.field, error.message),
        other => {
            let err = crate::ApiError::from(other);
            err.log();
            err.public_message()
        }
    }
}
