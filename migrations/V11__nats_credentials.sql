-- NATS credentials: who may connect to the bus, and as what.
--
-- `taskyard creds` writes these rows and renders the nats-server
-- authorization config from the live ones; the nkey's seed is never stored
-- (only its holder has it). Services read the table to name the identity
-- behind a request (`task_events.actor` and the audit log), so "who did
-- this" is answered in SQL. A revoked row stays for the record.
CREATE TABLE nats_credentials (
    id            uuid PRIMARY KEY,
    name          text NOT NULL CHECK (name <> ''),
    kind          text NOT NULL
                  CHECK (kind IN ('service', 'worker', 'submitter', 'operator', 'admin')),
    -- The service or node a service or worker credential is for.
    scope         text,
    -- Subjects a worker's `nats` tasks may send requests to.
    task_subjects text[] NOT NULL DEFAULT '{}',
    public_key    text NOT NULL UNIQUE,
    created_at    timestamptz NOT NULL DEFAULT now(),
    revoked_at    timestamptz
);

-- One live credential per name: a name in the audit trail means one holder
-- at a time, and re-issuing a name (a lost seed, `taskyard up --secure` on a
-- fresh folder) revokes the old key first.
CREATE UNIQUE INDEX nats_credentials_live_name ON nats_credentials (name)
    WHERE revoked_at IS NULL;
