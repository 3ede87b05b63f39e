//! Request metrics: counts and durations by route.

use axum::extract::{MatchedPath, Request};
use axum::middleware::Next;
use axum::response::Response;

/// Counter of answered requests, labelled by `route` (the route pattern, such
/// as `/api/v1/tasks/{id}`, so ids do not explode the label set), `method` and
/// `status`.
pub const REQUESTS_TOTAL: &str = "taskyard_api_requests_total";
/// Histogram of the time to answer, by `route`.
pub const REQUEST_SECONDS: &str = "taskyard_api_request_seconds";

/// Middleware: counts every request once it is answered.
pub async fn count_requests(request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|path| path.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let started = std::time::Instant::now();
    let response = next.run(request).await;
    metrics::histogram!(REQUEST_SECONDS, "route" => route.clone())
        .record(started.elapsed().as_secs_f64());
    metrics::counter!(
        REQUESTS_TOTAL,
        "route" => route,
        "method" => method,
        "status" => response.status().as_u16().to_string(),
    )
    .increment(1);
    response
}
