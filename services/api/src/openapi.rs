//! The OpenAPI document, `GET /api/v1/openapi.json`.
//!
//! It is derived from the code: every handler carries a `#[utoipa::path]`
//! naming its responses, and every response type derives
//! `utoipa::ToSchema`, so a field added to a body shows up here without
//! anyone editing the document. The bodies are the api's own
//! ([`crate::bodies`]), never the store's rows: a test below checks that no
//! schema of the document is a store type. Another validates real responses
//! against the schemas it holds (`tests/api/openapi.rs`).

use crate::AppState;
use crate::routes;
use axum::Json;
use axum::Router;
use axum::routing::get;
use std::sync::LazyLock;
use utoipa::Modify;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

/// The document, as derived.
#[derive(OpenApi)]
#[openapi(
    info(
        title = "Taskyard",
        description = "The REST API of Taskyard, a distributed task scheduler. Every request \
                       but `/healthz` needs a bearer token (`taskyard token create`) unless the \
                       server runs with `TASKYARD_AUTH=off` on loopback. Errors are \
                       `{\"error\": {\"code\", \"message\", \"field\"?}}`; lists page with an \
                       opaque `cursor` (the previous page's `next_cursor`)."
    ),
    paths(
        routes::tasks::submit,
        routes::tasks::list,
        routes::tasks::get_one,
        routes::tasks::cancel,
        routes::tasks::retry,
        routes::tasks::events,
        routes::workflows::list,
        routes::workflows::get_one,
        routes::nodes::list,
        routes::nodes::get_one,
        routes::nodes::drain,
        routes::nodes::cordon,
        routes::nodes::uncordon,
        routes::nodes::remove,
        routes::pools::list,
        routes::pools::get_one,
        routes::pools::create,
        routes::pools::update,
        routes::pools::delete,
        routes::tenants::list,
        routes::dead_letters::list,
        routes::services::list,
        routes::summary::get,
        routes::health::get,
        openapi_json,
    ),
    components(schemas(crate::error::ErrorBody, crate::error::ErrorDetail)),
    modifiers(&BearerAuth, &LogRoutes),
    security(("bearer" = [])),
    tags(
        (name = "tasks", description = "submit, read, cancel and retry tasks"),
        (name = "workflows", description = "DAGs of tasks"),
        (name = "nodes", description = "worker nodes and their lifecycle"),
        (name = "pools", description = "pools: policies, selectors, quotas"),
        (name = "tenants", description = "who has work, and their weights"),
        (name = "cluster", description = "summary, services, dead letters, health"),
    )
)]
pub struct ApiDoc;

/// The `bearer` security scheme every operation names.
struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("ty_…")
                    .description(Some(
                        "a token from `taskyard token create`, as `Authorization: Bearer <token>`",
                    ))
                    .build(),
            ),
        );
    }
}

/// The task log routes (`routes::logs`), described by hand: their page is
/// JSON lines of a task's output and their stream is server-sent events.
struct LogRoutes;

impl Modify for LogRoutes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let document = serde_json::json!({
            "/api/v1/tasks/{id}/logs": {"get": {
                "tags": ["tasks"],
                "summary": "A page of a task's captured output (stdout and stderr lines)",
                "operationId": "task_logs",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "one page of log lines", "content": {"application/json": {"schema": {"type": "object"}}}},
                    "404": {"description": "no such task", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
                }
            }},
            "/api/v1/tasks/{id}/logs/stream": {"get": {
                "tags": ["tasks"],
                "summary": "A task's output as it comes, as server-sent events",
                "operationId": "task_logs_stream",
                "parameters": [{"name": "id", "in": "path", "required": true, "schema": {"type": "string"}}],
                "responses": {
                    "200": {"description": "an event stream of log lines", "content": {"text/event-stream": {}}},
                    "404": {"description": "no such task", "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}}
                }
            }}
        });
        if let Ok(paths) = serde_json::from_value::<
            std::collections::BTreeMap<String, utoipa::openapi::path::PathItem>,
        >(document)
        {
            for (path, item) in paths {
                openapi.paths.paths.insert(path, item);
            }
        }
    }
}

static DOCUMENT: LazyLock<serde_json::Value> =
    LazyLock::new(|| serde_json::to_value(ApiDoc::openapi()).unwrap_or_default());

/// `GET /api/v1/openapi.json`.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "cluster",
    responses((status = 200, description = "this document", content_type = "application/json", body = Object)))]
pub async fn openapi_json() -> Json<serde_json::Value> {
    Json(DOCUMENT.clone())
}

/// The document's route.
pub fn router() -> Router<AppState> {
    Router::new().route("/api/v1/openapi.json", get(openapi_json))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_route_of_the_api_is_documented_with_its_errors() {
        let doc = DOCUMENT.clone();
        let paths = doc["paths"].as_object().cloned().unwrap_or_default();
        for path in [
            "/api/v1/tasks",
            "/api/v1/tasks/{id}",
            "/api/v1/tasks/{id}/cancel",
            "/api/v1/tasks/{id}/retry",
            "/api/v1/tasks/{id}/events",
            "/api/v1/tasks/{id}/logs",
            "/api/v1/tasks/{id}/logs/stream",
            "/api/v1/workflows",
            "/api/v1/workflows/{id}",
            "/api/v1/nodes",
            "/api/v1/nodes/{id}",
            "/api/v1/nodes/{id}/drain",
            "/api/v1/pools",
            "/api/v1/pools/{name}",
            "/api/v1/tenants",
            "/api/v1/dead-letters",
            "/api/v1/services",
            "/api/v1/summary",
            "/api/v1/openapi.json",
            "/healthz",
        ] {
            assert!(paths.contains_key(path), "{path} is missing");
        }
        for schema in ["ErrorBody", "TaskDetail", "Task", "Node", "PoolSpec"] {
            assert!(
                doc["components"]["schemas"][schema].is_object(),
                "{schema} is missing"
            );
        }
        // `/healthz` is open: its operation overrides the global security.
        assert_eq!(
            doc["paths"]["/healthz"]["get"]["security"],
            serde_json::json!([{}])
        );
    }

    /// The names the store's row types would have in the document.
    fn store_schema_names() -> Vec<String> {
        use taskyard_store::{console, dead_letters, nodes, tasks, tokens, workflows};
        use utoipa::ToSchema;
        [
            <tasks::TaskRow as ToSchema>::name(),
            <tasks::EventRow as ToSchema>::name(),
            <nodes::NodeRow as ToSchema>::name(),
            <nodes::Health as ToSchema>::name(),
            <nodes::Reserved as ToSchema>::name(),
            <dead_letters::DeadLetterRow as ToSchema>::name(),
            <console::WorkflowSummary as ToSchema>::name(),
            <workflows::WorkflowRow as ToSchema>::name(),
            <workflows::WorkflowState as ToSchema>::name(),
            <workflows::WorkflowStep as ToSchema>::name(),
            <workflows::WorkflowDetail as ToSchema>::name(),
            <workflows::TaskLinks as ToSchema>::name(),
            <tokens::Role as ToSchema>::name(),
            <tokens::TokenRow as ToSchema>::name(),
        ]
        .into_iter()
        .map(|name| name.into_owned())
        .collect()
    }

    #[test]
    fn the_document_describes_the_apis_bodies_not_the_stores_rows() {
        let doc = DOCUMENT.clone();
        let schemas = doc["components"]["schemas"]
            .as_object()
            .cloned()
            .unwrap_or_default();
        for name in store_schema_names() {
            assert!(
                !schemas.contains_key(&name),
                "the document holds the store's `{name}`: a route answers a store row"
            );
        }
        // Every body a route answers is one of the api's, under its name.
        use crate::bodies;
        use utoipa::ToSchema;
        for name in [
            <bodies::Task as ToSchema>::name(),
            <bodies::TaskEvent as ToSchema>::name(),
            <bodies::TaskDetail as ToSchema>::name(),
            <bodies::Node as ToSchema>::name(),
            <bodies::NodeHealthState as ToSchema>::name(),
            <bodies::NodeReserved as ToSchema>::name(),
            <bodies::DeadLetter as ToSchema>::name(),
            <bodies::WorkflowListItem as ToSchema>::name(),
            <bodies::Workflow as ToSchema>::name(),
            <bodies::WorkflowStatus as ToSchema>::name(),
            <bodies::Step as ToSchema>::name(),
        ] {
            assert!(schemas.contains_key(name.as_ref()), "{name} is missing");
        }
    }
}
