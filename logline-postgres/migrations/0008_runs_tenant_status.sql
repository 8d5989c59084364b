-- A tenant's runs in one status, newest first: what the per-tenant cap on concurrent runs and
-- the console's status filter read. Without it such a query walks every run of the tenant.
CREATE INDEX runs_tenant_status_idx ON runs (tenant_id, status, created_at DESC, id DESC);
