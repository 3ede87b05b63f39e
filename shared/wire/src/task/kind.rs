//! The kinds of task and the input (`spec`) of each driver: [`TaskKind`],
//! the driver specs, [`Job`] (a kind with its parsed spec) and the checks
//! of each spec, with the bounds and JSON Schema patterns they hold to.

use super::submission::MAX_TIMEOUT_MS;
use super::validation::{parse_at, strip_position};
use crate::rejection::Rejection;
use crate::storable::NulFreeJson;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// Methods the `http` driver sends. Others (CONNECT, TRACE, OPTIONS) have no
/// use as a task and some are proxy plumbing.
pub const HTTP_METHODS: [&str; 6] = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD"];
/// Method of an `http` task that names none.
pub const DEFAULT_HTTP_METHOD: &str = "GET";
/// How long a `nats` task waits for its reply when it does not say.
pub const DEFAULT_NATS_TIMEOUT_MS: u64 = 30_000;
/// Longest subject a `nats` task may name (NATS itself allows more, but a
/// subject this long is a mistake rather than a service).
pub const MAX_NATS_SUBJECT_LEN: usize = 256;

/// Longest `sleep` (`spec.ms`): a sleep longer than any timeout is a task
/// that can only time out.
pub const MAX_SLEEP_MS: u64 = MAX_TIMEOUT_MS;
/// Most arguments of an `exec` task. The kernel caps one program's
/// arguments and environment together (`ARG_MAX`, 2 MiB by default); the
/// spec's size bounds their bytes.
pub const MAX_EXEC_ARGS: usize = 1024;
/// Most environment variables an `exec` task sets.
pub const MAX_EXEC_ENV: usize = 256;
/// Most headers of an `http` or `nats` task.
pub const MAX_HEADERS: usize = 64;

/// JSON Schema `pattern` of an environment variable name: not empty, no
/// `=` (which would end the name early), no NUL.
pub const ENV_NAME_PATTERN: &str = r"^[^=\u0000]+$";
/// JSON Schema `pattern` of an HTTP or NATS header name (RFC 9110 `token`).
pub const HEADER_NAME_PATTERN: &str = "^[!#$%&'*+.^_`|~0-9A-Za-z-]+$";
/// JSON Schema `pattern` of an HTTP header value: no control character but
/// tab.
pub const HTTP_HEADER_VALUE_PATTERN: &str = r"^[^\u0000-\u0008\u000a-\u001f\u007f]*$";
/// JSON Schema `pattern` of a NATS header value: no line break, no NUL.
pub const NATS_HEADER_VALUE_PATTERN: &str = r"^[^\u0000\r\n]*$";
/// JSON Schema `pattern` of an `http` URL: the scheme (any case), then no
/// space or control character.
pub const HTTP_URL_PATTERN: &str = r"^[Hh][Tt][Tt][Pp][Ss]?://[^\u0000-\u0020\u007f]+$";
/// JSON Schema `pattern` of a `nats` subject: dot-separated tokens, none
/// empty, without spaces, control characters or wildcards; not a `$` system
/// subject, not under `taskyard.`.
pub const NATS_SUBJECT_PATTERN: &str = r"^(?!taskyard(\.|$))(?!\$)[^\s\u0000-\u001f\u007f-\u009f*>.]+(\.[^\s\u0000-\u001f\u007f-\u009f*>.]+)*$";

/// The drivers a worker knows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum TaskKind {
    /// Run a command: `spec` is an [`ExecSpec`].
    Exec,
    /// Do nothing and succeed (benchmarks).
    Noop,
    /// Succeed with `spec` as the result.
    Echo,
    /// Sleep `spec.ms` milliseconds, then succeed: a [`SleepSpec`].
    Sleep,
    /// Fail with `spec.message`: a [`FailSpec`].
    Fail,
    /// Call an HTTP endpoint: an [`HttpSpec`].
    Http,
    /// Send a NATS request to a service and wait for its reply: a [`NatsSpec`].
    Nats,
}

impl std::str::FromStr for TaskKind {
    type Err = Rejection;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        serde_json::from_value(Value::String(s.to_owned()))
            .map_err(|err| Rejection::new("kind", strip_position(&err.to_string())))
    }
}

impl TaskKind {
    /// The name on the wire and in Postgres.
    pub fn as_str(self) -> &'static str {
        match self {
            TaskKind::Exec => "exec",
            TaskKind::Noop => "noop",
            TaskKind::Echo => "echo",
            TaskKind::Sleep => "sleep",
            TaskKind::Fail => "fail",
            TaskKind::Http => "http",
            TaskKind::Nats => "nats",
        }
    }
}

/// Input of the `exec` driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ExecSpec {
    /// The program, looked up on the worker's PATH when not absolute.
    pub command: String,
    /// Its arguments: at most 1024.
    #[serde(default)]
    #[schemars(length(max = MAX_EXEC_ARGS))]
    pub args: Vec<String>,
    /// Extra environment variables: at most 256; a name is not empty and
    /// has no `=`.
    #[serde(default)]
    #[schemars(extend("maxProperties" = MAX_EXEC_ENV, "propertyNames" = {"pattern": ENV_NAME_PATTERN}))]
    pub env: BTreeMap<String, String>,
    /// Working directory; the worker's task directory when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// Written to the program's standard input, which is then closed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stdin: Option<String>,
}

/// Input of the `sleep` driver.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SleepSpec {
    /// How long to sleep, in milliseconds: at most a week.
    #[schemars(range(max = MAX_SLEEP_MS))]
    pub ms: u64,
}

/// Input of the `fail` driver.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FailSpec {
    /// The error the task fails with.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

/// Input of the `http` driver: one request, judged by its status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct HttpSpec {
    /// One of GET, POST, PUT, PATCH, DELETE, HEAD (upper case, as HTTP spells them).
    #[serde(default = "default_http_method")]
    #[schemars(extend("enum" = HTTP_METHODS))]
    pub method: String,
    /// An absolute `http://` or `https://` URL, with no space or control
    /// character.
    #[schemars(regex(pattern = HTTP_URL_PATTERN))]
    pub url: String,
    /// Request headers: at most 64; a value holds no control character but
    /// tab.
    #[serde(default)]
    #[schemars(extend(
        "maxProperties" = MAX_HEADERS,
        "propertyNames" = {"pattern": HEADER_NAME_PATTERN},
        "additionalProperties" = {"type": "string", "pattern": HTTP_HEADER_VALUE_PATTERN}
    ))]
    pub headers: BTreeMap<String, String>,
    /// Request body, sent as is.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Statuses that count as success; any 2xx when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1), inner(range(min = 100, max = 599)))]
    pub expected_status: Option<Vec<u16>>,
    /// Deadline of the request in milliseconds, on top of the task's own
    /// `timeout_ms` (the shorter wins).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_TIMEOUT_MS))]
    pub timeout_ms: Option<u64>,
}

fn default_http_method() -> String {
    DEFAULT_HTTP_METHOD.to_owned()
}

impl HttpSpec {
    /// Whether `status` counts as success for this request.
    pub fn expects(&self, status: u16) -> bool {
        match &self.expected_status {
            Some(expected) => expected.contains(&status),
            None => (200..300).contains(&status),
        }
    }

    /// The statuses that count as success, for error messages: `2xx` or
    /// `200, 404`.
    pub fn expected_text(&self) -> String {
        match &self.expected_status {
            Some(expected) => expected
                .iter()
                .map(u16::to_string)
                .collect::<Vec<_>>()
                .join(", "),
            None => "2xx".to_owned(),
        }
    }
}

/// Input of the `nats` driver: one request to a NATS service (any language),
/// whose reply is the task's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NatsSpec {
    /// Where the service listens: a subject without wildcards, outside
    /// Taskyard's own `taskyard.` subjects and the server's `$` subjects;
    /// 1 to 256 bytes.
    #[schemars(length(min = 1, max = MAX_NATS_SUBJECT_LEN), regex(pattern = NATS_SUBJECT_PATTERN))]
    pub subject: String,
    /// The request body: a JSON string is sent as its raw text, anything else
    /// as JSON. Absent or `null` sends an empty body.
    #[serde(default)]
    #[schemars(with = "NulFreeJson")]
    pub payload: Value,
    /// How long to wait for the reply, in milliseconds (default 30000).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = MAX_TIMEOUT_MS))]
    pub timeout_ms: Option<u64>,
    /// NATS headers sent with the request: at most 64; a value holds no
    /// line break.
    #[serde(default)]
    #[schemars(extend(
        "maxProperties" = MAX_HEADERS,
        "propertyNames" = {"pattern": HEADER_NAME_PATTERN},
        "additionalProperties" = {"type": "string", "pattern": NATS_HEADER_VALUE_PATTERN}
    ))]
    pub headers: BTreeMap<String, String>,
}

impl NatsSpec {
    /// The body the request carries.
    pub fn payload_bytes(&self) -> Vec<u8> {
        match &self.payload {
            Value::Null => Vec::new(),
            Value::String(text) => text.as_bytes().to_vec(),
            other => serde_json::to_vec(other).unwrap_or_default(),
        }
    }

    /// How long to wait for the reply.
    pub fn timeout_ms(&self) -> u64 {
        self.timeout_ms.unwrap_or(DEFAULT_NATS_TIMEOUT_MS)
    }
}

/// A task's driver and its parsed input.
#[derive(Debug, Clone, PartialEq)]
pub enum Job {
    Exec(ExecSpec),
    Noop,
    Echo(Value),
    Sleep(SleepSpec),
    Fail(FailSpec),
    Http(HttpSpec),
    Nats(NatsSpec),
}

impl Job {
    /// Parses `spec` for `kind`. Errors name the field under `spec`.
    pub fn parse(kind: TaskKind, spec: &Value) -> Result<Job, Rejection> {
        Ok(match kind {
            TaskKind::Exec => {
                let exec: ExecSpec = parse_at("spec", spec.clone())?;
                check_exec(&exec)?;
                Job::Exec(exec)
            }
            TaskKind::Noop => match spec {
                Value::Null => Job::Noop,
                Value::Object(map) if map.is_empty() => Job::Noop,
                _ => {
                    return Err(Rejection::new(
                        "spec",
                        "the noop driver takes no spec (null or {})",
                    ));
                }
            },
            TaskKind::Echo => Job::Echo(spec.clone()),
            TaskKind::Sleep => {
                if spec.is_null() {
                    return Err(Rejection::new("spec.ms", "missing field `ms`"));
                }
                let sleep: SleepSpec = parse_at("spec", spec.clone())?;
                if sleep.ms > MAX_SLEEP_MS {
                    return Err(Rejection::new(
                        "spec.ms",
                        format!("must be at most {MAX_SLEEP_MS} (a week)"),
                    ));
                }
                Job::Sleep(sleep)
            }
            TaskKind::Fail => {
                if spec.is_null() {
                    Job::Fail(FailSpec::default())
                } else {
                    Job::Fail(parse_at("spec", spec.clone())?)
                }
            }
            TaskKind::Http => {
                if spec.is_null() {
                    return Err(Rejection::new("spec.url", "missing field `url`"));
                }
                let http: HttpSpec = parse_at("spec", spec.clone())?;
                check_http(&http)?;
                Job::Http(http)
            }
            TaskKind::Nats => {
                if spec.is_null() {
                    return Err(Rejection::new("spec.subject", "missing field `subject`"));
                }
                let nats: NatsSpec = parse_at("spec", spec.clone())?;
                check_nats(&nats)?;
                Job::Nats(nats)
            }
        })
    }
}

fn check_exec(spec: &ExecSpec) -> Result<(), Rejection> {
    if spec.command.trim().is_empty() {
        return Err(Rejection::new("spec.command", "must not be empty"));
    }
    if spec.args.len() > MAX_EXEC_ARGS {
        return Err(Rejection::new(
            "spec.args",
            format!("at most {MAX_EXEC_ARGS} arguments"),
        ));
    }
    if spec.env.len() > MAX_EXEC_ENV {
        return Err(Rejection::new(
            "spec.env",
            format!("at most {MAX_EXEC_ENV} variables"),
        ));
    }
    // The environment is a list of `NAME=value` strings: a name with `=`
    // would set another variable than the one named, and an empty one none.
    if let Some(name) = spec
        .env
        .keys()
        .find(|name| name.is_empty() || name.contains('='))
    {
        let field = if name.is_empty() {
            "spec.env".to_owned()
        } else {
            format!("spec.env.{name}")
        };
        return Err(Rejection::new(
            field,
            "a variable name is not empty and has no `=`",
        ));
    }
    Ok(())
}

/// At most [`MAX_HEADERS`] headers.
fn check_header_count(headers: &BTreeMap<String, String>) -> Result<(), Rejection> {
    if headers.len() > MAX_HEADERS {
        return Err(Rejection::new(
            "spec.headers",
            format!("at most {MAX_HEADERS} headers"),
        ));
    }
    Ok(())
}

fn check_http(spec: &HttpSpec) -> Result<(), Rejection> {
    if !HTTP_METHODS.contains(&spec.method.as_str()) {
        return Err(Rejection::new(
            "spec.method",
            format!(
                "`{}` is not one of {}",
                spec.method,
                HTTP_METHODS.join(", ")
            ),
        ));
    }
    check_http_url(&spec.url).map_err(|why| Rejection::new("spec.url", why))?;
    check_header_count(&spec.headers)?;
    for (name, value) in &spec.headers {
        let field = format!("spec.headers.{name}");
        if name.is_empty() || !name.bytes().all(is_http_token_byte) {
            return Err(Rejection::new(
                field,
                "a header name is letters, digits and !#$%&'*+-.^_`|~",
            ));
        }
        // Tabs are allowed inside a value; other control bytes (CR, LF above
        // all) would split or end the header.
        if value.bytes().any(|b| (b < 0x20 && b != b'\t') || b == 0x7f) {
            return Err(Rejection::new(
                field,
                "a header value must not contain control characters",
            ));
        }
    }
    if let Some(expected) = &spec.expected_status {
        if expected.is_empty() {
            return Err(Rejection::new(
                "spec.expected_status",
                "name at least one status, or leave it out for any 2xx",
            ));
        }
        if let Some(index) = expected.iter().position(|s| !(100..=599).contains(s)) {
            return Err(Rejection::new(
                format!("spec.expected_status[{index}]"),
                "an HTTP status is between 100 and 599",
            ));
        }
    }
    check_timeout("spec.timeout_ms", spec.timeout_ms)
}

/// RFC 9110 `tchar`.
fn is_http_token_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// Checks the shape of an absolute http(s) URL: scheme, a host, a numeric
/// port if any, nothing a request line cannot carry. The worker's HTTP client
/// parses it fully; this catches what a client can fix before it submits.
fn check_http_url(url: &str) -> Result<(), String> {
    if url.bytes().any(|b| b <= b' ' || b == 0x7f) {
        return Err("must not contain spaces or control characters".to_owned());
    }
    let rest = match url.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("http") || scheme.eq_ignore_ascii_case("https") =>
        {
            rest
        }
        _ => return Err(format!("`{url}` is not an http:// or https:// URL")),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // Credentials may come before the host.
    let host_port = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    let (host, port) = if let Some(bracketed) = host_port.strip_prefix('[') {
        match bracketed.split_once(']') {
            Some((v6, after)) if !v6.is_empty() => match after {
                "" => (v6, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (v6, Some(port)),
                    None => return Err(format!("`{url}` has a malformed IPv6 host")),
                },
            },
            _ => return Err(format!("`{url}` has a malformed IPv6 host")),
        }
    } else {
        match host_port.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (host_port, None),
        }
    };
    if host.is_empty() {
        return Err(format!("`{url}` names no host"));
    }
    if let Some(port) = port
        && !port.is_empty()
        && port.parse::<u16>().is_err()
    {
        return Err(format!("`{url}` has an invalid port `{port}`"));
    }
    Ok(())
}

fn check_nats(spec: &NatsSpec) -> Result<(), Rejection> {
    let subject = spec.subject.as_str();
    let bad = |why: &str| Err(Rejection::new("spec.subject", format!("`{subject}` {why}")));
    if subject.is_empty() || subject.len() > MAX_NATS_SUBJECT_LEN {
        return bad(&format!("must be 1 to {MAX_NATS_SUBJECT_LEN} bytes long"));
    }
    if subject.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return bad("must not contain spaces or control characters");
    }
    if subject.split('.').any(str::is_empty) {
        return bad("has an empty token (a leading, trailing or double `.`)");
    }
    if subject.contains(['*', '>']) {
        return bad("must not contain the wildcards `*` or `>`: a request goes to one subject");
    }
    if subject.starts_with('$') {
        return bad("is a NATS system subject (`$...`)");
    }
    if subject.split('.').next() == Some("taskyard") {
        return bad("is one of Taskyard's own subjects (`taskyard.`)");
    }
    check_header_count(&spec.headers)?;
    for (name, value) in &spec.headers {
        let field = format!("spec.headers.{name}");
        // A NATS header line is `Name: value`, as in HTTP/1.
        if name.is_empty() || !name.bytes().all(is_http_token_byte) {
            return Err(Rejection::new(
                field,
                "a header name is letters, digits and !#$%&'*+-.^_`|~",
            ));
        }
        if value.bytes().any(|b| b == b'\r' || b == b'\n') {
            return Err(Rejection::new(
                field,
                "a header value must not contain line breaks",
            ));
        }
    }
    check_timeout("spec.timeout_ms", spec.timeout_ms)
}

fn check_timeout(field: &str, timeout_ms: Option<u64>) -> Result<(), Rejection> {
    match timeout_ms {
        Some(timeout) if !(1..=MAX_TIMEOUT_MS).contains(&timeout) => Err(Rejection::new(
            field,
            format!("must be between 1 and {MAX_TIMEOUT_MS}"),
        )),
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn http(spec: Value) -> Result<Job, Rejection> {
        Job::parse(TaskKind::Http, &spec)
    }

    fn nats(spec: Value) -> Result<Job, Rejection> {
        Job::parse(TaskKind::Nats, &spec)
    }

    #[test]
    fn an_http_spec_gets_defaults() {
        let Ok(Job::Http(spec)) = http(json!({"url": "https://example.com/health"})) else {
            panic!("a bare URL is a valid http spec");
        };
        assert_eq!(spec.method, "GET");
        assert!(spec.headers.is_empty());
        assert!(spec.expects(204));
        assert!(!spec.expects(301));
        assert_eq!(spec.expected_text(), "2xx");
        let Ok(Job::Http(spec)) = http(json!({
            "method": "POST",
            "url": "http://user:pw@[::1]:8080/x?y#z",
            "headers": {"Content-Type": "application/json"},
            "body": "{}",
            "expected_status": [200, 404],
            "timeout_ms": 500
        })) else {
            panic!("a full http spec is valid");
        };
        assert!(spec.expects(404));
        assert!(!spec.expects(201));
        assert_eq!(spec.expected_text(), "200, 404");
    }

    #[test]
    fn http_spec_errors_name_the_field() {
        for url in [
            "ftp://example.com/",
            "example.com",
            "http://",
            "http:///path",
            "http://host:port/",
            "http://exa mple.com/",
            "http://[::1/",
        ] {
            let r = http(json!({"url": url})).expect_err(url);
            assert_eq!(r.field, "spec.url", "{url}: {r}");
        }
        assert_eq!(http(json!({})).expect_err("no url").field, "spec.url");
        assert_eq!(http(Value::Null).expect_err("no spec").field, "spec.url");
        let r = http(json!({"url": "http://a/", "method": "CONNECT"})).expect_err("method");
        assert_eq!(r.field, "spec.method");
        assert!(r.message.contains("GET, POST"), "{}", r.message);
        let r = http(json!({"url": "http://a/", "method": "get"})).expect_err("lower case");
        assert_eq!(r.field, "spec.method");
        let r = http(json!({"url": "http://a/", "headers": {"X-A": "b\r\nInjected: 1"}}))
            .expect_err("header value");
        assert_eq!(r.field, "spec.headers.X-A");
        let r = http(json!({"url": "http://a/", "headers": {"bad name": "x"}}))
            .expect_err("header name");
        assert_eq!(r.field, "spec.headers.bad name");
        let r =
            http(json!({"url": "http://a/", "expected_status": [200, 99]})).expect_err("status");
        assert_eq!(r.field, "spec.expected_status[1]");
        let r = http(json!({"url": "http://a/", "expected_status": []})).expect_err("empty");
        assert_eq!(r.field, "spec.expected_status");
        let r = http(json!({"url": "http://a/", "timeout_ms": 0})).expect_err("timeout");
        assert_eq!(r.field, "spec.timeout_ms");
        let r = http(json!({"url": "http://a/", "verb": "GET"})).expect_err("unknown");
        assert_eq!(r.field, "spec.verb");
    }

    #[test]
    fn a_nats_spec_sends_its_payload() {
        let Ok(Job::Nats(spec)) = nats(json!({"subject": "billing.invoice", "payload": {"n": 1}}))
        else {
            panic!("valid nats spec");
        };
        assert_eq!(spec.payload_bytes(), br#"{"n":1}"#);
        assert_eq!(spec.timeout_ms(), DEFAULT_NATS_TIMEOUT_MS);
        let Ok(Job::Nats(spec)) = nats(json!({"subject": "echo", "payload": "raw text"})) else {
            panic!("valid nats spec");
        };
        assert_eq!(spec.payload_bytes(), b"raw text");
        let Ok(Job::Nats(spec)) = nats(json!({"subject": "echo"})) else {
            panic!("valid nats spec");
        };
        assert!(spec.payload_bytes().is_empty());
    }

    #[test]
    fn nats_spec_errors_name_the_field() {
        for subject in [
            "",
            "a..b",
            ".a",
            "a.",
            "orders.*",
            "orders.>",
            "has space",
            "$SRV.PING",
            "taskyard.submit",
            "taskyard",
        ] {
            let r = nats(json!({"subject": subject})).expect_err(subject);
            assert_eq!(r.field, "spec.subject", "{subject}: {r}");
        }
        assert_eq!(
            nats(Value::Null).expect_err("no spec").field,
            "spec.subject"
        );
        // Only the whole first token is reserved.
        assert!(nats(json!({"subject": "taskyard-billing.run"})).is_ok());
        let r = nats(json!({"subject": "a", "timeout_ms": 0})).expect_err("timeout");
        assert_eq!(r.field, "spec.timeout_ms");
        let r = nats(json!({"subject": "a", "headers": {"X": "a\nb"}})).expect_err("header");
        assert_eq!(r.field, "spec.headers.X");
        let r = nats(json!({"subject": "a", "reply_to": "b"})).expect_err("unknown");
        assert_eq!(r.field, "spec.reply_to");
    }

    #[test]
    fn new_kinds_have_wire_names() {
        for kind in [TaskKind::Http, TaskKind::Nats] {
            let parsed: TaskKind = kind.as_str().parse().expect("round trip");
            assert_eq!(parsed, kind);
        }
    }
}
