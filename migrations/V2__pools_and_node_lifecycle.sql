-- Pools, task node selectors and waiting reasons, node lifecycle, and node
-- samples for resource history.

CREATE TABLE pools (
    name                text PRIMARY KEY CHECK (name ~ '^[A-Za-z0-9_-]{1,64}$'),
    policy              text NOT NULL DEFAULT 'fcfs',
    placement           text NOT NULL DEFAULT 'best_fit' CHECK (placement IN ('best_fit', 'spread')),
    -- Labels a node must carry to be a member; {} admits every node.
    node_selector       jsonb NOT NULL DEFAULT '{}',
    max_running         integer CHECK (max_running > 0),
    max_cpu_millis      integer CHECK (max_cpu_millis > 0),
    max_memory_mb       integer CHECK (max_memory_mb > 0),
    tenant_max_running  integer CHECK (tenant_max_running > 0),
    default_timeout_ms  bigint CHECK (default_timeout_ms > 0),
    overcommit          double precision NOT NULL DEFAULT 1.0
                        CHECK (overcommit >= 1.0 AND overcommit <= 10.0),
    created_at          timestamptz NOT NULL DEFAULT now(),
    updated_at          timestamptz NOT NULL DEFAULT now()
);

INSERT INTO pools (name) VALUES ('default');

-- Labels a node must carry to run the task, on top of its pool's selector.
ALTER TABLE tasks ADD COLUMN node_selector jsonb NOT NULL DEFAULT '{}';
-- Why a queued task still waits, as the scheduler last saw it.
ALTER TABLE tasks ADD COLUMN wait_reason text;

-- An operator's "no new work here" (cordon, drain); a worker's own draining
-- flag stays in `draining`.
ALTER TABLE nodes ADD COLUMN cordoned boolean NOT NULL DEFAULT false;
ALTER TABLE nodes ADD COLUMN disk_total_mb bigint NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN disk_free_mb bigint NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN net_rx_bytes_per_s bigint NOT NULL DEFAULT 0;
ALTER TABLE nodes ADD COLUMN net_tx_bytes_per_s bigint NOT NULL DEFAULT 0;

-- One row per node per sample interval, kept for the retention period.
CREATE TABLE node_samples (
    node_id             text NOT NULL,
    at                  timestamptz NOT NULL,
    cpu_percent         real NOT NULL,
    memory_used_mb      bigint NOT NULL,
    disk_free_mb        bigint NOT NULL,
    net_rx_bytes_per_s  bigint NOT NULL,
    net_tx_bytes_per_s  bigint NOT NULL,
    running             integer NOT NULL,
    PRIMARY KEY (node_id, at)
);

CREATE INDEX node_samples_by_time ON node_samples (at);
