//! A host database for the database-tool tests: two tenants' customers and orders, shared
//! countries, a view, and a table plus a function outside the allowlist, in a fresh schema.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use logline_core::run::Subject;
use logline_core::tool::ToolContext;
use logline_postgres::sql_tools::SqlToolHubBuilder;
use logline_postgres::{SqlTable, SqlToolHub};
use sqlx::postgres::PgPoolOptions;
use sqlx::{Executor, PgPool};

use crate::support::{database_url, sweep_stale_schemas, unique_schema, SchemaGuard};

/// Text that only the other tenant's rows and the unlisted table hold.
pub const CANARY: &str = "Canary";

/// A fresh host schema with its pool.
pub struct HostDb {
    pub pool: PgPool,
    pub schema: String,
    pub _guard: SchemaGuard,
}

impl HostDb {
    /// Creates the schema and fills it.
    pub async fn new() -> HostDb {
        sweep_stale_schemas().await;
        let schema = unique_schema();
        let guard = SchemaGuard(schema.clone());
        let pool = PgPoolOptions::new()
            .max_connections(4)
            .connect(&database_url())
            .await
            .expect("connect (is PostgreSQL running?)");
        let s = &schema;
        let ddl = format!(
            r#"
            CREATE SCHEMA "{s}";
            CREATE TABLE "{s}".customers (
                id serial PRIMARY KEY, tenant_id text NOT NULL, name text NOT NULL,
                email text, secret_note text);
            COMMENT ON TABLE "{s}".customers IS 'People who buy from us.';
            CREATE TABLE "{s}".orders (
                id serial PRIMARY KEY, tenant_id text NOT NULL,
                customer_id int REFERENCES "{s}".customers(id), total numeric(10,2) NOT NULL,
                status text NOT NULL DEFAULT 'open', created_at timestamptz NOT NULL DEFAULT now());
            CREATE TABLE "{s}".countries (code text PRIMARY KEY, name text NOT NULL);
            CREATE TABLE "{s}".secrets (id int, tenant_id text, value text);
            CREATE VIEW "{s}".order_totals AS
                SELECT tenant_id, customer_id, sum(total) AS total, count(*) AS orders
                FROM "{s}".orders GROUP BY tenant_id, customer_id;
            CREATE FUNCTION "{s}".boom() RETURNS int LANGUAGE sql AS
                $$ INSERT INTO "{s}".secrets VALUES (99, 'x', 'boom') RETURNING 1 $$;
            INSERT INTO "{s}".customers (tenant_id, name, email, secret_note) VALUES
                ('acme', 'Ada', 'ada@acme.test', 'likes tea'),
                ('acme', 'Bob', 'bob@acme.test', 'owes money'),
                ('globex', 'GlobexCanary', 'gina@globex.test', 'CanaryNote');
            INSERT INTO "{s}".orders (tenant_id, customer_id, total, status) VALUES
                ('acme', 1, 10.50, 'paid'), ('acme', 1, 20.00, 'open'),
                ('acme', 2, 5.25, 'paid'), ('globex', 3, 999.99, 'paid');
            INSERT INTO "{s}".countries VALUES ('PT', 'Portugal'), ('BR', 'Brazil');
            INSERT INTO "{s}".secrets VALUES (1, 'acme', 'SecretCanary');
            "#
        );
        pool.execute(ddl.as_str()).await.expect("host schema");
        HostDb {
            pool,
            schema,
            _guard: guard,
        }
    }

    /// The allowlist of these tests, before limits and roles.
    pub fn builder(&self) -> SqlToolHubBuilder {
        SqlToolHub::builder(self.pool.clone())
            .table(
                SqlTable::tenant_scoped("customers", "tenant_id")
                    .in_schema(&self.schema)
                    .writable()
                    .hide(["secret_note"]),
            )
            .table(
                SqlTable::tenant_scoped("orders", "tenant_id")
                    .in_schema(&self.schema)
                    .writable(),
            )
            .table(SqlTable::shared("countries").in_schema(&self.schema))
            .table(SqlTable::tenant_scoped("order_totals", "tenant_id").in_schema(&self.schema))
    }

    /// The hub with the default limits.
    pub async fn hub(&self) -> SqlToolHub {
        self.builder().build().await.expect("hub")
    }

    /// One scalar of trusted SQL over the schema (`{s}` is the schema).
    pub async fn scalar_i64(&self, sql: &str) -> i64 {
        let sql = sql.replace("{s}", &format!("\"{}\"", self.schema));
        sqlx::query_scalar(&sql)
            .fetch_one(&self.pool)
            .await
            .expect(&sql)
    }

    /// Text of a whole table, for before/after comparisons.
    pub async fn snapshot(&self, table: &str) -> String {
        let sql = format!(
            "SELECT coalesce(string_agg(t::text, '|' ORDER BY t::text), '') FROM \"{}\".{table} t",
            self.schema
        );
        sqlx::query_scalar(&sql)
            .fetch_one(&self.pool)
            .await
            .expect("snapshot")
    }
}

/// A tool context of `tenant`.
pub fn ctx(tenant: &str) -> ToolContext {
    ToolContext::for_subject(Subject::tenant(tenant).with_user("u1"))
}
