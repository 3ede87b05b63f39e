-- Bearer tokens of the REST API, and indexes for its task lists.

-- A token is shown once, when `taskyard token create` makes it; only its
-- SHA-256 (hex) is kept, so the database never holds a usable token.
CREATE TABLE api_tokens (
    id           uuid PRIMARY KEY,
    name         text NOT NULL UNIQUE CHECK (name <> ''),
    role         text NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
    token_hash   text NOT NULL UNIQUE CHECK (token_hash ~ '^[0-9a-f]{64}$'),
    created_at   timestamptz NOT NULL DEFAULT now(),
    last_used_at timestamptz,
    revoked_at   timestamptz
);

-- `GET /api/v1/tasks` pages newest first (`ORDER BY seq DESC`) with an
-- optional filter on state, pool, tenant or pool and state. Without these,
-- a filter on a rare value walks the whole `seq` index backwards; with them
-- every page is an index range scan of `limit` rows, at any table size.
CREATE INDEX tasks_by_state_seq ON tasks (state, seq DESC);
CREATE INDEX tasks_by_pool_seq ON tasks (pool, seq DESC);
CREATE INDEX tasks_by_pool_state_seq ON tasks (pool, state, seq DESC);
CREATE INDEX tasks_by_tenant_seq ON tasks (tenant, seq DESC);
