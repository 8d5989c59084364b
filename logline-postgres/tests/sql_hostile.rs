//! A corpus of hostile statements sent to the database tools on a real PostgreSQL, as tenant
//! `acme`. Each is refused by the checks (`Refused`) or runs with no harm (`Contained`: an
//! answer or a database error, never another tenant's rows or a side effect). After the whole
//! corpus the other tenant's rows, the unlisted table, the schema's objects and the pooled
//! sessions' settings are as they were.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/sql_fixture.rs"]
mod sql_fixture;
mod support;

use std::time::Duration;

use logline_core::tool::ToolHub;
use logline_core::ErrorKind;
use logline_postgres::sql_tools::{PREVIEW_WRITE, QUERY, SQL_SAFETY_POLICY, WRITE};
use serde_json::json;
use sql_fixture::{ctx, HostDb, CANARY};

#[derive(Clone, Copy, Debug, PartialEq)]
enum Expect {
    /// The checks refuse it before it reaches the database.
    Refused,
    /// It may run or fail in the database; either way nothing leaks or changes.
    Contained,
}
use Expect::{Contained, Refused};

/// Reads sent to `db.query`.
fn read_corpus(s: &str) -> Vec<(Expect, String)> {
    let deep_parens = format!("SELECT {}1{}", "(".repeat(300), ")".repeat(300));
    let deep_subqueries = format!(
        "SELECT {}1{}",
        "(SELECT ".repeat(120),
        " FROM customers)".repeat(120)
    );
    let long = format!("SELECT 1 {}", "+ 1 ".repeat(5000));
    let list: Vec<(Expect, &str)> = vec![
        // stacked statements and comments
        (Refused, "SELECT 1; DROP TABLE customers"),
        (Refused, "SELECT * FROM customers; DELETE FROM customers"),
        (Refused, "SELECT 1;;DELETE FROM orders"),
        (Refused, "SELECT 1 -- hidden\n; DELETE FROM orders"),
        (Refused, "/* looks like a read */ DELETE FROM orders"),
        (Contained, "SELECT 1 /* ; DROP TABLE customers */"),
        (Refused, "SELECT 1 /* unterminated ; DROP TABLE customers"),
        (Refused, "SELECT 1 $$; DROP TABLE customers; $$"),
        // other statement kinds
        (Refused, "DELETE FROM orders WHERE true"),
        (Refused, "DROP TABLE orders"),
        (Refused, "TRUNCATE orders"),
        (Refused, "ALTER TABLE orders ADD COLUMN x int"),
        (Refused, "GRANT ALL ON orders TO PUBLIC"),
        (Refused, "REVOKE ALL ON orders FROM PUBLIC"),
        (Refused, "COPY orders TO '/tmp/orders.csv'"),
        (Refused, "COPY (SELECT * FROM orders) TO STDOUT"),
        (Refused, "COPY orders FROM PROGRAM 'id'"),
        (Refused, "CREATE TABLE stolen AS SELECT * FROM orders"),
        (Refused, "INSERT INTO orders (customer_id, total) VALUES (1, 1)"),
        (Refused, "UPDATE orders SET total = 0 WHERE true"),
        (Refused, "MERGE INTO orders o USING customers c ON o.customer_id = c.id WHEN MATCHED THEN DELETE"),
        (Refused, "SET ROLE postgres"),
        (Refused, "SET search_path = public"),
        (Refused, "RESET ALL"),
        (Refused, "BEGIN"),
        (Refused, "COMMIT"),
        (Refused, "EXPLAIN ANALYZE DELETE FROM orders"),
        (Refused, "DO $$ BEGIN DELETE FROM orders; END $$"),
        (Refused, "CALL boom()"),
        (Refused, "PREPARE p AS DELETE FROM orders"),
        (Refused, "LISTEN channel"),
        (Refused, "NOTIFY channel, 'x'"),
        (Refused, "VACUUM orders"),
        (Refused, "LOCK TABLE orders IN ACCESS EXCLUSIVE MODE"),
        (Refused, "SHOW ALL"),
        // CTEs with writes
        (Refused, "WITH x AS (DELETE FROM orders RETURNING *) SELECT * FROM x"),
        (Refused, "WITH x AS (UPDATE orders SET total = 0 RETURNING *) SELECT count(*) FROM x"),
        (Refused, "WITH x AS (INSERT INTO orders (customer_id, total) VALUES (1, 1) RETURNING id) SELECT * FROM x"),
        (Refused, "SELECT * FROM (WITH d AS (DELETE FROM customers RETURNING 1) SELECT * FROM d) s"),
        (Refused, "WITH RECURSIVE r AS (SELECT 1 AS n UNION ALL SELECT n + 1 FROM r), d AS (DELETE FROM orders) SELECT 1"),
        // side-effecting and revealing functions
        (Refused, "SELECT pg_sleep(10)"),
        (Refused, "SELECT pg_catalog.pg_sleep(10)"),
        (Refused, "SELECT * FROM customers WHERE pg_sleep(1) IS NULL"),
        (Refused, "SELECT set_config('logline.tenant_id', 'globex', false)"),
        (Refused, "SELECT set_config('transaction_read_only', 'off', true)"),
        (Refused, "SELECT current_setting('logline.tenant_id')"),
        (Refused, "SELECT pg_read_file('/etc/passwd')"),
        (Refused, "SELECT * FROM pg_ls_dir('.')"),
        (Refused, "SELECT * FROM dblink('dbname=postgres', 'select 1') AS t(a int)"),
        (Refused, "SELECT lo_import('/etc/passwd')"),
        (Refused, "SELECT lo_export(1, '/tmp/x')"),
        (Refused, "SELECT nextval('customers_id_seq')"),
        (Refused, "SELECT txid_current()"),
        (Refused, "SELECT pg_advisory_lock(1)"),
        (Refused, "SELECT pg_terminate_backend(pg_backend_pid())"),
        (Refused, "SELECT pg_reload_conf()"),
        (Refused, "SELECT boom()"),
        (Refused, "SELECT version()"),
        (Refused, "SELECT current_user"),
        (Refused, "SELECT user"),
        (Refused, "SELECT query_to_xml('select * from secrets', true, true, '')"),
        (Refused, "SELECT * FROM ROWS FROM (pg_sleep(1))"),
        (Refused, "SELECT count(*) FROM generate_series(1, 3) g, LATERAL pg_sleep(1)"),
        (Refused, "SELECT 'pg_authid'::regclass"),
        (Refused, "SELECT CAST('secrets' AS regclass)::oid"),
        (Refused, "SELECT 1 OPERATOR(pg_catalog.+) 1"),
        (Refused, "SELECT $1"),
        (Refused, "SELECT * FROM customers WHERE id = ?"),
        // locking and INTO
        (Refused, "SELECT * FROM orders FOR UPDATE"),
        (Refused, "SELECT * FROM orders FOR SHARE NOWAIT"),
        (Refused, "SELECT * FROM (SELECT * FROM orders FOR UPDATE) o"),
        (Refused, "SELECT * INTO stolen FROM orders"),
        // relations outside the allowlist
        (Refused, "SELECT * FROM pg_catalog.pg_authid"),
        (Refused, "SELECT * FROM pg_authid"),
        (Refused, "SELECT * FROM pg_shadow"),
        (Refused, "SELECT * FROM pg_stat_activity"),
        (Refused, "SELECT * FROM information_schema.tables"),
        (Refused, "SELECT * FROM public.customers"),
        (Refused, "SELECT * FROM secrets"),
        (Refused, "SELECT * FROM customers c JOIN secrets s ON true"),
        (Refused, "SELECT (SELECT value FROM secrets LIMIT 1)"),
        (Refused, "SELECT * FROM customers WHERE EXISTS (SELECT 1 FROM pg_user)"),
        (Refused, "SELECT * FROM customers, LATERAL (SELECT * FROM secrets) x"),
        (Refused, "SELECT name FROM customers UNION SELECT value FROM secrets"),
        (Refused, "WITH s AS (SELECT * FROM secrets) SELECT * FROM s"),
        (Refused, "WITH pg_user AS (SELECT 1) SELECT * FROM pg_user"),
        (Refused, "WITH customers AS (SELECT 'x' AS name) SELECT * FROM customers"),
        (Refused, "TABLE secrets"),
        (Refused, "SELECT * FROM customers WHERE id IN (TABLE secrets)"),
        (Refused, "SELECT * FROM \"Customers\""),
        (Refused, "SELECT * FROM customers TABLESAMPLE SYSTEM (50)"),
        // another tenant's rows
        (Contained, "SELECT * FROM customers WHERE tenant_id = 'globex'"),
        (Contained, "SELECT * FROM customers WHERE tenant_id <> 'acme' OR true"),
        (Contained, "SELECT name FROM customers UNION ALL SELECT name FROM customers WHERE tenant_id = 'globex'"),
        (Contained, "SELECT * FROM orders WHERE customer_id = 3"),
        (Contained, "SELECT * FROM order_totals"),
        (Contained, "SELECT o.* FROM orders o RIGHT JOIN customers c ON c.id = o.customer_id"),
        (Contained, "SELECT * FROM ONLY customers"),
        (Contained, "SELECT secret_note FROM customers"),
        (Contained, "SELECT c.ctid, c.xmin, c.tableoid FROM customers c"),
        (Contained, "SELECT customers FROM customers"),
        (Contained, "WITH a AS (SELECT * FROM b), b AS (SELECT 1 AS x) SELECT * FROM a"),
        (Contained, "SELECT (SELECT max(name) FROM customers WHERE tenant_id = 'globex')"),
        // unicode tricks
        (Refused, "SELECT * FROM сustomers"),
        (Refused, "SELECT * FROM \"customers\u{200b}\""),
        (Refused, "SELECT * FROM U&\"secr\\0065ts\""),
        (Refused, "SELECT * FROM ｓｅｃｒｅｔｓ"),
        (Refused, "SELECT ｐｇ_sleep(1)"),
        // A fullwidth semicolon is an identifier character: `SELECT 1 AS "；delete" FROM
        // orders`, a scoped read, for sqlparser and PostgreSQL alike.
        (Contained, "SELECT 1；DELETE FROM orders"),
        (Contained, "SELECT U&'\\0041' AS a, name FROM customers"),
        // huge results and expensive queries
        (Contained, "SELECT * FROM generate_series(1, 100000000)"),
        (Contained, "SELECT lpad('x', 100000000, 'x')"),
        (Contained, "SELECT string_agg(md5(g::text), '') FROM generate_series(1, 2000000) g"),
        (Contained, "SELECT count(*) FROM generate_series(1, 100000) a, generate_series(1, 100000) b"),
        (Contained, "WITH RECURSIVE r(n) AS (SELECT 1 UNION ALL SELECT n + 1 FROM r) SELECT * FROM r"),
        (Contained, "SELECT * FROM customers a, customers b, customers c, customers d, customers e"),
        // deep nesting and length
        (Refused, deep_parens.as_str()),
        (Refused, deep_subqueries.as_str()),
        (Refused, long.as_str()),
        (Refused, ""),
        (Refused, "   ;  "),
        (Refused, "SELECT 'a\0b'"),
    ];
    list.into_iter()
        .map(|(e, sql)| (e, sql.replace("{s}", s)))
        .collect()
}

/// Writes sent to `db.write` with `dry_run: false` (the engine's confirmation is not in the
/// way here: these test the hub itself).
fn write_corpus() -> Vec<(Expect, &'static str)> {
    vec![
        (Refused, "DELETE FROM customers WHERE id = 1"),
        (Refused, "DROP TABLE customers"),
        (Refused, "TRUNCATE customers"),
        (Refused, "ALTER TABLE customers DROP COLUMN name"),
        (Refused, "GRANT INSERT ON customers TO PUBLIC"),
        (Refused, "COPY customers FROM '/tmp/x'"),
        (Refused, "SELECT 1"),
        (Refused, "INSERT INTO customers (name) VALUES ('x'); DELETE FROM customers"),
        (Refused, "UPDATE customers SET name = 'x' WHERE id = 1; DROP TABLE orders"),
        (Refused, "INSERT INTO customers (name, tenant_id) VALUES ('x', 'globex')"),
        (Refused, "UPDATE customers SET tenant_id = 'globex' WHERE id = 1"),
        (Refused, "UPDATE customers SET (name, tenant_id) = ('x', 'globex') WHERE id = 1"),
        (Refused, "UPDATE customers SET name = 'pwned'"),
        (Refused, "INSERT INTO secrets (value) VALUES ('x')"),
        (Refused, "INSERT INTO countries (code, name) VALUES ('XX', 'x')"),
        (Refused, "UPDATE order_totals SET total = 0 WHERE true"),
        (Refused, "INSERT INTO customers (name) VALUES ('x') ON CONFLICT (id) DO UPDATE SET name = 'y'"),
        (Refused, "INSERT INTO customers (name) VALUES ('x') ON CONFLICT DO NOTHING"),
        (Refused, "INSERT INTO customers (name) VALUES ('x') RETURNING *"),
        (Refused, "UPDATE customers SET name = 'x' WHERE id = 1 RETURNING secret_note"),
        (Refused, "INSERT INTO customers (name) SELECT value FROM secrets"),
        (Refused, "UPDATE customers SET name = (SELECT value FROM secrets LIMIT 1) WHERE id = 1"),
        (Refused, "UPDATE customers SET name = 'x' WHERE secret_note LIKE '%'"),
        (Refused, "UPDATE customers SET secret_note = 'x' WHERE true"),
        (Refused, "INSERT INTO customers (secret_note, name) VALUES ('x', 'y')"),
        (Refused, "UPDATE customers SET name = pg_sleep(1)::text WHERE true"),
        (Refused, "UPDATE customers SET name = 'x' WHERE boom() = 1"),
        (Refused, "WITH x AS (DELETE FROM customers RETURNING *) INSERT INTO customers (name) SELECT name FROM x"),
        (Refused, "INSERT INTO customers (name) WITH x AS (DELETE FROM orders RETURNING 1) SELECT 'y' FROM x"),
        (Refused, "MERGE INTO customers c USING countries k ON false WHEN NOT MATCHED THEN INSERT (name) VALUES ('x')"),
        (Refused, "INSERT INTO customers DEFAULT VALUES"),
        (Refused, "INSERT INTO customers VALUES (100, 'globex', 'x', 'y', 'z')"),
        (Refused, "UPDATE pg_catalog.pg_authid SET rolsuper = true WHERE true"),
        (Refused, "UPDATE customers SET name = 'x' FROM secrets WHERE true"),
        (Refused, "UPDATE customers SET name = 'x' WHERE id = 1 FOR UPDATE"),
        (Contained, "UPDATE customers SET name = 'pwned' WHERE tenant_id = 'globex'"),
        (Contained, "UPDATE customers SET name = 'pwned' WHERE id = 3"),
        (Contained, "UPDATE customers c SET name = 'pwned' FROM customers g WHERE g.tenant_id = 'globex' AND c.id = g.id"),
        (Contained, "UPDATE orders SET total = 0 WHERE customer_id IN (SELECT id FROM customers WHERE name LIKE 'Glob%')"),
        (Contained, "INSERT INTO orders (customer_id, total) VALUES (3, 1)"),
    ]
}

#[tokio::test]
async fn hostile_statements_are_refused_or_contained() {
    let db = HostDb::new().await;
    let hub = db
        .builder()
        .statement_timeout(Duration::from_millis(1500))
        .max_rows(100)
        .build()
        .await
        .unwrap();
    let globex = |t: &str| {
        format!("SELECT coalesce(string_agg(x::text, '|' ORDER BY x::text), '') FROM {{s}}.{t} x WHERE tenant_id = 'globex'")
    };
    let watched = ["secrets", "countries"];
    let mut before = Vec::new();
    for t in watched {
        before.push(db.snapshot(t).await);
    }
    let globex_before = (
        scalar_text(&db, &globex("customers")).await,
        scalar_text(&db, &globex("orders")).await,
    );
    let objects = "SELECT count(*) FROM pg_class WHERE relnamespace = to_regnamespace('{s}')";
    let objects_before = db
        .scalar_i64(&objects.replace("'{s}'", &format!("'{}'", db.schema)))
        .await;

    // The markers are what a leak would show: globex itself reads them.
    let own = hub
        .execute(
            QUERY,
            json!({"sql": "SELECT c.name, o.tenant_id, o.total FROM orders o JOIN customers c ON c.id = o.customer_id"}),
            &ctx("globex"),
        )
        .await
        .unwrap()["rows"]
        .to_string();
    assert!(
        own.contains(CANARY) && own.contains("globex") && own.contains("999.99"),
        "{own}"
    );

    let reads = read_corpus(&db.schema);
    let writes = write_corpus();
    assert!(reads.len() + writes.len() >= 60);
    let mut failures = Vec::new();
    let cases = reads
        .iter()
        .map(|(e, sql)| (*e, QUERY, sql.as_str(), json!({ "sql": sql })))
        .chain(writes.iter().flat_map(|(e, sql)| {
            [
                (*e, WRITE, *sql, json!({ "sql": sql, "dry_run": false })),
                (*e, PREVIEW_WRITE, *sql, json!({ "sql": sql })),
            ]
        }));
    for (expect, tool, sql, args) in cases {
        let outcome = hub.execute(tool, args, &ctx("acme")).await;
        let shown = match &outcome {
            Ok(v) => v.to_string(),
            Err(e) => e.to_string(),
        };
        let refused = matches!(&outcome, Err(logline_core::Error::PolicyDenied { policy_id, .. })
            if policy_id.as_deref() == Some(SQL_SAFETY_POLICY));
        let acceptable = match (&outcome, expect) {
            (_, Refused) => refused,
            (Ok(_), Contained) => true,
            (Err(e), Contained) => matches!(
                e.kind(),
                ErrorKind::PolicyDenied | ErrorKind::ToolFailed | ErrorKind::InvalidInput
            ),
        };
        // Shown with --nocapture: what each case met.
        eprintln!(
            "{tool} {expect:?} {sql:.80?} -> {}",
            logline_core::text::prefix(&shown, 160)
        );
        // Rows read back hold nothing of the other tenant (its id, its order's total).
        let foreign_rows = matches!(&outcome, Ok(v) if {
            let rows = v["rows"].to_string();
            rows.contains("globex") || rows.contains("999.99")
        });
        if !acceptable || shown.contains(CANARY) || foreign_rows {
            failures.push(format!("{tool} {expect:?} {sql:?} -> {shown}"));
        }
    }
    assert!(
        failures.is_empty(),
        "{} cases failed:\n{}",
        failures.len(),
        failures.join("\n")
    );

    for (t, was) in watched.iter().zip(before) {
        assert_eq!(db.snapshot(t).await, was, "{t} unchanged");
    }
    assert_eq!(
        (
            scalar_text(&db, &globex("customers")).await,
            scalar_text(&db, &globex("orders")).await,
        ),
        globex_before,
        "the other tenant's rows are unchanged"
    );
    assert_eq!(
        db.scalar_i64(&objects.replace("'{s}'", &format!("'{}'", db.schema)))
            .await,
        objects_before,
        "no relation was created"
    );
    // Every setting the tools made was transaction-local: the pooled sessions are clean.
    for _ in 0..4 {
        let (tenant, path, read_only): (Option<String>, String, String) = sqlx::query_as(
            "SELECT nullif(current_setting('logline.tenant_id', true), ''), \
                    current_setting('search_path'), current_setting('transaction_read_only')",
        )
        .fetch_one(&db.pool)
        .await
        .unwrap();
        assert_eq!(tenant, None);
        assert!(path.contains("public"), "{path}");
        assert_eq!(read_only, "off");
    }
}

async fn scalar_text(db: &HostDb, sql: &str) -> String {
    let sql = sql.replace("{s}", &format!("\"{}\"", db.schema));
    sqlx::query_scalar(&sql).fetch_one(&db.pool).await.unwrap()
}
