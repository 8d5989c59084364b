//! The database tools on a real PostgreSQL: describe, scoped reads, caps, previews and
//! writes with the tenant forced, row-level security and a least-privilege role.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/sql_fixture.rs"]
mod sql_fixture;
mod support;

use logline_core::tool::ToolHub;
use logline_core::ErrorKind;
use logline_postgres::sql_tools::{Refusal, DESCRIBE, PREVIEW_WRITE, QUERY, WRITE};
use serde_json::{json, Value};
use sql_fixture::{ctx, HostDb, CANARY};
use sqlx::Executor;

async fn query(hub: &impl ToolHub, tenant: &str, sql: &str) -> Value {
    hub.execute(QUERY, json!({ "sql": sql }), &ctx(tenant))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn column(v: &Value, i: usize) -> Vec<Value> {
    v["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[i].clone())
        .collect()
}

#[tokio::test]
async fn describe_lists_the_allowlist_without_hidden_columns() {
    let db = HostDb::new().await;
    let hub = db.hub().await;
    let out = hub
        .execute(DESCRIBE, json!({}), &ctx("acme"))
        .await
        .unwrap();
    let names: Vec<&str> = out["tables"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["countries", "customers", "order_totals", "orders"]);
    let customers = &out["tables"][1];
    assert_eq!(customers["description"], "People who buy from us.");
    assert_eq!(customers["writable"], true);
    let cols: Vec<&str> = customers["columns"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        cols,
        ["id", "tenant_id", "name", "email"],
        "secret_note hidden"
    );
    assert_eq!(customers["columns"][1]["set_by_tool"], true);
    assert_eq!(out["tables"][0]["tenant_scoped"], false);
    let one = hub
        .execute(DESCRIBE, json!({"table": "orders"}), &ctx("acme"))
        .await
        .unwrap();
    assert_eq!(one["tables"].as_array().unwrap().len(), 1);
    let missing = hub
        .execute(DESCRIBE, json!({"table": "secrets"}), &ctx("acme"))
        .await
        .unwrap_err();
    assert_eq!(missing.kind(), ErrorKind::PolicyDenied);
    let specs = hub.specs();
    let write = specs.iter().find(|s| s.id == WRITE).unwrap();
    assert!(write.requires_confirmation && write.tags.contains(&"write".to_string()));
    assert!(specs.iter().filter(|s| s.id != WRITE).all(|s| s.idempotent));
}

#[tokio::test]
async fn reads_see_only_the_callers_tenant_everywhere_in_the_query() {
    let db = HostDb::new().await;
    let hub = db.hub().await;
    let acme = query(&hub, "acme", "SELECT name FROM customers ORDER BY name").await;
    assert_eq!(acme["columns"], json!(["name"]));
    assert_eq!(column(&acme, 0), [json!("Ada"), json!("Bob")]);
    let globex = query(&hub, "globex", "SELECT name FROM Customers").await;
    assert_eq!(column(&globex, 0), [json!("GlobexCanary")]);

    // Joins, CTEs, sub-queries and views are all scoped.
    let sql = "WITH t AS (SELECT customer_id, sum(total) AS s FROM orders GROUP BY 1) \
               SELECT c.name, t.s, (SELECT count(*) FROM orders o WHERE o.customer_id = c.id) AS n \
               FROM customers c JOIN t ON t.customer_id = c.id \
               WHERE c.id IN (SELECT customer_id FROM order_totals) ORDER BY c.name";
    let out = query(&hub, "acme", sql).await;
    assert_eq!(out["columns"], json!(["name", "s", "n"]));
    assert_eq!(
        out["rows"],
        json!([["Ada", 30.50, 2], ["Bob", 5.25, 1]]),
        "{out}"
    );
    let totals = query(&hub, "acme", "SELECT sum(total) FROM order_totals").await;
    assert_eq!(totals["rows"], json!([[35.75]]));
    // Shared reference data is whole for every tenant.
    let countries = query(&hub, "globex", "SELECT count(*) FROM countries").await;
    assert_eq!(countries["rows"], json!([[2]]));
    // Asking for the other tenant by name finds nothing.
    let sneaky = query(
        &hub,
        "acme",
        "SELECT * FROM customers WHERE tenant_id = 'globex' OR true",
    )
    .await;
    assert_eq!(sneaky["row_count"], 2);
    assert!(!sneaky.to_string().contains(CANARY));
    // What runs is the printed, scoped tree.
    let checked = hub.check_query("select * from customers c").unwrap();
    assert!(checked.sql.contains("current_setting('logline.tenant_id')"));
    assert!(checked
        .sql
        .contains(&format!("\"{}\".\"customers\"", db.schema)));
    assert!(checked.relations.contains("customers"));
}

#[tokio::test]
async fn results_keep_column_order_duplicates_and_names_of_empty_results() {
    let db = HostDb::new().await;
    let hub = db.hub().await;
    let out = query(
        &hub,
        "acme",
        "SELECT c.id, o.id, o.total, o.created_at IS NOT NULL AS dated FROM customers c \
         JOIN orders o ON o.customer_id = c.id ORDER BY o.id LIMIT 1",
    )
    .await;
    assert_eq!(out["columns"], json!(["id", "id", "total", "dated"]));
    assert_eq!(out["rows"], json!([[1, 1, 10.50, true]]));
    let empty = query(
        &hub,
        "acme",
        "SELECT id, name AS who FROM customers WHERE false",
    )
    .await;
    assert_eq!(empty["columns"], json!(["id", "who"]));
    assert_eq!(empty["rows"], json!([]));
    assert_eq!(empty["truncated"], false);
}

#[tokio::test]
async fn results_are_capped_in_rows_and_bytes() {
    let db = HostDb::new().await;
    let hub = db
        .builder()
        .max_rows(3)
        .max_bytes(2_000)
        .build()
        .await
        .unwrap();
    let rows = query(&hub, "acme", "SELECT g FROM generate_series(1, 1000000) g").await;
    assert_eq!(rows["row_count"], 3);
    assert_eq!(rows["truncated"], true);
    assert_eq!(rows["truncated_by"], "max_rows");
    let bytes = query(
        &hub,
        "acme",
        "SELECT lpad('x', 900, 'x') AS t FROM generate_series(1, 3)",
    )
    .await;
    assert_eq!(bytes["row_count"], 2, "the third row would pass 2000 bytes");
    assert_eq!(bytes["truncated_by"], "max_bytes");
    let huge = query(&hub, "acme", "SELECT lpad('x', 50000000, 'x') AS big").await;
    assert_eq!(huge["row_count"], 0);
    assert_eq!(huge["truncated_by"], "max_bytes");
    assert_eq!(huge["columns"], json!(["big"]));
}

#[tokio::test]
async fn previews_change_nothing_and_writes_force_the_tenant() {
    let db = HostDb::new().await;
    let hub = db.hub().await;
    let before = db.snapshot("customers").await;
    let insert = "INSERT INTO customers (name, email) VALUES ('Cy', 'cy@acme.test'), ('Di', NULL)";
    let preview = hub
        .execute(PREVIEW_WRITE, json!({ "sql": insert }), &ctx("acme"))
        .await
        .unwrap();
    assert_eq!(preview["dry_run"], true);
    assert_eq!(preview["affected_rows"], 2);
    assert_eq!(preview["operation"], "insert");
    assert!(preview["executed_sql"]
        .as_str()
        .unwrap()
        .contains("tenant_id"));
    // db.write is a dry run unless told otherwise.
    let dry = hub
        .execute(WRITE, json!({ "sql": insert }), &ctx("acme"))
        .await
        .unwrap();
    assert_eq!(dry["dry_run"], true);
    assert_eq!(db.snapshot("customers").await, before, "nothing changed");

    let applied = hub
        .execute(
            WRITE,
            json!({ "sql": insert, "dry_run": false }),
            &ctx("acme"),
        )
        .await
        .unwrap();
    assert_eq!(applied["affected_rows"], 2);
    assert_eq!(
        db.scalar_i64("SELECT count(*) FROM {s}.customers WHERE tenant_id = 'acme'")
            .await,
        4
    );
    // An update touches only the caller's rows, whatever its WHERE says.
    let update = "UPDATE customers SET email = lower(name) || '@new.test' WHERE true";
    let out = hub
        .execute(
            WRITE,
            json!({ "sql": update, "dry_run": false }),
            &ctx("globex"),
        )
        .await
        .unwrap();
    assert_eq!(out["affected_rows"], 1);
    assert_eq!(
        db.scalar_i64("SELECT count(*) FROM {s}.customers WHERE email LIKE '%@new.test'")
            .await,
        1
    );
    let insert_select = "INSERT INTO orders (customer_id, total) SELECT id, 1 FROM customers";
    let out = hub
        .execute(
            WRITE,
            json!({ "sql": insert_select, "dry_run": false }),
            &ctx("globex"),
        )
        .await
        .unwrap();
    assert_eq!(
        out["affected_rows"], 1,
        "only globex's one customer is read"
    );
    assert_eq!(
        db.scalar_i64("SELECT count(*) FROM {s}.orders WHERE tenant_id = 'globex'")
            .await,
        2
    );
    // A constraint failure is a final failure with PostgreSQL's message.
    let bad = hub
        .execute(
            WRITE,
            json!({ "sql": "INSERT INTO orders (customer_id, total) VALUES (1, NULL)", "dry_run": false }),
            &ctx("acme"),
        )
        .await
        .unwrap_err();
    assert_eq!(bad.kind(), ErrorKind::ToolFailed);
    assert!(!bad.is_retryable());
    assert!(bad.to_string().contains("23502"), "{bad}");
}

#[tokio::test]
async fn refusals_explain_themselves() {
    let db = HostDb::new().await;
    let hub = db.hub().await;
    let e = hub
        .execute(QUERY, json!({"sql": "SELECT * FROM secrets"}), &ctx("acme"))
        .await
        .unwrap_err();
    assert_eq!(e.kind(), ErrorKind::PolicyDenied);
    assert!(!e.is_retryable());
    let text = e.to_string();
    assert!(
        text.contains("[relation]") && text.contains("db.describe"),
        "{text}"
    );
    assert_eq!(
        hub.check_query("SELECT pg_sleep(1)").unwrap_err(),
        Refusal::Function("pg_sleep".into())
    );
    assert_eq!(
        hub.check_write("UPDATE customers SET tenant_id = 'x' WHERE true")
            .unwrap_err(),
        Refusal::TenantColumn("tenant_id".into())
    );
    let bad_args = hub
        .execute(QUERY, json!({"query": "SELECT 1"}), &ctx("acme"))
        .await
        .unwrap_err();
    assert_eq!(bad_args.kind(), ErrorKind::InvalidInput);
    let write_flag_on_a_read = hub
        .execute(
            QUERY,
            json!({"sql": "SELECT 1", "dry_run": false}),
            &ctx("acme"),
        )
        .await
        .unwrap_err();
    assert_eq!(write_flag_on_a_read.kind(), ErrorKind::InvalidInput);
    let no_tenant = hub
        .execute(QUERY, json!({"sql": "SELECT 1"}), &ctx(""))
        .await
        .unwrap_err();
    assert_eq!(no_tenant.kind(), ErrorKind::PolicyDenied);
    let timeout_hub = db
        .builder()
        .statement_timeout(std::time::Duration::from_millis(200))
        .build()
        .await
        .unwrap();
    let slow = timeout_hub
        .execute(
            QUERY,
            json!({"sql": "SELECT count(*) FROM generate_series(1, 100000) a, generate_series(1, 100000) b"}),
            &ctx("acme"),
        )
        .await
        .unwrap_err();
    assert_eq!(slow.kind(), ErrorKind::ToolFailed);
    assert!(!slow.is_retryable(), "shown to the model, not retried");
    assert!(slow.to_string().contains("statement timeout"), "{slow}");
}

#[tokio::test]
async fn a_misconfigured_allowlist_fails_at_build() {
    let db = HostDb::new().await;
    let base = || logline_postgres::SqlToolHub::builder(db.pool.clone());
    let t = |name: &str| {
        logline_postgres::SqlTable::tenant_scoped(name, "tenant_id").in_schema(&db.schema)
    };
    for (builder, what) in [
        (base().table(t("nope")), "missing table"),
        (
            base().table(
                logline_postgres::SqlTable::tenant_scoped("orders", "owner").in_schema(&db.schema),
            ),
            "missing tenant column",
        ),
        (
            base().table(t("orders").hide(["nope"])),
            "missing hidden column",
        ),
        (
            base().table(
                logline_postgres::SqlTable::shared("countries")
                    .in_schema(&db.schema)
                    .writable(),
            ),
            "writable shared table",
        ),
        (base().table(t("order_totals").writable()), "writable view"),
        (
            base().table(t("orders")).read_role("no_such_role_here"),
            "missing role",
        ),
        (
            base().table(t("orders")).tenant_setting("bad setting"),
            "bad setting",
        ),
    ] {
        let e = builder
            .build()
            .await
            .err()
            .unwrap_or_else(|| panic!("{what}"));
        assert_eq!(e.kind(), ErrorKind::InvalidInput, "{what}: {e}");
    }
}

/// Row-level security keyed on the same transaction-local setting, and a role with SELECT on
/// one table only: the database enforces both even for a relation the tools do not rewrite.
#[tokio::test]
async fn row_level_security_and_a_least_privilege_role() {
    let db = HostDb::new().await;
    let role = format!("{}_reader", db.schema);
    let s = &db.schema;
    let setup = format!(
        r#"CREATE ROLE "{role}" NOLOGIN;
           GRANT USAGE ON SCHEMA "{s}" TO "{role}";
           GRANT SELECT ON "{s}".customers TO "{role}";
           ALTER TABLE "{s}".customers ENABLE ROW LEVEL SECURITY;
           CREATE POLICY tenant_rows ON "{s}".customers
               USING (tenant_id = current_setting('logline.tenant_id'));"#
    );
    db.pool.execute(setup.as_str()).await.unwrap();
    let result = async {
        // `customers` listed as shared: no rewrite, so only row-level security scopes it.
        let hub = logline_postgres::SqlToolHub::builder(db.pool.clone())
            .table(
                logline_postgres::SqlTable::shared("customers")
                    .in_schema(s)
                    .hide(["secret_note"]),
            )
            .table(logline_postgres::SqlTable::tenant_scoped("orders", "tenant_id").in_schema(s))
            .read_role(&role)
            .build()
            .await
            .unwrap();
        let acme = query(&hub, "acme", "SELECT name FROM customers ORDER BY 1").await;
        let globex = query(&hub, "globex", "SELECT name FROM customers").await;
        let denied = hub
            .execute(
                QUERY,
                json!({"sql": "SELECT count(*) FROM orders"}),
                &ctx("acme"),
            )
            .await
            .unwrap_err();
        (acme, globex, denied)
    }
    .await;
    let _ = db
        .pool
        .execute(format!(r#"DROP OWNED BY "{role}"; DROP ROLE "{role}";"#).as_str())
        .await;
    let (acme, globex, denied) = result;
    assert_eq!(column(&acme, 0), [json!("Ada"), json!("Bob")]);
    assert_eq!(column(&globex, 0), [json!("GlobexCanary")]);
    assert_eq!(denied.kind(), ErrorKind::ToolFailed);
    assert!(
        denied.to_string().contains("42501"),
        "permission denied: {denied}"
    );
}

/// The tool-hub checks of the shared conformance suite that apply to a hub of fixed tools
/// (the echo-tool checks need a tool that returns its arguments, which these tools are not).
#[tokio::test]
async fn hub_conformance_checks_that_apply() {
    use logline_core::conformance::hub::{self, HubFixture, SeenExecution};
    use std::sync::Arc;

    struct Fixture {
        hub: logline_postgres::SqlToolHub,
        _db: HostDb,
    }
    impl HubFixture for Fixture {
        fn hub(&self) -> &dyn ToolHub {
            &self.hub
        }
        fn echo_tool(&self) -> String {
            QUERY.into()
        }
        fn valid_arguments(&self) -> Value {
            json!({"sql": "SELECT 1"})
        }
        fn invalid_arguments(&self) -> Value {
            json!({"sql": 1})
        }
        fn seen(&self) -> Vec<SeenExecution> {
            Vec::new()
        }
    }
    let db = HostDb::new().await;
    let fixture: Arc<dyn HubFixture> = Arc::new(Fixture {
        hub: db.hub().await,
        _db: db,
    });
    hub::unknown_tool_is_not_found(fixture.clone()).await;
    hub::invalid_arguments_are_rejected(fixture.clone()).await;
    hub::catalog_pages_cover_every_tool(fixture).await;
}

/// Many calls of two tenants at once on a pool of four connections: each sees only its own
/// rows (the tenant setting is per transaction, never left on a pooled session).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_tenants_never_see_each_other() {
    let db = HostDb::new().await;
    let hub = std::sync::Arc::new(db.hub().await);
    let calls = (0..40).map(|i| {
        let hub = hub.clone();
        let tenant = if i % 2 == 0 { "acme" } else { "globex" };
        tokio::spawn(async move {
            let out = hub
                .execute(
                    QUERY,
                    json!({"sql": "SELECT DISTINCT tenant_id FROM customers"}),
                    &ctx(tenant),
                )
                .await
                .unwrap();
            (tenant, out["rows"].clone())
        })
    });
    for call in futures::future::join_all(calls).await {
        let (tenant, rows) = call.unwrap();
        assert_eq!(rows, json!([[tenant]]));
    }
}
