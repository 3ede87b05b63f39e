//! The limits a submission is held to, so that whatever validation accepts
//! can be stored in Postgres and held by a NATS timer: no NUL anywhere,
//! start times within the schedule horizon, every duration and count
//! bounded. Each refusal names its field.

use proptest::prelude::*;
use serde_json::{Value, json};
use taskyard_wire::storable::find_nul;
use taskyard_wire::task::{
    Limits, MAX_DELAY_MS, MAX_EXEC_ARGS, MAX_EXEC_ENV, MAX_HEADERS, MAX_SCHEDULE_HORIZON,
    MAX_SLEEP_MS, NewTask, Parsed, Submission, read_submission, validate_task,
};
use time::format_description::well_known::Rfc3339;

fn read(value: &Value) -> Submission {
    let bytes = serde_json::to_vec(value).unwrap_or_default();
    read_submission(&bytes, &Limits::default())
}

fn accepted(value: Value) -> Vec<NewTask> {
    match read(&value).parsed {
        Parsed::Valid(tasks) => tasks,
        other => panic!("expected {value} to be accepted: {other:?}"),
    }
}

/// The refusal of `value`: `(field, message)`.
fn refusal(value: Value) -> (String, String) {
    refusal_of(&serde_json::to_vec(&value).unwrap_or_default())
}

fn refusal_of(bytes: &[u8]) -> (String, String) {
    match read_submission(bytes, &Limits::default()).parsed {
        Parsed::Invalid { rejection, .. } | Parsed::Unreadable(rejection) => {
            (rejection.field, rejection.message)
        }
        Parsed::Valid(tasks) => panic!("expected a refusal, got {tasks:?}"),
    }
}

fn field(value: Value) -> String {
    refusal(value).0
}

fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&Rfc3339).unwrap_or_default()
}

// --- NUL -----------------------------------------------------------------

#[test]
fn a_nul_in_a_top_level_string_is_named() {
    let (named, message) = refusal(json!({"kind": "noop", "idempotency_key": "k\u{0}"}));
    assert_eq!(named, "idempotency_key");
    assert!(message.contains("NUL character (U+0000)"), "{message}");
    assert!(message.contains("Postgres"), "{message}");
    // Fields whose own rules would refuse it too are named for the NUL, and
    // their messages do not echo it.
    for (key, value) in [
        ("pool", "de\u{0}"),
        ("tenant", "\u{0}"),
        ("name", "a\u{0}b"),
    ] {
        let (named, message) = refusal(json!({"kind": "noop", key: value}));
        assert_eq!(named, key);
        assert!(message.contains("NUL"), "{message}");
    }
    assert_eq!(field(json!({"kind": "no\u{0}op"})), "kind");
}

#[test]
fn a_nul_in_spec_is_named_at_any_depth() {
    assert_eq!(
        field(json!({"kind": "exec", "spec": {"command": "ls", "args": ["-l", "a", "b\u{0}"]}})),
        "spec.args[2]"
    );
    assert_eq!(
        field(json!({"kind": "echo", "spec": {"a": {"b": [1, {"c": ["x", "y\u{0}"]}]}}})),
        "spec.a.b[1].c[1]"
    );
    assert_eq!(
        field(json!({"kind": "exec", "spec": {"command": "ls", "env": {"A": "\u{0}"}}})),
        "spec.env.A"
    );
    assert_eq!(
        field(json!({"kind": "nats", "spec": {"subject": "a", "payload": {"p": "\u{0}"}}})),
        "spec.payload.p"
    );
    assert_eq!(field(json!({"kind": "echo", "spec": "\u{0}"})), "spec");
}

#[test]
fn a_nul_in_a_label_or_selector_is_named() {
    assert_eq!(
        field(json!({"kind": "noop", "labels": {"team": "da\u{0}ta"}})),
        "labels.team"
    );
    assert_eq!(
        field(json!({"kind": "noop", "node_selector": {"zone": "\u{0}"}})),
        "node_selector.zone"
    );
    assert_eq!(
        field(json!({"kind": "noop", "depends_on": ["a", "b\u{0}"]})),
        "depends_on[1]"
    );
}

#[test]
fn a_nul_in_a_key_names_its_object() {
    let (named, message) = refusal(json!({"kind": "noop", "labels": {"te\u{0}am": "x"}}));
    assert_eq!(named, "labels");
    assert!(message.contains("key"), "{message}");
    assert_eq!(
        field_of_key(json!({"kind": "echo", "spec": {"a": [{"\u{0}": 1}]}})),
        "spec.a[0]"
    );
    // A field name of the task itself: the task as a whole.
    assert_eq!(field_of_key(json!({"kind": "noop", "co\u{0}lour": 1})), "");
    assert_eq!(
        field_of_key(json!([{"kind": "noop"}, {"kind": "noop", "\u{0}": 1}])),
        "tasks[1]"
    );
}

fn field_of_key(value: Value) -> String {
    let (named, message) = refusal(value);
    assert!(message.contains("key"), "{message}");
    named
}

#[test]
fn a_nul_in_a_batch_element_is_prefixed() {
    let batch = json!([
        {"kind": "noop"},
        {"kind": "exec", "spec": {"command": "ls", "args": ["a", "b", "\u{0}"]}}
    ]);
    assert_eq!(field(batch.clone()), "tasks[1].spec.args[2]");
    // The refused batch is recorded whole, with the NUL replaced, so that
    // Postgres can store the record.
    let Parsed::Invalid { elements, .. } = read(&batch).parsed else {
        panic!("a refused batch keeps its elements");
    };
    assert_eq!(elements.len(), 2);
    assert!(elements.iter().all(|e| find_nul(e).is_none()));
    assert_eq!(elements[1]["spec"]["args"][2], "\u{FFFD}");
}

#[test]
fn a_nul_in_a_workflow_is_named_and_not_echoed() {
    let steps = json!([{"kind": "noop", "name": "a"}, {"kind": "noop", "name": "b\u{0}"}]);
    let submission = read(&json!({"workflow": "trip", "tasks": steps}));
    assert_eq!(submission.workflow.as_deref(), Some("trip"));
    let Parsed::Invalid {
        elements,
        rejection,
    } = submission.parsed
    else {
        panic!("a refused workflow keeps its steps");
    };
    assert_eq!(rejection.field, "tasks[1].name");
    assert!(elements.iter().all(|e| find_nul(e).is_none()));

    let submission = read(&json!({"workflow": "tr\u{0}ip", "tasks": [{"kind": "noop"}]}));
    assert_eq!(submission.workflow.as_deref(), Some("tr\u{FFFD}ip"));
    let Parsed::Invalid { rejection, .. } = submission.parsed else {
        panic!("refused");
    };
    assert_eq!(rejection.field, "workflow");

    // A compensation is a task too.
    assert_eq!(
        field(json!({"workflow": "w", "tasks": [
            {"kind": "noop", "compensation": {"kind": "echo", "spec": {"undo": ["\u{0}"]}}}
        ]})),
        "tasks[0].compensation.spec.undo[0]"
    );
    // Nothing to record: still refused, and named.
    assert_eq!(
        field(json!({"workflow": "w\u{0}", "tasks": "none"})),
        "workflow"
    );
}

#[test]
fn validate_task_alone_refuses_a_nul() {
    let r = validate_task(
        &json!({"kind": "echo", "spec": {"x": "\u{0}"}}),
        &Limits::default(),
    )
    .expect_err("a NUL");
    assert_eq!(r.field, "spec.x");
}

#[test]
fn unicode_other_than_nul_is_accepted() {
    // Postgres stores any other character; U+FFFD, U+2028 and astral
    // characters included.
    let tasks = accepted(json!({
        "kind": "echo",
        "spec": {"text": "\u{1}\u{FFFD}\u{2028}😀", "\u{7f}": true},
        "labels": {"emoji": "🦀"}
    }));
    assert_eq!(tasks[0].labels["emoji"], "🦀");
}

// --- What serde_json refuses ----------------------------------------------

#[test]
fn a_lone_surrogate_is_unreadable_not_a_panic() {
    for bytes in [
        &br#"{"kind": "echo", "spec": "\ud800"}"#[..],
        br#"{"kind": "echo", "spec": "\udc00"}"#,
        br#"{"kind": "echo", "spec": {"\ud800x": 1}}"#,
        br#"{"kind": "echo", "spec": "\ud800\u0041"}"#,
    ] {
        match read_submission(bytes, &Limits::default()).parsed {
            Parsed::Unreadable(r) => {
                assert_eq!(r.field, "");
                assert!(r.message.starts_with("not valid JSON"), "{}", r.message);
                assert!(r.message.contains("surrogate"), "{}", r.message);
            }
            other => panic!("{other:?}"),
        }
    }
    // A pair is one character, and welcome.
    accepted(
        serde_json::from_str(r#"{"kind": "echo", "spec": "\ud83d\ude00"}"#).unwrap_or_default(),
    );
}

#[test]
fn nesting_past_the_recursion_limit_is_unreadable() {
    let depth = 200;
    let text = format!(
        r#"{{"kind": "echo", "spec": {}{}}}"#,
        "[".repeat(depth),
        "]".repeat(depth)
    );
    let (named, message) = refusal_of(text.as_bytes());
    assert_eq!(named, "");
    assert!(message.starts_with("not valid JSON"), "{message}");
    assert!(message.contains("recursion limit"), "{message}");
    // Within the limit it is an ordinary spec.
    let text = format!(
        r#"{{"kind": "echo", "spec": {}{}}}"#,
        "[".repeat(100),
        "]".repeat(100)
    );
    let read = read_submission(text.as_bytes(), &Limits::default());
    assert!(matches!(read.parsed, Parsed::Valid(_)), "{:?}", read.parsed);
}

#[test]
fn numbers_out_of_range_name_their_field() {
    let (named, message) = refusal(json!({"kind": "noop", "priority": 2_147_483_648_u64}));
    assert_eq!(named, "priority");
    assert!(message.contains("i32"), "{message}");
    assert_eq!(
        field(json!({"kind": "noop", "priority": -2_147_483_649_i64})),
        "priority"
    );
    assert_eq!(
        field(json!({"kind": "noop", "resources": {"cpu_millis": 4_294_967_296_u64}})),
        "resources.cpu_millis"
    );
    assert_eq!(
        field(json!({"kind": "noop", "timeout_ms": -1})),
        "timeout_ms"
    );
    assert_eq!(
        field(json!({"kind": "noop", "max_attempts": 1.5})),
        "max_attempts"
    );
    // Beyond u64, serde_json reads a float: the wrong type, named.
    let (named, message) = refusal_of(br#"{"kind": "noop", "delay_ms": 18446744073709551616}"#);
    assert_eq!(named, "delay_ms");
    assert!(message.contains("floating point"), "{message}");
    // Beyond f64, it is not JSON it can read.
    let (named, message) = refusal_of(br#"{"kind": "echo", "spec": 1e400}"#);
    assert_eq!(named, "");
    assert!(message.contains("number out of range"), "{message}");
}

// --- Times -----------------------------------------------------------------

#[test]
fn run_at_beyond_the_horizon_is_refused() {
    for at in [
        "9999-12-31T23:59:59Z",
        // In UTC this is year 10000, which `time` cannot represent: compared
        // without converting, refused without a panic.
        "9999-12-31T23:59:59-23:59",
    ] {
        let (named, message) = refusal(json!({"kind": "noop", "run_at": at}));
        assert_eq!(named, "run_at", "{at}");
        assert!(message.contains("3650 days"), "{message}");
    }
    let later = time::OffsetDateTime::now_utc() + MAX_SCHEDULE_HORIZON + time::Duration::DAY;
    assert_eq!(
        field(json!({"kind": "noop", "run_at": rfc3339(later)})),
        "run_at"
    );
}

#[test]
fn run_at_inside_the_horizon_or_past_is_accepted() {
    let inside = time::OffsetDateTime::now_utc() + MAX_SCHEDULE_HORIZON - time::Duration::DAY;
    let tasks = accepted(json!({"kind": "noop", "run_at": rfc3339(inside)}));
    assert!(tasks[0].run_at.is_some());
    // A time in the past means now, as before, however far back.
    for at in [
        "2020-01-01T00:00:00Z",
        "0001-01-01T00:00:00Z",
        "0000-01-01T00:00:00+23:59",
    ] {
        accepted(json!({"kind": "noop", "run_at": at}));
    }
}

#[test]
fn delay_ms_is_bounded_by_the_horizon() {
    let (named, message) = refusal(json!({"kind": "noop", "delay_ms": MAX_DELAY_MS + 1}));
    assert_eq!(named, "delay_ms");
    assert!(message.contains("3650 days"), "{message}");
    let tasks = accepted(json!({"kind": "noop", "delay_ms": MAX_DELAY_MS}));
    assert_eq!(tasks[0].delay_ms, Some(MAX_DELAY_MS));
    assert_eq!(MAX_DELAY_MS, 315_360_000_000);
}

// --- Durations and counts --------------------------------------------------

#[test]
fn a_sleep_is_bounded() {
    let (named, message) = refusal(json!({"kind": "sleep", "spec": {"ms": MAX_SLEEP_MS + 1}}));
    assert_eq!(named, "spec.ms");
    assert!(message.contains(&MAX_SLEEP_MS.to_string()), "{message}");
    accepted(json!({"kind": "sleep", "spec": {"ms": MAX_SLEEP_MS}}));
}

#[test]
fn exec_arguments_and_environment_are_bounded() {
    let args = vec!["a"; MAX_EXEC_ARGS + 1];
    assert_eq!(
        field(json!({"kind": "exec", "spec": {"command": "true", "args": args}})),
        "spec.args"
    );
    let env: serde_json::Map<String, Value> = (0..=MAX_EXEC_ENV)
        .map(|i| (format!("V{i}"), json!("1")))
        .collect();
    assert_eq!(
        field(json!({"kind": "exec", "spec": {"command": "true", "env": env}})),
        "spec.env"
    );
    assert_eq!(
        field(json!({"kind": "exec", "spec": {"command": "true", "env": {"A=B": "1"}}})),
        "spec.env.A=B"
    );
    assert_eq!(
        field(json!({"kind": "exec", "spec": {"command": "true", "env": {"": "1"}}})),
        "spec.env"
    );
}

#[test]
fn headers_are_bounded() {
    let headers: serde_json::Map<String, Value> = (0..=MAX_HEADERS)
        .map(|i| (format!("X-{i}"), json!("1")))
        .collect();
    assert_eq!(
        field(json!({"kind": "http", "spec": {"url": "http://a/", "headers": headers}})),
        "spec.headers"
    );
    assert_eq!(
        field(json!({"kind": "nats", "spec": {"subject": "a", "headers": headers}})),
        "spec.headers"
    );
}

#[test]
fn every_duration_is_bounded() {
    let week = 7 * 24 * 3600 * 1000_u64;
    for key in [
        "timeout_ms",
        "retry_backoff_ms",
        "retry_backoff_max_ms",
        "schedule_timeout_ms",
        "estimated_runtime_ms",
    ] {
        assert_eq!(field(json!({"kind": "noop", key: week + 1})), key);
        accepted(json!({"kind": "noop", key: week}));
    }
    for (kind, spec) in [
        ("http", json!({"url": "http://a/", "timeout_ms": week + 1})),
        ("nats", json!({"subject": "a", "timeout_ms": week + 1})),
    ] {
        assert_eq!(
            field(json!({"kind": kind, "spec": spec})),
            "spec.timeout_ms"
        );
    }
}

/// One task at the edge of every limit at once.
#[test]
fn a_task_just_inside_every_limit_is_accepted() {
    let labels: serde_json::Map<String, Value> =
        (0..64).map(|i| (format!("l{i}"), json!("v"))).collect();
    let env: serde_json::Map<String, Value> = (0..MAX_EXEC_ENV)
        .map(|i| (format!("V{i}"), json!("1")))
        .collect();
    let inside = time::OffsetDateTime::now_utc() + MAX_SCHEDULE_HORIZON - time::Duration::HOUR;
    let week = 7 * 24 * 3600 * 1000_u64;
    let tasks = accepted(json!({
        "idempotency_key": "k".repeat(256),
        "pool": "p".repeat(64),
        "tenant": "t".repeat(64),
        "kind": "exec",
        "spec": {
            "command": "true",
            "args": vec!["a"; MAX_EXEC_ARGS],
            "env": env,
            "stdin": "\u{FFFD}"
        },
        "resources": {"cpu_millis": 1_024_000, "memory_mb": 16 * 1024 * 1024},
        "priority": i32::MIN,
        "timeout_ms": week,
        "max_attempts": 100,
        "labels": labels,
        "node_selector": labels,
        "estimated_runtime_ms": week,
        "retry_backoff_ms": week,
        "retry_backoff_max_ms": week,
        "run_at": rfc3339(inside),
        "schedule_timeout_ms": week,
        "name": "n".repeat(64),
        "depends_on": vec!["0190b6a2-0000-7000-8000-000000000001"; 256]
    }));
    assert_eq!(tasks[0].priority, i32::MIN);
    accepted(json!({"kind": "noop", "priority": i32::MAX, "delay_ms": MAX_DELAY_MS}));
}

// --- Properties --------------------------------------------------------------

/// Strings that exercise the checks: task-like words, NUL, times.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => "[a-z]{1,8}",
        4 => prop::sample::select(vec![
            "noop", "echo", "exec", "sleep", "http", "nats", "fail", "default", "a", "ls",
            "http://a/", "billing.run", "2026-01-01T00:00:00Z", "9999-12-31T23:59:59Z",
            "0000-01-01T00:00:00+23:59", "9999-12-31T23:59:59-23:59",
        ])
        .prop_map(str::to_owned),
        2 => "[a-z\u{0}\u{FFFD}=.]{0,6}",
        1 => any::<String>(),
    ]
}

/// Keys: mostly the fields of a task and its specs.
fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        6 => prop::sample::select(vec![
            "kind", "spec", "pool", "tenant", "labels", "node_selector", "name", "run_at",
            "delay_ms", "timeout_ms", "priority", "idempotency_key", "depends_on",
            "compensation", "command", "args", "env", "ms", "url", "subject", "headers",
            "payload", "workflow", "tasks", "max_attempts", "schedule_timeout_ms",
        ])
        .prop_map(str::to_owned),
        1 => "[a-z\u{0}]{1,3}",
    ]
}

fn number() -> impl Strategy<Value = Value> {
    prop_oneof![
        8 => (0..=MAX_DELAY_MS + 1000).prop_map(Value::from),
        4 => any::<i32>().prop_map(Value::from),
        1 => Just(json!(0)),
        1 => Just(json!(1)),
        1 => Just(json!(MAX_DELAY_MS)),
        1 => Just(json!(MAX_DELAY_MS + 1)),
        1 => Just(json!(u64::MAX)),
        1 => Just(json!(i64::MIN)),
        1 => any::<i64>().prop_map(Value::from),
        1 => any::<f64>().prop_map(Value::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        number(),
        text().prop_map(Value::String),
    ];
    leaf.prop_recursive(5, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..4).prop_map(Value::Array),
            prop::collection::btree_map(key(), inner, 0..6)
                .prop_map(|map| Value::Object(map.into_iter().collect())),
        ]
    })
}

/// Start times around now and the horizon, and a few fixed oddities.
fn start_time() -> impl Strategy<Value = String> {
    prop_oneof![
        3 => (-5000_i64..5000).prop_map(|days| {
            rfc3339(time::OffsetDateTime::now_utc() + time::Duration::days(days))
        }),
        1 => text(),
    ]
}

/// A kind and a spec of roughly its shape.
fn kind_and_spec() -> impl Strategy<Value = (String, Value)> {
    let strings = || prop::collection::vec(text(), 0..3);
    let env = || prop::collection::btree_map(text(), text(), 0..3);
    prop_oneof![
        Just(("noop".to_owned(), Value::Null)),
        json_value().prop_map(|spec| ("echo".to_owned(), spec)),
        number().prop_map(|ms| ("sleep".to_owned(), json!({"ms": ms}))),
        (text(), strings(), env()).prop_map(|(command, args, env)| {
            (
                "exec".to_owned(),
                json!({"command": command, "args": args, "env": env}),
            )
        }),
        (text(), json_value()).prop_map(|(subject, payload)| (
            "nats".to_owned(),
            json!({"subject": subject, "payload": payload})
        )),
    ]
}

/// A task that is often valid: a kind with a spec of its shape, a few
/// fields of their types, now and then a field of any value.
fn task_like() -> impl Strategy<Value = Value> {
    // Each field now and then, so that many tasks are valid as a whole.
    let labels = || prop::option::weighted(0.3, prop::collection::btree_map(text(), text(), 0..3));
    (
        kind_and_spec(),
        (
            prop::option::weighted(0.3, text()),
            prop::option::weighted(0.3, text()),
            prop::option::weighted(0.5, start_time()),
            prop::option::weighted(0.3, number()),
            prop::option::weighted(0.3, number()),
        ),
        (labels(), labels()),
        prop::collection::btree_map(key(), json_value(), 0..2)
            .prop_filter_map("one field of any value, at most", |extra| {
                (extra.len() < 2).then_some(extra)
            }),
    )
        .prop_map(
            |((kind, spec), (name, key, run_at, delay, priority), (labels, selector), extra)| {
                let mut task: serde_json::Map<String, Value> = extra.into_iter().collect();
                task.insert("kind".to_owned(), json!(kind));
                task.insert("spec".to_owned(), spec);
                let fields = [
                    ("name", name.map(Value::from)),
                    ("idempotency_key", key.map(Value::from)),
                    ("run_at", run_at.map(Value::from)),
                    ("delay_ms", delay),
                    ("priority", priority),
                    ("labels", labels.map(|l| json!(l))),
                    ("node_selector", selector.map(|l| json!(l))),
                ];
                for (field, value) in fields {
                    if let Some(value) = value {
                        task.insert(field.to_owned(), value);
                    }
                }
                Value::Object(task)
            },
        )
}

fn submission() -> impl Strategy<Value = Value> {
    prop_oneof![
        2 => task_like(),
        1 => prop::collection::vec(task_like(), 1..4).prop_map(Value::Array),
        1 => (text(), prop::collection::vec(task_like(), 1..3))
            .prop_map(|(name, tasks)| json!({"workflow": name, "tasks": tasks})),
        1 => json_value(),
    ]
}

/// Every string of an accepted task, for the no-NUL property.
fn task_has_nul(task: &NewTask) -> bool {
    let nul = |text: &str| text.contains('\0');
    task.idempotency_key.as_deref().is_some_and(nul)
        || nul(&task.pool)
        || nul(&task.tenant)
        || task.name.as_deref().is_some_and(nul)
        || task.depends_on.iter().any(|d| nul(d))
        || task.labels.iter().any(|(k, v)| nul(k) || nul(v))
        || task.node_selector.iter().any(|(k, v)| nul(k) || nul(v))
        || find_nul(&task.spec).is_some()
        || task
            .compensation
            .as_ref()
            .is_some_and(|c| find_nul(c).is_some())
}

fn check(value: &Value) -> Result<(), TestCaseError> {
    let submission = read(value);
    if let Some(name) = &submission.workflow {
        prop_assert!(!name.contains('\0'), "workflow name {name:?}");
    }
    match submission.parsed {
        Parsed::Valid(tasks) => {
            let latest = time::OffsetDateTime::now_utc() + MAX_SCHEDULE_HORIZON;
            for task in &tasks {
                prop_assert!(!task_has_nul(task), "{task:?}");
                prop_assert!(task.run_at.is_none_or(|at| at <= latest), "{task:?}");
                prop_assert!(task.delay_ms.is_none_or(|ms| ms <= MAX_DELAY_MS));
            }
        }
        Parsed::Invalid {
            elements,
            rejection,
        } => {
            // What the orchestrator records of a refusal is storable too.
            prop_assert!(elements.iter().all(|e| find_nul(e).is_none()));
            prop_assert!(!rejection.to_string().contains('\0'), "{rejection}");
        }
        Parsed::Unreadable(rejection) => {
            prop_assert!(!rejection.to_string().contains('\0'), "{rejection}");
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn validation_never_panics_and_accepts_only_storable_tasks(value in submission()) {
        check(&value)?;
    }

    #[test]
    fn accepted_tasks_are_storable(task in task_like()) {
        check(&task)?;
    }

    /// The horizon is exact: a start is accepted if and only if it is
    /// within 3650 days (cases within a minute of the edge are left out, as
    /// the clock moves while the test runs).
    #[test]
    fn run_at_is_accepted_exactly_within_the_horizon(seconds in -400_000_000_i64..400_000_000) {
        let now = time::OffsetDateTime::now_utc();
        let at = now + time::Duration::seconds(seconds);
        let edge = (at - (now + MAX_SCHEDULE_HORIZON)).whole_seconds();
        prop_assume!(edge.abs() > 60);
        let read = read(&json!({"kind": "noop", "run_at": rfc3339(at)}));
        prop_assert_eq!(matches!(read.parsed, Parsed::Valid(_)), edge < 0, "{}", seconds);
    }

    #[test]
    fn delay_ms_is_accepted_exactly_up_to_its_maximum(ms in 0..=2 * MAX_DELAY_MS) {
        let read = read(&json!({"kind": "noop", "delay_ms": ms}));
        prop_assert_eq!(matches!(read.parsed, Parsed::Valid(_)), ms <= MAX_DELAY_MS);
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = read_submission(&bytes, &Limits::default());
    }
}
