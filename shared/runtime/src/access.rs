//! Who may do what on the bus: the kinds of NATS identity, the subjects each
//! may publish and subscribe to, and the nats-server authorization config
//! that enforces them.
//!
//! Two accounts split the bus. `TASKYARD` holds the streams and every
//! process of the cluster: the services and the workers, each with its own
//! nkey and no more rights than its part needs. `CLIENTS` holds the
//! programs that submit and the operators; they reach the services only
//! through imports of `TASKYARD`'s request subjects, with `share` on, so
//! every request they make arrives carrying the server's own
//! `Nats-Request-Info` header naming the nkey that sent it: the services
//! know who asked without trusting anything the client says. `CLIENTS` has
//! no JetStream, so no client can touch a stream or consumer.
//!
//! The table in `nats/README.md` is this module written out; a test keeps
//! the two in step.

use crate::streams;
use serde::{Deserialize, Serialize};
use taskyard_wire::subjects;

/// Counter of messages dropped because their body speaks for another node
/// than the one whose subject they came on (see
/// `taskyard_wire::subjects::speaks_for`), by `kind`: `status` and `logs`
/// (pool manager), `heartbeat` (resource manager).
pub const METRIC_WRONG_NODE: &str = "taskyard_wrong_node_messages_total";

/// The account of the services, the workers and the streams.
pub const CLUSTER_ACCOUNT: &str = "TASKYARD";
/// The account of submitting programs and operators.
pub const CLIENTS_ACCOUNT: &str = "CLIENTS";

/// The services of the control plane, each with its own identity.
pub const SERVICES: [&str; 5] = [
    "orchestrator",
    "scheduler",
    "pool-manager",
    "resource-manager",
    "api",
];

/// What an identity is, which decides what it may do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Kind {
    /// One control-plane service (replicas of it may share the identity).
    Service { service: String },
    /// One worker node: it speaks for that node alone. `task_subjects` are
    /// the subjects its `nats` tasks may send requests to.
    Worker {
        node: String,
        #[serde(default)]
        task_subjects: Vec<String>,
    },
    /// A program that submits tasks, and nothing else.
    Submitter,
    /// A person or tool that runs the cluster: submit, cancel, pools, nodes.
    Operator,
    /// Everything, in the cluster's account: for break-glass work on the
    /// streams, and for test harnesses.
    Admin,
}

/// Why a kind could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KindError {
    #[error("`{0}` is not a kind of credential: use service, worker, submitter, operator or admin")]
    Unknown(String),
    #[error("`{0}` is not a Taskyard service: use one of {services}", services = SERVICES.join(", "))]
    UnknownService(String),
    #[error("a {0} credential needs {1}")]
    Missing(&'static str, &'static str),
    #[error(
        "`{0}` cannot be a node id in a subject: use letters, digits, `-` and `_` (no dots, \
         spaces or wildcards)"
    )]
    BadNode(String),
    #[error("`{0}` is not a subject a task may be sent to: {1}")]
    BadTaskSubject(String, &'static str),
}

impl Kind {
    /// The kind named `kind` (`service`, `worker`, ...), with the service
    /// or node it is for and, for a worker, its tasks' subjects.
    pub fn parse(
        kind: &str,
        scope: Option<&str>,
        task_subjects: &[String],
    ) -> Result<Kind, KindError> {
        match kind {
            "service" => {
                let service = scope.ok_or(KindError::Missing("service", "a service name"))?;
                if !SERVICES.contains(&service) {
                    return Err(KindError::UnknownService(service.to_owned()));
                }
                Ok(Kind::Service {
                    service: service.to_owned(),
                })
            }
            "worker" => {
                let node = scope.ok_or(KindError::Missing("worker", "a node id"))?;
                if !subjects::is_token(node) {
                    return Err(KindError::BadNode(node.to_owned()));
                }
                for subject in task_subjects {
                    check_task_subject(subject)?;
                }
                Ok(Kind::Worker {
                    node: node.to_owned(),
                    task_subjects: task_subjects.to_vec(),
                })
            }
            "submitter" => Ok(Kind::Submitter),
            "operator" => Ok(Kind::Operator),
            "admin" => Ok(Kind::Admin),
            other => Err(KindError::Unknown(other.to_owned())),
        }
    }

    /// `service`, `worker`, `submitter`, `operator` or `admin`.
    pub fn name(&self) -> &'static str {
        match self {
            Kind::Service { .. } => "service",
            Kind::Worker { .. } => "worker",
            Kind::Submitter => "submitter",
            Kind::Operator => "operator",
            Kind::Admin => "admin",
        }
    }

    /// The service or node this identity is for.
    pub fn scope(&self) -> Option<&str> {
        match self {
            Kind::Service { service } => Some(service),
            Kind::Worker { node, .. } => Some(node),
            _ => None,
        }
    }

    /// The account it lives in.
    pub fn account(&self) -> &'static str {
        match self {
            Kind::Submitter | Kind::Operator => CLIENTS_ACCOUNT,
            _ => CLUSTER_ACCOUNT,
        }
    }

    /// The inbox prefix its client must use: a worker's replies and
    /// acknowledgements come to inboxes only it may read.
    pub fn inbox_prefix(&self) -> Option<String> {
        match self {
            Kind::Worker { node, .. } => Some(worker_inbox_prefix(node)),
            _ => None,
        }
    }
}

/// The name of worker `node`'s credential wherever Taskyard issues one
/// itself (`taskyard up --secure`, the test kit).
pub fn worker_identity(node: &str) -> String {
    format!("worker-{node}")
}

/// The inbox prefix of worker `node` (the worker sets it on its connection).
pub fn worker_inbox_prefix(node: &str) -> String {
    format!("_INBOX.{node}")
}

/// A task's `nats` request may go to any subject outside Taskyard's own and
/// the server's (`$...`, `_INBOX...`): a worker must not become a way round
/// its own permissions.
fn check_task_subject(subject: &str) -> Result<(), KindError> {
    let bad = |why| Err(KindError::BadTaskSubject(subject.to_owned(), why));
    if subject.is_empty() || subject.split('.').any(str::is_empty) {
        return bad("it has an empty token");
    }
    let first = subject.split('.').next().unwrap_or_default();
    if first == "taskyard" || first == "*" || first == ">" {
        return bad("it would cover Taskyard's own subjects");
    }
    if first.starts_with('$') || first.starts_with("_INBOX") {
        return bad("it is one of the server's subjects");
    }
    Ok(())
}

/// What an identity may publish and subscribe to.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Permissions {
    pub publish: Vec<String>,
    pub subscribe: Vec<String>,
    /// May answer the requests it receives (on their reply subjects).
    pub responds: bool,
}

/// A durable consumer a service reads: its stream and name.
struct Owned(&'static str, &'static str);

/// The consumers each service owns, as `streams` declares them.
fn owned_consumers(service: &str) -> Vec<Owned> {
    use streams::*;
    match service {
        "orchestrator" => vec![
            Owned(SUBMIT, ORCHESTRATOR),
            Owned(EVENTS, ORCHESTRATOR_EVENTS),
        ],
        "scheduler" => vec![Owned(EVENTS, SCHEDULER)],
        "pool-manager" => vec![
            Owned(STATUS, POOL_MANAGER),
            Owned(TIMERS, POOL_MANAGER_TIMERS),
            Owned(EVENTS, POOL_MANAGER_NODES),
            Owned(LOGS, POOL_MANAGER_LOGS),
            Owned(ADVISORIES, POOL_MANAGER_DEAD_LETTERS),
        ],
        _ => Vec::new(),
    }
}

/// Every stream Taskyard declares.
pub const STREAMS: [&str; 7] = [
    streams::SUBMIT,
    streams::EVENTS,
    streams::DISPATCH,
    streams::STATUS,
    streams::LOGS,
    streams::TIMERS,
    streams::ADVISORIES,
];

fn consumer_api(stream: &str, consumer: &str) -> Vec<String> {
    vec![
        format!("$JS.API.CONSUMER.CREATE.{stream}.{consumer}"),
        format!("$JS.API.CONSUMER.CREATE.{stream}.{consumer}.>"),
        format!("$JS.API.CONSUMER.INFO.{stream}.{consumer}"),
        format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
        format!("$JS.ACK.{stream}.{consumer}.>"),
    ]
}

/// What every service does: declare the streams, answer discovery and its
/// role endpoint, read its own inboxes.
fn service_common(service: &str) -> Permissions {
    let mut publish = vec!["$JS.API.INFO".to_owned()];
    for stream in STREAMS {
        for action in ["CREATE", "UPDATE", "INFO"] {
            publish.push(format!("$JS.API.STREAM.{action}.{stream}"));
        }
    }
    for Owned(stream, consumer) in owned_consumers(service) {
        publish.extend(consumer_api(stream, consumer));
    }
    Permissions {
        publish,
        subscribe: vec![
            "_INBOX.>".to_owned(),
            "$SRV.>".to_owned(),
            format!("taskyard.role.{service}.>"),
        ],
        responds: true,
    }
}

fn strings(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| (*s).to_owned()).collect()
}

/// What `kind` may do.
pub fn permissions(kind: &Kind) -> Permissions {
    match kind {
        Kind::Service { service } => {
            let mut p = service_common(service);
            let (publish, subscribe): (&[&str], &[&str]) = match service.as_str() {
                "orchestrator" => (
                    &["taskyard.events.task.>", "taskyard.timers.sched.>"],
                    &[subjects::API_SUBMIT, "taskyard.events.>"],
                ),
                "scheduler" => (
                    &[
                        "taskyard.dispatch.>",
                        "taskyard.events.task.>",
                        "taskyard.timers.sched.>",
                    ],
                    &[],
                ),
                "pool-manager" => (
                    &[
                        "taskyard.events.task.>",
                        "taskyard.events.pool.>",
                        "taskyard.timers.sched.>",
                        "taskyard.control.>",
                    ],
                    &["taskyard.api.pools.>", "taskyard.api.tasks.>"],
                ),
                "resource-manager" => (
                    &["taskyard.events.node.>", "taskyard.control.>"],
                    &["taskyard.nodes.heartbeat.>", "taskyard.api.nodes.>"],
                ),
                "api" => (
                    &[
                        "taskyard.api.>",
                        "taskyard.role.>",
                        "$SRV.>",
                        subjects::SUBMIT,
                        subjects::SUBMIT_WILDCARD,
                    ],
                    &["taskyard.events.>"],
                ),
                _ => (&[], &[]),
            };
            p.publish.extend(strings(publish));
            p.subscribe.extend(strings(subscribe));
            if service == "pool-manager" {
                // Dead letters: the pool manager reads the message a consumer
                // gave up on and deletes it from its work queue.
                for stream in STREAMS {
                    p.publish.push(format!("$JS.API.STREAM.MSG.GET.{stream}"));
                    p.publish
                        .push(format!("$JS.API.STREAM.MSG.DELETE.{stream}"));
                }
            }
            p
        }
        Kind::Worker {
            node,
            task_subjects,
        } => {
            let stream = streams::DISPATCH;
            let consumer = streams::worker_consumer(node);
            let inbox = worker_inbox_prefix(node);
            let mut publish = vec![
                "$JS.API.INFO".to_owned(),
                format!("$JS.API.STREAM.INFO.{stream}"),
                // Only with its own filter: the server checks that the
                // subject's filter is the consumer's.
                format!(
                    "$JS.API.CONSUMER.CREATE.{stream}.{consumer}.{}",
                    subjects::dispatch(node)
                ),
                format!("$JS.API.CONSUMER.INFO.{stream}.{consumer}"),
                format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
                format!("$JS.ACK.{stream}.{consumer}.>"),
                subjects::status(node),
                subjects::logs(node),
                subjects::heartbeat(node),
                // The echo that proves a heartbeat reached the server.
                format!("{inbox}.>"),
            ];
            publish.extend(task_subjects.iter().cloned());
            Permissions {
                publish,
                subscribe: vec![
                    format!("{inbox}.>"),
                    subjects::control(node),
                    "$SRV.*".to_owned(),
                    "$SRV.*.taskyard-worker".to_owned(),
                    "$SRV.*.taskyard-worker.>".to_owned(),
                    "taskyard.role.worker.>".to_owned(),
                ],
                responds: true,
            }
        }
        Kind::Submitter => Permissions {
            publish: strings(&[
                subjects::SUBMIT,
                subjects::SUBMIT_WILDCARD,
                subjects::API_SUBMIT,
            ]),
            subscribe: strings(&["_INBOX.>", subjects::TASK_EVENTS_ALL]),
            responds: false,
        },
        Kind::Operator => Permissions {
            publish: strings(&[
                subjects::SUBMIT,
                subjects::SUBMIT_WILDCARD,
                "taskyard.api.>",
                "taskyard.role.>",
                "$SRV.>",
            ]),
            subscribe: strings(&["_INBOX.>", "taskyard.events.>"]),
            responds: false,
        },
        Kind::Admin => Permissions {
            publish: strings(&[">"]),
            subscribe: strings(&[">"]),
            responds: true,
        },
    }
}

/// The table of `nats/README.md`: every kind of identity with the subjects
/// it may publish and subscribe to (a worker's for a node named `NODE`).
pub fn permission_table() -> String {
    let mut kinds: Vec<Kind> = SERVICES
        .iter()
        .map(|service| Kind::Service {
            service: (*service).to_owned(),
        })
        .collect();
    kinds.extend([
        Kind::Worker {
            node: "NODE".to_owned(),
            task_subjects: Vec::new(),
        },
        Kind::Submitter,
        Kind::Operator,
        Kind::Admin,
    ]);
    let code = |subjects: &[String]| -> String {
        subjects
            .iter()
            .map(|s| format!("`{s}`"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    let mut table = String::from(
        "| identity | account | may publish (and request) | may subscribe | answers requests |\n\
         | --- | --- | --- | --- | --- |\n",
    );
    for kind in kinds {
        let p = permissions(&kind);
        let who = match kind.scope() {
            Some(scope) => format!("{} `{scope}`", kind.name()),
            None => kind.name().to_owned(),
        };
        table.push_str(&format!(
            "| {who} | {} | {} | {} | {} |\n",
            kind.account(),
            code(&p.publish),
            code(&p.subscribe),
            if p.responds { "yes" } else { "no" },
        ));
    }
    table
}

/// One identity the server knows: its name (for people), kind and nkey.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub name: String,
    pub kind: Kind,
    /// The nkey's public half (`U...`).
    pub public_key: String,
}

/// A new identity: its row and the seed, which only its holder keeps.
pub struct NewIdentity {
    pub identity: Identity,
    pub seed: String,
}

impl std::fmt::Debug for NewIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewIdentity")
            .field("identity", &self.identity)
            .finish_non_exhaustive()
    }
}

/// Why an nkey could not be made.
#[derive(Debug, thiserror::Error)]
#[error("cannot make an nkey: {0}")]
pub struct NkeyError(String);

/// A fresh user nkey for `name`.
pub fn generate(name: &str, kind: Kind) -> Result<NewIdentity, NkeyError> {
    let pair = nkeys::KeyPair::new_user();
    let seed = pair.seed().map_err(|err| NkeyError(err.to_string()))?;
    Ok(NewIdentity {
        identity: Identity {
            name: name.to_owned(),
            kind,
            public_key: pair.public_key(),
        },
        seed,
    })
}

/// The subjects `CLIENTS` reaches in `TASKYARD`: requests (shared, so
/// they carry who asked) and the events it may follow.
const CLIENT_SERVICES: [&str; 5] = [
    subjects::SUBMIT,
    subjects::SUBMIT_WILDCARD,
    "taskyard.api.>",
    "taskyard.role.>",
    "$SRV.>",
];

fn json(value: &str) -> String {
    serde_json::Value::String(value.to_owned()).to_string()
}

fn list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|s| json(s)).collect();
    format!("[{}]", quoted.join(", "))
}

fn render_user(identity: &Identity) -> String {
    let p = permissions(&identity.kind);
    let responses = if p.responds {
        ", allow_responses: true"
    } else {
        ""
    };
    format!(
        "      # {name} ({kind}{scope})\n      {{ nkey: {key}, permissions: {{ publish: {{ allow: {publish} }}, subscribe: {{ allow: {subscribe} }}{responses} }} }}\n",
        name = identity.name.replace('\n', " "),
        kind = identity.kind.name(),
        scope = identity
            .kind
            .scope()
            .map(|s| format!(" {s}"))
            .unwrap_or_default(),
        key = json(&identity.public_key),
        publish = list(&p.publish),
        subscribe = list(&p.subscribe),
    )
}

/// The `accounts` block of a nats-server config that admits exactly
/// `identities`, each with its permissions. Include it from the server's
/// config (`include auth.conf`); after a change, reload the server
/// (`nats-server --signal reload`, or SIGHUP) and a removed identity is
/// refused from its next connect on.
pub fn render_accounts(identities: &[Identity]) -> String {
    let users = |account: &str| -> String {
        identities
            .iter()
            .filter(|i| i.kind.account() == account)
            .map(render_user)
            .collect()
    };
    let exports: String = CLIENT_SERVICES
        .iter()
        .map(|subject| {
            let stream = if subject.starts_with("$SRV") {
                ", response_type: stream"
            } else {
                ""
            };
            format!("      {{ service: {}{stream} }}\n", json(subject))
        })
        .chain(std::iter::once(format!(
            "      {{ stream: {} }}\n",
            json("taskyard.events.>")
        )))
        .collect();
    let imports: String = CLIENT_SERVICES
        .iter()
        .map(|subject| {
            format!(
                "      {{ service: {{ account: {CLUSTER_ACCOUNT}, subject: {} }}, share: true }}\n",
                json(subject)
            )
        })
        .chain(std::iter::once(format!(
            "      {{ stream: {{ account: {CLUSTER_ACCOUNT}, subject: {} }} }}\n",
            json("taskyard.events.>")
        )))
        .collect();
    format!(
        "# Generated by `taskyard creds`: who may connect to NATS and what each may do.\n\
         # Edits are overwritten; change credentials with `taskyard creds`.\n\
         accounts {{\n  {CLUSTER_ACCOUNT} {{\n    jetstream: enabled\n    users: [\n{cluster}    ]\n    exports: [\n{exports}    ]\n  }}\n  \
         {CLIENTS_ACCOUNT} {{\n    users: [\n{clients}    ]\n    imports: [\n{imports}    ]\n  }}\n}}\n",
        cluster = users(CLUSTER_ACCOUNT),
        clients = users(CLIENTS_ACCOUNT),
    )
}

/// Who sent a request, as the server says in `Nats-Request-Info` (set on
/// every request that crossed from `CLIENTS`; a client cannot forge it).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct RequestInfo {
    /// The account the request came from.
    #[serde(rename = "acc")]
    pub account: String,
    /// The sender's nkey (public half).
    #[serde(default)]
    pub user: Option<String>,
}

/// The header nats-server sets on a request that crossed accounts.
pub const REQUEST_INFO_HEADER: &str = "Nats-Request-Info";

/// The sender of a request with `headers`, when it came from `CLIENTS`.
pub fn request_info(headers: Option<&async_nats::HeaderMap>) -> Option<RequestInfo> {
    let value = headers?.get(REQUEST_INFO_HEADER)?;
    serde_json::from_str(value.as_str()).ok()
}

/// Who sent a request with `headers` whose body claims `requested_by`: the
/// sender the server names when it crossed from `CLIENTS` (the claim is
/// then ignored: a client speaks for itself only), else the claim of a
/// sender inside `TASKYARD` (the api service, for its caller).
pub fn requester(
    headers: Option<&async_nats::HeaderMap>,
    requested_by: Option<&str>,
) -> taskyard_wire::actor::Requester {
    use taskyard_wire::actor::{Crossed, Requester};
    let crossed = headers
        .and_then(|headers| headers.get(REQUEST_INFO_HEADER))
        .map(|_| match request_info(headers) {
            Some(info) => Crossed {
                account: info.account,
                public_key: info.user,
            },
            // The server wrote it, so this does not happen; if it did, the
            // request still came from outside and its claim is not believed.
            None => Crossed {
                account: CLIENTS_ACCOUNT.to_owned(),
                public_key: None,
            },
        });
    Requester::judge(crossed, requested_by)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_readme_table_is_this_module_written_out() {
        let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../../nats/README.md");
        let readme = std::fs::read_to_string(path).expect("nats/README.md");
        let (start, end) = ("<!-- permissions: begin -->\n", "<!-- permissions: end -->");
        let (before, rest) = readme
            .split_once(start)
            .expect("nats/README.md has the permissions markers");
        let (table, after) = rest.split_once(end).expect("and the end marker");
        if table != permission_table() && std::env::var_os("TASKYARD_BLESS").is_some() {
            let fresh = format!("{before}{start}{}{end}{after}", permission_table());
            std::fs::write(path, fresh).expect("rewriting nats/README.md");
            return;
        }
        assert_eq!(
            table,
            permission_table(),
            "nats/README.md's table is stale: run this test with TASKYARD_BLESS=1 to rewrite it"
        );
    }

    #[test]
    fn a_worker_speaks_for_its_own_node_only() {
        let kind = Kind::parse("worker", Some("n1"), &[]).expect("worker");
        let p = permissions(&kind);
        assert!(p.publish.contains(&"taskyard.status.n1".to_owned()));
        assert!(
            p.publish
                .iter()
                .all(|s| !s.contains("n2") && !s.contains('*') && !s.ends_with("status.>")),
            "{p:?}"
        );
        assert!(p.publish.iter().all(|s| !s.starts_with("taskyard.api")));
        assert!(p.publish.iter().all(|s| !s.starts_with("taskyard.events")));
        assert_eq!(kind.account(), CLUSTER_ACCOUNT);
    }

    #[test]
    fn bad_kinds_and_scopes_are_named() {
        let err = Kind::parse("wizard", None, &[]).expect_err("unknown kind");
        assert!(err.to_string().contains("`wizard` is not a kind"), "{err}");
        let err = Kind::parse("service", Some("mailer"), &[]).expect_err("unknown service");
        assert!(
            err.to_string()
                .contains("`mailer` is not a Taskyard service"),
            "{err}"
        );
        let err = Kind::parse("worker", None, &[]).expect_err("no node");
        assert_eq!(err.to_string(), "a worker credential needs a node id");
        let err = Kind::parse("worker", Some("a.b"), &[]).expect_err("dotted node");
        assert!(
            err.to_string().contains("`a.b` cannot be a node id"),
            "{err}"
        );
        for subject in [
            "taskyard.api.pools.delete",
            ">",
            "$JS.API.>",
            "_INBOX.x",
            "a..b",
        ] {
            let err = Kind::parse("worker", Some("n1"), &[subject.to_owned()])
                .expect_err("reserved task subject");
            assert!(err.to_string().contains(subject), "{err}");
        }
        Kind::parse("worker", Some("n1"), &["pricing.>".to_owned()]).expect("a task subject");
    }

    #[test]
    fn submitters_and_operators_are_clients_with_no_jetstream() {
        for kind in [Kind::Submitter, Kind::Operator] {
            let p = permissions(&kind);
            assert_eq!(kind.account(), CLIENTS_ACCOUNT);
            assert!(p.publish.iter().all(|s| !s.starts_with("$JS")), "{p:?}");
        }
        let submitter = permissions(&Kind::Submitter);
        assert!(
            submitter
                .publish
                .iter()
                .all(|s| !s.starts_with("taskyard.api.p"))
        );
    }

    #[test]
    fn the_config_names_every_identity_in_its_account() {
        let worker = generate(
            "worker-n1",
            Kind::parse("worker", Some("n1"), &[]).expect("kind"),
        )
        .expect("nkey");
        let operator = generate("alice", Kind::Operator).expect("nkey");
        assert!(worker.seed.starts_with("SU"));
        assert!(
            !format!("{worker:?}").contains(&worker.seed),
            "Debug shows no seed"
        );
        let config = render_accounts(&[worker.identity.clone(), operator.identity.clone()]);
        let cluster = config.find("TASKYARD {").expect("cluster account");
        let clients = config.find("CLIENTS {").expect("clients account");
        let w = config
            .find(&worker.identity.public_key)
            .expect("worker key");
        let o = config
            .find(&operator.identity.public_key)
            .expect("operator key");
        assert!(cluster < w && w < clients && clients < o, "{config}");
        assert!(!config.contains(&worker.seed));
        assert!(config.contains("share: true"));
    }

    #[test]
    fn the_servers_header_beats_the_bodys_claim() {
        use taskyard_wire::actor::Requester;
        let mut headers = async_nats::HeaderMap::new();
        headers.insert(
            REQUEST_INFO_HEADER,
            r#"{"acc":"CLIENTS","user":"UALICE","name":"token:root"}"#,
        );
        assert_eq!(
            requester(Some(&headers), Some("token:root")),
            Requester::Client {
                account: CLIENTS_ACCOUNT.to_owned(),
                public_key: Some("UALICE".to_owned()),
            },
            "a client cannot speak for another, nor name itself by its connection name"
        );
        let mut garbled = async_nats::HeaderMap::new();
        garbled.insert(REQUEST_INFO_HEADER, "not json");
        assert!(
            matches!(
                requester(Some(&garbled), Some("token:root")),
                Requester::Client {
                    public_key: None,
                    ..
                }
            ),
            "a header that cannot be read still marks the request as a client's"
        );
    }

    #[test]
    fn without_the_header_the_body_is_believed() {
        use taskyard_wire::actor::Requester;
        let claimed = Requester::Cluster {
            claimed: Some("token:alice".to_owned()),
        };
        assert_eq!(requester(None, Some("token:alice")), claimed);
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", "x");
        assert_eq!(requester(Some(&headers), Some("token:alice")), claimed);
        assert_eq!(
            requester(None, None),
            Requester::Cluster { claimed: None },
            "the system itself"
        );
    }
}
