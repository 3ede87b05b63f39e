-- Who asked: the identity behind an operator's change, kept with the
-- history row the change wrote (in the same statement), so that "who did
-- this" is answered in SQL.
--
-- An actor is one of:
--   token:<name>     a REST caller, by the name of its API token
--   api:open         a REST caller of an API running without auth (loopback only)
--   nats:<name>      a NATS requester from the CLIENTS account (the CLI, an
--                    operator's program), by its `nats_credentials` name, as
--                    the server's `Nats-Request-Info` header identifies it
--   nats:<key>       the same, when no credential row names its public key
--                    (`U...`); `nats:account:<acc>` when the server named none
--   NULL             the system itself (a report, a timer, a lost node)
-- Written by the services, never taken from a client's word: see
-- `docs/security.md`, "Who did this".

-- Whose request made the transition: a cancel, or the submission (a retry
-- through the API included) for a task's first row.
ALTER TABLE task_events ADD COLUMN actor text;

-- Who cordoned, drained, uncordoned or removed the node; NULL for the
-- events the cluster records itself (registration, health, draining).
ALTER TABLE node_events ADD COLUMN actor text;

-- Pools had no history: their rows hold the definition as it stands, and a
-- deleted pool leaves no row at all. One row per change, with the
-- definition it left (`deleted`: the one it removed) and who asked.
CREATE TABLE pool_events (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    pool        text NOT NULL,
    change      text NOT NULL CHECK (change IN ('created', 'updated', 'deleted')),
    at          timestamptz NOT NULL DEFAULT now(),
    -- As in task_events: token:<name>, api:open, nats:<name>, or NULL.
    actor       text,
    definition  jsonb NOT NULL
);

CREATE INDEX pool_events_by_pool ON pool_events (pool, id);

-- An audit trail that can be edited answers nothing: append-only, as
-- task_events is.
CREATE FUNCTION pool_events_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION 'pool_events is append-only';
END;
$$;

CREATE TRIGGER pool_events_append_only
    BEFORE UPDATE ON pool_events
    FOR EACH ROW EXECUTE FUNCTION pool_events_append_only();
