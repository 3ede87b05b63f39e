//! The `http` driver: one request to a service endpoint, judged by its status.
//!
//! The result is `{"status", "headers", "body", "body_truncated"}` whatever the
//! status, so a failed call still shows what the service said. The body is
//! kept up to the node's `max_output_bytes` (as lossy UTF-8); reading stops
//! there, since unlike a pipe nothing waits on us to drain it. Two deadlines
//! apply: the spec's `timeout_ms` (the request's own, a failure when it
//! passes) and the attempt's timeout (a timed-out attempt).

use super::{DriverEnv, Limits, Ran};
use reqwest::header::HeaderMap;
use reqwest::{Method, Response, Url};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::error::Error as StdError;
use std::time::Duration;
use taskyard_wire::task::HttpSpec;

/// The client every `http` attempt of this node shares.
pub fn client() -> Result<reqwest::Client, reqwest::Error> {
    reqwest::Client::builder()
        .user_agent(concat!("taskyard-worker/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Sends the request of `spec` and waits for the whole (bounded) response.
pub async fn run(spec: HttpSpec, env: &DriverEnv, limits: &Limits) -> Ran {
    let clock = limits.start();
    let shown = shown_url(&spec.url);
    let call = async {
        match spec.timeout_ms {
            Some(ms) => tokio::time::timeout(Duration::from_millis(ms), call(&spec, &shown, env))
                .await
                .unwrap_or_else(|_| {
                    Ran::failed(format!("no response from {shown} within {ms} ms"))
                }),
            None => call(&spec, &shown, env).await,
        }
    };
    tokio::select! {
        ran = call => ran,
        interrupt = clock.interrupted() => Ran {
            end: interrupt.into(),
            result: Value::Null,
        },
    }
}

async fn call(spec: &HttpSpec, shown: &str, env: &DriverEnv) -> Ran {
    // Job::parse checked the method; a spec can still reach a worker that
    // runs older validation, so this stays an error, not a panic.
    let Ok(method) = Method::from_bytes(spec.method.as_bytes()) else {
        return Ran::failed(format!("invalid HTTP method `{}`", spec.method));
    };
    let mut request = env.http.request(method, &spec.url);
    for (name, value) in &spec.headers {
        request = request.header(name, value);
    }
    if let Some(body) = &spec.body {
        request = request.body(body.clone());
    }
    let mut response = match request.send().await {
        Ok(response) => response,
        Err(err) => {
            return Ran::failed(format!(
                "HTTP {} {shown} failed: {}",
                spec.method,
                chain(&err.without_url())
            ));
        }
    };
    let status = response.status().as_u16();
    let headers = headers_json(response.headers());
    let (body, truncated, read_error) = read_bounded(&mut response, env.max_output_bytes).await;
    let result = json!({
        "status": status,
        "headers": headers,
        "body": String::from_utf8_lossy(&body),
        "body_truncated": truncated,
    });
    if let Some(err) = read_error {
        return Ran {
            end: super::End::Failed(format!(
                "reading the response of {shown} failed: {}",
                chain(&err.without_url())
            )),
            result,
        };
    }
    if spec.expects(status) {
        Ran::succeeded(result)
    } else {
        Ran {
            end: super::End::Failed(format!(
                "HTTP status {status} (expected {})",
                spec.expected_text()
            )),
            result,
        }
    }
}

/// The first `max` bytes of the body, whether there was more, and the error
/// that cut the reading short, if any.
async fn read_bounded(
    response: &mut Response,
    max: usize,
) -> (Vec<u8>, bool, Option<reqwest::Error>) {
    let mut body = Vec::new();
    loop {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                let room = max.saturating_sub(body.len());
                if chunk.len() > room {
                    body.extend_from_slice(&chunk[..room]);
                    return (body, true, None);
                }
                body.extend_from_slice(&chunk);
            }
            Ok(None) => return (body, false, None),
            Err(err) => return (body, false, Some(err)),
        }
    }
}

/// Response headers as a JSON object; a repeated header's values are joined
/// with `, ` as HTTP allows.
fn headers_json(headers: &HeaderMap) -> BTreeMap<String, String> {
    let mut out: BTreeMap<String, String> = BTreeMap::new();
    for (name, value) in headers {
        let value = String::from_utf8_lossy(value.as_bytes());
        out.entry(name.as_str().to_owned())
            .and_modify(|joined| {
                joined.push_str(", ");
                joined.push_str(&value);
            })
            .or_insert_with(|| value.into_owned());
    }
    out
}

/// The URL as errors show it: credentials in it would end up in task rows and
/// the console, so they are masked.
fn shown_url(url: &str) -> String {
    match Url::parse(url) {
        Ok(mut parsed) if !parsed.username().is_empty() || parsed.password().is_some() => {
            let _ = parsed.set_username("***");
            let _ = parsed.set_password(None);
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}

/// An error and its causes, `outer: inner: innermost`; reqwest's own message
/// alone ("error sending request") does not say what went wrong.
fn chain(err: &dyn StdError) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        let cause_text = cause.to_string();
        // Some layers repeat their cause in their own message.
        if !text.contains(&cause_text) {
            text.push_str(": ");
            text.push_str(&cause_text);
        }
        source = cause.source();
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::End;
    use axum::Router;
    use axum::http::StatusCode;
    use axum::routing::{get, post};
    use std::net::SocketAddr;

    /// A small HTTP server on 127.0.0.1:0 for the length of a test.
    async fn serve() -> SocketAddr {
        let app = Router::new()
            .route(
                "/hello",
                get(|| async {
                    // Appended, not inserted: a header sent twice.
                    let mut headers = axum::http::HeaderMap::new();
                    headers.append("x-greeting", axum::http::HeaderValue::from_static("hi"));
                    headers.append("x-greeting", axum::http::HeaderValue::from_static("again"));
                    (headers, "hello, world")
                }),
            )
            .route(
                "/echo",
                post(|headers: axum::http::HeaderMap, body: String| async move {
                    let token = headers
                        .get("x-token")
                        .and_then(|v| v.to_str().ok())
                        .unwrap_or_default()
                        .to_owned();
                    format!("{token}:{body}")
                }),
            )
            .route(
                "/busy",
                get(|| async { (StatusCode::SERVICE_UNAVAILABLE, "try later") }),
            )
            .route("/big", get(|| async { "x".repeat(100_000) }))
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local addr");
        tokio::spawn(async move {
            if let Err(err) = axum::serve(listener, app).await {
                eprintln!("test server failed: {err}");
            }
        });
        addr
    }

    fn env() -> DriverEnv {
        DriverEnv::new(std::env::temp_dir()).expect("an HTTP client")
    }

    fn spec(value: Value) -> HttpSpec {
        match taskyard_wire::task::Job::parse(taskyard_wire::TaskKind::Http, &value) {
            Ok(taskyard_wire::task::Job::Http(spec)) => spec,
            other => panic!("not an http spec: {other:?}"),
        }
    }

    fn bounded() -> Limits {
        Limits {
            timeout: Some(Duration::from_secs(15)),
            ..Limits::default()
        }
    }

    #[tokio::test]
    async fn a_success_carries_status_headers_and_body() {
        let addr = serve().await;
        let ran = run(
            spec(json!({"url": format!("http://{addr}/hello")})),
            &env(),
            &bounded(),
        )
        .await;
        assert_eq!(ran.end, End::Succeeded, "{ran:?}");
        assert_eq!(ran.result["status"], 200);
        assert_eq!(ran.result["body"], "hello, world");
        assert_eq!(ran.result["body_truncated"], false);
        assert_eq!(ran.result["headers"]["x-greeting"], "hi, again");
        assert_eq!(ran.result["headers"]["content-length"], "12");
    }

    #[tokio::test]
    async fn method_headers_and_body_are_sent() {
        let addr = serve().await;
        let ran = run(
            spec(json!({
                "method": "POST",
                "url": format!("http://{addr}/echo"),
                "headers": {"X-Token": "abc"},
                "body": "payload"
            })),
            &env(),
            &bounded(),
        )
        .await;
        assert_eq!(ran.end, End::Succeeded, "{ran:?}");
        assert_eq!(ran.result["body"], "abc:payload");
    }

    #[tokio::test]
    async fn an_unexpected_status_fails_and_keeps_the_response() {
        let addr = serve().await;
        let ran = run(
            spec(json!({"url": format!("http://{addr}/busy")})),
            &env(),
            &bounded(),
        )
        .await;
        assert_eq!(
            ran.end,
            End::Failed("HTTP status 503 (expected 2xx)".to_owned())
        );
        assert_eq!(ran.result["status"], 503);
        assert_eq!(ran.result["body"], "try later");

        // What counts as success is the spec's to say.
        let ran = run(
            spec(json!({"url": format!("http://{addr}/busy"), "expected_status": [503]})),
            &env(),
            &bounded(),
        )
        .await;
        assert_eq!(ran.end, End::Succeeded, "{ran:?}");
        let ran = run(
            spec(json!({"url": format!("http://{addr}/hello"), "expected_status": [201, 202]})),
            &env(),
            &bounded(),
        )
        .await;
        assert_eq!(
            ran.end,
            End::Failed("HTTP status 200 (expected 201, 202)".to_owned())
        );
    }

    #[tokio::test]
    async fn a_refused_connection_names_the_url() {
        // A port that was free a moment ago: nothing listens there.
        let port = {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
            listener.local_addr().expect("addr").port()
        };
        let url = format!("http://127.0.0.1:{port}/nothing");
        let ran = run(spec(json!({"url": url})), &env(), &bounded()).await;
        let End::Failed(error) = &ran.end else {
            panic!("expected a failure, got {ran:?}");
        };
        assert!(error.contains(&url), "{error}");
        assert!(error.to_lowercase().contains("refused"), "{error}");
    }

    #[tokio::test]
    async fn a_long_body_is_cut_and_flagged() {
        let addr = serve().await;
        let mut env = env();
        env.max_output_bytes = 10;
        let ran = run(
            spec(json!({"url": format!("http://{addr}/big")})),
            &env,
            &bounded(),
        )
        .await;
        assert_eq!(ran.end, End::Succeeded, "{ran:?}");
        assert_eq!(ran.result["body"], "xxxxxxxxxx");
        assert_eq!(ran.result["body_truncated"], true);
    }

    #[tokio::test]
    async fn both_deadlines_apply() {
        let addr = serve().await;
        let url = format!("http://{addr}/slow");
        let ran = run(
            spec(json!({"url": url, "timeout_ms": 200})),
            &env(),
            &bounded(),
        )
        .await;
        assert_eq!(
            ran.end,
            End::Failed(format!("no response from {url} within 200 ms"))
        );
        let limits = Limits {
            timeout: Some(Duration::from_millis(200)),
            ..Limits::default()
        };
        let ran = run(spec(json!({"url": url})), &env(), &limits).await;
        assert_eq!(ran.end, End::TimedOut(Duration::from_millis(200)));
    }

    #[test]
    fn credentials_are_masked_in_errors() {
        assert_eq!(
            shown_url("https://user:secret@example.com/x"),
            "https://***@example.com/x"
        );
        assert_eq!(shown_url("http://example.com/x"), "http://example.com/x");
    }
}
