//! The `nats` driver: one request to a NATS service, its reply the result.
//!
//! This is how a service in any language becomes an executor: it answers
//! requests on a subject (a NATS micro endpoint or a plain subscriber), and a
//! task names that subject. The request goes out on the worker's own
//! connection. The result is `{"reply", "headers", "reply_truncated"}`: the
//! reply parsed as JSON when it is JSON, else its (lossy UTF-8) text, bounded by
//! the node's `max_output_bytes`. A reply carrying the NATS micro error
//! headers (`Nats-Service-Error-Code`, `Nats-Service-Error`) fails the attempt
//! with that error.

use super::{DriverEnv, End, Limits, Ran};
use async_nats::client::{Request, RequestErrorKind};
use async_nats::service::{NATS_SERVICE_ERROR, NATS_SERVICE_ERROR_CODE};
use async_nats::{HeaderMap, Message};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::time::Duration;
use taskyard_wire::task::NatsSpec;

/// Sends the request of `spec` and waits for one reply.
pub async fn run(spec: NatsSpec, env: &DriverEnv, limits: &Limits) -> Ran {
    let Some(client) = &env.nats else {
        return Ran::failed("this worker has no NATS connection to send nats tasks on");
    };
    let clock = limits.start();
    let timeout_ms = spec.timeout_ms();
    let mut request = Request::new()
        .payload(spec.payload_bytes().into())
        .timeout(Some(Duration::from_millis(timeout_ms)));
    if !spec.headers.is_empty() {
        let mut headers = HeaderMap::new();
        for (name, value) in &spec.headers {
            headers.insert(name.as_str(), value.as_str());
        }
        request = request.headers(headers);
    }
    let sent = client.send_request(spec.subject.clone(), request);
    let replied = tokio::select! {
        replied = sent => replied,
        interrupt = clock.interrupted() => {
            return Ran { end: interrupt.into(), result: Value::Null };
        }
    };
    match replied {
        Ok(reply) => judge(&reply, env.max_output_bytes),
        Err(err) => Ran::failed(match err.kind() {
            RequestErrorKind::TimedOut => format!("no reply within {timeout_ms} ms"),
            RequestErrorKind::NoResponders => {
                format!("no service answers on {}", spec.subject)
            }
            _ => format!("NATS request on {} failed: {err}", spec.subject),
        }),
    }
}

/// The result of a reply, failed when the service says it failed.
fn judge(reply: &Message, max_bytes: usize) -> Ran {
    let (body, truncated) = reply_json(&reply.payload, max_bytes);
    let headers = reply.headers.as_ref().map(headers_json).unwrap_or_default();
    let service_error = reply.headers.as_ref().and_then(|headers| {
        let code = headers.get(NATS_SERVICE_ERROR_CODE)?.as_str().to_owned();
        let text = headers
            .get(NATS_SERVICE_ERROR)
            .map(|text| text.as_str().to_owned())
            .unwrap_or_default();
        Some((code, text))
    });
    let result = json!({
        "reply": body,
        "headers": headers,
        "reply_truncated": truncated,
    });
    match service_error {
        Some((code, text)) if text.is_empty() => Ran {
            end: End::Failed(format!("service error {code}")),
            result,
        },
        Some((code, text)) => Ran {
            end: End::Failed(format!("service error {code}: {text}")),
            result,
        },
        None => Ran::succeeded(result),
    }
}

/// The reply as JSON when it is JSON, else as text; a reply over `max_bytes`
/// is cut (then it is text: a cut document is no longer JSON).
fn reply_json(payload: &[u8], max_bytes: usize) -> (Value, bool) {
    if payload.len() > max_bytes {
        let cut = String::from_utf8_lossy(&payload[..max_bytes]).into_owned();
        return (Value::String(cut), true);
    }
    if payload.is_empty() {
        return (Value::String(String::new()), false);
    }
    match serde_json::from_slice(payload) {
        Ok(value) => (value, false),
        Err(_) => (
            Value::String(String::from_utf8_lossy(payload).into_owned()),
            false,
        ),
    }
}

/// Reply headers as a JSON object; a repeated header's values are joined with `, `.
fn headers_json(headers: &HeaderMap) -> BTreeMap<String, String> {
    headers
        .iter()
        .map(|(name, values)| {
            let joined = values
                .iter()
                .map(|value| value.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            (name.to_string(), joined)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use futures::StreamExt;
    use taskyard_devstack::{NatsOptions, NatsServer};
    use tempfile::TempDir;

    /// A nats-server of its own and a worker-side connection to it.
    struct Bus {
        client: async_nats::Client,
        env: DriverEnv,
        // Dropped last: stops the server, then deletes its folder.
        _server: NatsServer,
        _dir: TempDir,
    }

    async fn bus() -> Bus {
        let dir = tempfile::tempdir().expect("tempdir");
        let server = NatsServer::start(NatsOptions {
            dir: dir.path().join("nats"),
            port: None,
            ..NatsOptions::default()
        })
        .await
        .expect("nats-server starts");
        let client = async_nats::connect(server.url())
            .await
            .expect("connect to NATS");
        let mut env = DriverEnv::new(dir.path().join("work")).expect("an HTTP client");
        env.nats = Some(client.clone());
        Bus {
            client,
            env,
            _server: server,
            _dir: dir,
        }
    }

    impl Bus {
        /// Answers every request on `subject` with `answer(request)`: a payload
        /// and headers.
        async fn respond(
            &self,
            subject: &str,
            answer: impl Fn(&Message) -> (Vec<u8>, HeaderMap) + Send + 'static,
        ) {
            let mut requests = self
                .client
                .subscribe(subject.to_owned())
                .await
                .expect("subscribe");
            self.client.flush().await.expect("flush");
            let client = self.client.clone();
            tokio::spawn(async move {
                while let Some(request) = requests.next().await {
                    let Some(reply) = request.reply.clone() else {
                        continue;
                    };
                    let (payload, headers) = answer(&request);
                    if let Err(err) = client
                        .publish_with_headers(reply, headers, payload.into())
                        .await
                    {
                        eprintln!("responder cannot reply: {err}");
                    }
                }
            });
        }
    }

    fn spec(value: Value) -> NatsSpec {
        match taskyard_wire::task::Job::parse(taskyard_wire::TaskKind::Nats, &value) {
            Ok(taskyard_wire::task::Job::Nats(spec)) => spec,
            other => panic!("not a nats spec: {other:?}"),
        }
    }

    fn bounded() -> Limits {
        Limits {
            timeout: Some(Duration::from_secs(15)),
            ..Limits::default()
        }
    }

    #[tokio::test]
    async fn a_json_reply_is_the_result() {
        let bus = bus().await;
        bus.respond("calc.double", |request| {
            let n: i64 = serde_json::from_slice::<Value>(&request.payload)
                .ok()
                .and_then(|v| v["n"].as_i64())
                .unwrap_or(-1);
            let tenant = request
                .headers
                .as_ref()
                .and_then(|h| h.get("Tenant"))
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            let mut headers = HeaderMap::new();
            headers.insert("Served-By", "calc-1");
            (
                serde_json::to_vec(&json!({"n": n * 2, "tenant": tenant})).unwrap_or_default(),
                headers,
            )
        })
        .await;
        let ran = run(
            spec(json!({"subject": "calc.double", "payload": {"n": 21}, "headers": {"Tenant": "acme"}})),
            &bus.env,
            &bounded(),
        )
        .await;
        assert_eq!(ran.end, End::Succeeded, "{ran:?}");
        assert_eq!(ran.result["reply"], json!({"n": 42, "tenant": "acme"}));
        assert_eq!(ran.result["headers"]["Served-By"], "calc-1");
        assert_eq!(ran.result["reply_truncated"], false);
    }

    #[tokio::test]
    async fn a_text_reply_to_a_text_payload_stays_text() {
        let bus = bus().await;
        bus.respond("text.upper", |request| {
            (
                String::from_utf8_lossy(&request.payload)
                    .to_uppercase()
                    .into_bytes(),
                HeaderMap::new(),
            )
        })
        .await;
        let ran = run(
            spec(json!({"subject": "text.upper", "payload": "shout"})),
            &bus.env,
            &bounded(),
        )
        .await;
        assert_eq!(ran.end, End::Succeeded, "{ran:?}");
        assert_eq!(ran.result["reply"], "SHOUT");
    }

    #[tokio::test]
    async fn a_service_error_fails_the_attempt() {
        let bus = bus().await;
        bus.respond("billing.charge", |_| {
            let mut headers = HeaderMap::new();
            headers.insert(NATS_SERVICE_ERROR_CODE, "402");
            headers.insert(NATS_SERVICE_ERROR, "card declined");
            (Vec::new(), headers)
        })
        .await;
        let ran = run(
            spec(json!({"subject": "billing.charge"})),
            &bus.env,
            &bounded(),
        )
        .await;
        assert_eq!(
            ran.end,
            End::Failed("service error 402: card declined".to_owned())
        );
        assert_eq!(ran.result["headers"][NATS_SERVICE_ERROR_CODE], "402");
    }

    #[tokio::test]
    async fn a_micro_service_error_fails_the_attempt() {
        // The same, from a real NATS micro endpoint.
        use async_nats::service::ServiceExt;
        let bus = bus().await;
        let service = bus
            .client
            .service_builder()
            .start("inventory", "1.0.0")
            .await
            .expect("a micro service");
        let mut endpoint = service
            .endpoint("inventory.reserve")
            .await
            .expect("endpoint");
        tokio::spawn(async move {
            while let Some(request) = endpoint.next().await {
                let refused = async_nats::service::error::Error {
                    status: "out of stock".to_owned(),
                    code: 409,
                };
                if let Err(err) = request.respond(Err(refused)).await {
                    eprintln!("micro endpoint cannot reply: {err}");
                }
            }
        });
        bus.client.flush().await.expect("flush");
        let ran = run(
            spec(json!({"subject": "inventory.reserve", "payload": {"sku": "a"}})),
            &bus.env,
            &bounded(),
        )
        .await;
        assert_eq!(
            ran.end,
            End::Failed("service error 409: out of stock".to_owned())
        );
    }

    #[tokio::test]
    async fn no_responders_is_named() {
        let bus = bus().await;
        let ran = run(
            spec(json!({"subject": "nobody.home"})),
            &bus.env,
            &bounded(),
        )
        .await;
        assert_eq!(
            ran.end,
            End::Failed("no service answers on nobody.home".to_owned())
        );
    }

    #[tokio::test]
    async fn a_silent_service_times_out() {
        let bus = bus().await;
        // Subscribed, so NATS does not answer "no responders", but never replies.
        let _silent = bus
            .client
            .subscribe("slow.service")
            .await
            .expect("subscribe");
        bus.client.flush().await.expect("flush");
        let ran = run(
            spec(json!({"subject": "slow.service", "timeout_ms": 200})),
            &bus.env,
            &bounded(),
        )
        .await;
        assert_eq!(ran.end, End::Failed("no reply within 200 ms".to_owned()));

        // The attempt's own timeout, when shorter, wins.
        let limits = Limits {
            timeout: Some(Duration::from_millis(200)),
            ..Limits::default()
        };
        let ran = run(spec(json!({"subject": "slow.service"})), &bus.env, &limits).await;
        assert_eq!(ran.end, End::TimedOut(Duration::from_millis(200)));
    }

    #[test]
    fn a_long_reply_is_cut_to_text() {
        let (value, truncated) = reply_json(br#"{"long": "xxxxxxxxxxxx"}"#, 8);
        assert_eq!(value, json!("{\"long\":"));
        assert!(truncated);
        let (value, truncated) = reply_json(b"not json", 64);
        assert_eq!(value, json!("not json"));
        assert!(!truncated);
    }
}
