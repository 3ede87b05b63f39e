//! `/api/v1/pools`: pools, which the pool manager owns.
//!
//! Every handler is one request on `taskyard.api.pools.<op>` (through
//! [`taskyard_client::Client`]); the API checks only what the URL adds (the name in
//! the path) and leaves the pool's rules to its owner. A refusal with the
//! code `not_found` is a 404, any other a 400 `invalid_pool` naming the field,
//! and a pool manager that does not answer a 503.

use crate::auth::Actor;
use crate::error::ErrorBody;
use crate::{ApiError, AppState};
use axum::Json;
use axum::extract::rejection::{BytesRejection, PathRejection};
use axum::extract::{Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use bytes::Bytes;
use serde::Serialize;
use serde_json::{Map, Value};
use taskyard_client::ClientError;
use taskyard_wire::pool::PoolSpec;

/// `{"pools": [...]}`.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct PoolList {
    pub pools: Vec<PoolSpec>,
}

/// `GET /api/v1/pools`: every pool.
#[utoipa::path(get, path = "/api/v1/pools", tag = "pools",
    responses(
        (status = 200, description = "every pool", body = PoolList),
        (status = 503, description = "the pool manager did not answer", body = ErrorBody),
    ))]
pub async fn list(State(state): State<AppState>) -> Result<Json<PoolList>, ApiError> {
    let pools = list_pools(&state.client).await?;
    Ok(Json(PoolList { pools }))
}

/// Every pool, as the pool manager lists them.
pub async fn list_pools(client: &taskyard_client::Client) -> Result<Vec<PoolSpec>, ApiError> {
    client.pools().await.map_err(refusal)
}

/// `GET /api/v1/pools/{name}`.
#[utoipa::path(get, path = "/api/v1/pools/{name}", tag = "pools",
    params(("name" = String, Path, description = "the pool's name")),
    responses(
        (status = 200, description = "the pool", body = PoolSpec),
        (status = 404, description = "no such pool", body = ErrorBody),
    ))]
pub async fn get_one(
    State(state): State<AppState>,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<PoolSpec>, ApiError> {
    let Path(name) = name?;
    state.client.pool(&name).await.map(Json).map_err(refusal)
}

/// `POST /api/v1/pools`: creates the pool the body defines; 201 with the
/// pool as created (defaults filled in) and its `Location`.
#[utoipa::path(post, path = "/api/v1/pools", tag = "pools",
    request_body = PoolSpec,
    responses(
        (status = 201, description = "created, with defaults filled in", body = PoolSpec),
        (status = 400, description = "refused, naming the field", body = ErrorBody),
    ))]
pub async fn create(
    State(state): State<AppState>,
    actor: Actor,
    body: Result<Bytes, BytesRejection>,
) -> Result<(StatusCode, HeaderMap, Json<PoolSpec>), ApiError> {
    // Forwarded as the client wrote it: the pool manager fills in defaults.
    let definition = json_object(&body?)?;
    let pool = state
        .client_for(&actor)
        .create_pool(&definition)
        .await
        .map_err(refusal)?;
    let mut headers = HeaderMap::new();
    if let Ok(location) = HeaderValue::from_str(&format!("/api/v1/pools/{}", pool.name)) {
        headers.insert(header::LOCATION, location);
    }
    Ok((StatusCode::CREATED, headers, Json(pool)))
}

/// `PUT /api/v1/pools/{name}`: replaces the pool's definition with the body,
/// whose `name` must be the path's or absent.
#[utoipa::path(put, path = "/api/v1/pools/{name}", tag = "pools",
    params(("name" = String, Path, description = "the pool's name")),
    request_body = PoolSpec,
    responses(
        (status = 200, description = "the pool as updated", body = PoolSpec),
        (status = 400, description = "refused, naming the field", body = ErrorBody),
        (status = 404, description = "no such pool", body = ErrorBody),
    ))]
pub async fn update(
    State(state): State<AppState>,
    actor: Actor,
    name: Result<Path<String>, PathRejection>,
    body: Result<Bytes, BytesRejection>,
) -> Result<Json<PoolSpec>, ApiError> {
    let Path(name) = name?;
    let definition = named_definition(&name, &body?)?;
    state
        .client_for(&actor)
        .update_pool(&definition)
        .await
        .map(Json)
        .map_err(refusal)
}

/// `DELETE /api/v1/pools/{name}`: 200 with the pool as it was.
#[utoipa::path(delete, path = "/api/v1/pools/{name}", tag = "pools",
    params(("name" = String, Path, description = "the pool's name")),
    responses(
        (status = 200, description = "the pool as it was", body = PoolSpec),
        (status = 400, description = "refused (tasks still use it)", body = ErrorBody),
        (status = 404, description = "no such pool", body = ErrorBody),
    ))]
pub async fn delete(
    State(state): State<AppState>,
    actor: Actor,
    name: Result<Path<String>, PathRejection>,
) -> Result<Json<PoolSpec>, ApiError> {
    let Path(name) = name?;
    state
        .client_for(&actor)
        .delete_pool(&name)
        .await
        .map(Json)
        .map_err(refusal)
}

/// The body of an update: the client's definition with the path's name,
/// which a `name` in the body may repeat but not contradict.
pub fn named_definition(name: &str, body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    let mut definition = json_object(body)?;
    match definition.get("name") {
        None => {
            definition.insert("name".to_owned(), Value::from(name));
        }
        Some(Value::String(given)) if given == name => {}
        Some(other) => {
            return Err(ApiError::bad_request(
                "name",
                format!(
                    "the body names the pool {other} but the path names `{name}`; \
                     a pool cannot be renamed (leave `name` out, or make it the path's)"
                ),
            ));
        }
    }
    Ok(definition)
}

/// The body as a JSON object, or a 400 naming `body`.
fn json_object(body: &[u8]) -> Result<Map<String, Value>, ApiError> {
    match serde_json::from_slice::<Value>(body) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(ApiError::bad_request(
            "body",
            "a pool definition is a JSON object",
        )),
        Err(err) => Err(ApiError::bad_request(
            "body",
            format!("not valid JSON: {err}"),
        )),
    }
}

/// A failed pool request as an API error; the pool manager's refusal by its
/// code: `not_found` is a 404, any other a 400 `invalid_pool`.
fn refusal(err: ClientError) -> ApiError {
    match err {
        ClientError::Refused(error) => ApiError::from_refusal(error, |field, message| {
            ApiError::InvalidPool { field, message }
        }),
        other => other.into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_path_names_the_pool_of_an_update() {
        let filled = named_definition("gpu", br#"{"policy": "fcfs"}"#).expect("no name is fine");
        assert_eq!(filled["name"], "gpu");
        assert!(named_definition("gpu", br#"{"name": "gpu"}"#).is_ok());
        for body in [&br#"{"name": "cpu"}"#[..], br#"{"name": 7}"#] {
            let err = named_definition("gpu", body).expect_err("a different name");
            assert_eq!(err.field(), Some("name"));
        }
        let err = named_definition("gpu", b"[]").expect_err("not an object");
        assert_eq!(err.field(), Some("body"));
    }
}
