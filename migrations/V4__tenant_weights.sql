-- Per-tenant weights of a pool, for weighted fair queuing: {"tenant": weight}.
-- Tenants not named weigh 1.
ALTER TABLE pools ADD COLUMN tenant_weights jsonb NOT NULL DEFAULT '{}';
