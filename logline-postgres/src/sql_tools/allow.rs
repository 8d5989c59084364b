//! The functions and types a model's SQL may use: side-effect-free built-ins only. Anything
//! else (`pg_sleep`, `set_config`, `current_setting`, `pg_read_file`, `dblink`, `lo_*`,
//! `nextval`, `txid_*`, `pg_advisory_lock`, user functions, ...) is refused.

/// Scalar, aggregate and window functions.
const FUNCTIONS: &[&str] = &[
    // aggregates
    "count",
    "sum",
    "avg",
    "min",
    "max",
    "string_agg",
    "array_agg",
    "json_agg",
    "jsonb_agg",
    "json_object_agg",
    "jsonb_object_agg",
    "bool_and",
    "bool_or",
    "every",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "variance",
    "var_pop",
    "var_samp",
    "corr",
    "covar_pop",
    "covar_samp",
    "percentile_cont",
    "percentile_disc",
    "mode",
    "bit_and",
    "bit_or",
    // window
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "lag",
    "lead",
    "first_value",
    "last_value",
    "nth_value",
    // conditional
    "coalesce",
    "nullif",
    "greatest",
    "least",
    // text
    "lower",
    "upper",
    "initcap",
    "length",
    "char_length",
    "character_length",
    "octet_length",
    "substr",
    "substring",
    "left",
    "right",
    "trim",
    "btrim",
    "ltrim",
    "rtrim",
    "lpad",
    "rpad",
    "replace",
    "translate",
    "concat",
    "concat_ws",
    "position",
    "strpos",
    "split_part",
    "starts_with",
    "reverse",
    "to_char",
    "to_number",
    "format",
    "quote_literal",
    "regexp_replace",
    "regexp_match",
    "regexp_like",
    "regexp_count",
    "regexp_substr",
    "unaccent",
    "ascii",
    "chr",
    // numbers
    "abs",
    "round",
    "ceil",
    "ceiling",
    "floor",
    "trunc",
    "sign",
    "mod",
    "div",
    "power",
    "pow",
    "sqrt",
    "cbrt",
    "exp",
    "ln",
    "log",
    "log10",
    "pi",
    "width_bucket",
    "gcd",
    "lcm",
    // dates and times
    "now",
    "current_date",
    "current_time",
    "current_timestamp",
    "localtime",
    "localtimestamp",
    "statement_timestamp",
    "transaction_timestamp",
    "date_trunc",
    "date_part",
    "date_bin",
    "extract",
    "age",
    "make_date",
    "make_time",
    "make_timestamp",
    "make_timestamptz",
    "make_interval",
    "to_date",
    "to_timestamp",
    "justify_days",
    "justify_hours",
    "justify_interval",
    "isfinite",
    // arrays and JSON
    "array_length",
    "cardinality",
    "array_position",
    "array_positions",
    "array_to_string",
    "array_remove",
    "array_append",
    "array_prepend",
    "array_cat",
    "to_json",
    "to_jsonb",
    "json_build_object",
    "jsonb_build_object",
    "json_build_array",
    "jsonb_build_array",
    "json_array_length",
    "jsonb_array_length",
    "json_typeof",
    "jsonb_typeof",
    "json_extract_path",
    "jsonb_extract_path",
    "json_extract_path_text",
    "jsonb_extract_path_text",
    "jsonb_strip_nulls",
    "jsonb_pretty",
    "jsonb_path_exists",
    "jsonb_path_query_first",
    // misc
    "gen_random_uuid",
    "md5",
];

/// Set-returning functions allowed in `FROM` (besides [`FUNCTIONS`] that return one row).
const TABLE_FUNCTIONS: &[&str] = &[
    "generate_series",
    "unnest",
    "json_array_elements",
    "jsonb_array_elements",
    "json_array_elements_text",
    "jsonb_array_elements_text",
    "json_each",
    "jsonb_each",
    "json_each_text",
    "jsonb_each_text",
    "json_object_keys",
    "jsonb_object_keys",
    "regexp_split_to_table",
    "regexp_matches",
    "jsonb_path_query",
];

/// Type names a value may be cast to (`::type`, `CAST`, typed literals).
const TYPES: &[&str] = &[
    "smallint",
    "integer",
    "int",
    "int2",
    "int4",
    "int8",
    "bigint",
    "real",
    "float",
    "float4",
    "float8",
    "double precision",
    "double",
    "numeric",
    "decimal",
    "text",
    "varchar",
    "character varying",
    "char",
    "character",
    "bpchar",
    "boolean",
    "bool",
    "date",
    "time",
    "timetz",
    "timestamp",
    "timestamptz",
    "timestamp with time zone",
    "timestamp without time zone",
    "time with time zone",
    "time without time zone",
    "interval",
    "uuid",
    "json",
    "jsonb",
    "money",
];

/// Whether a model may call `name` (already lowercased, unqualified) as a scalar, aggregate
/// or window function.
pub(crate) fn function_allowed(name: &str) -> bool {
    FUNCTIONS.contains(&name)
}

/// Whether a model may call `name` in `FROM`.
pub(crate) fn table_function_allowed(name: &str) -> bool {
    TABLE_FUNCTIONS.contains(&name) || FUNCTIONS.contains(&name)
}

/// Whether a model may cast to the type printed as `ty` (`integer`, `varchar(20)`,
/// `numeric(10,2)[]`, ...).
pub(crate) fn type_allowed(ty: &str) -> bool {
    let t = ty.trim().to_ascii_lowercase();
    let t = t.trim_end_matches("[]");
    let base = match t.find('(') {
        Some(i) => {
            let (head, tail) = t.split_at(i);
            // `timestamp(3) with time zone`: keep the words after the modifier.
            let rest = tail.find(')').map(|j| &tail[j + 1..]).unwrap_or("");
            format!("{}{}", head.trim_end(), rest)
        }
        None => t.to_string(),
    };
    TYPES.contains(&base.trim())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lists() {
        assert!(function_allowed("count"));
        for bad in [
            "pg_sleep",
            "set_config",
            "current_setting",
            "pg_read_file",
            "dblink",
            "lo_import",
            "nextval",
            "txid_current",
            "pg_advisory_lock",
            "version",
        ] {
            assert!(
                !function_allowed(bad) && !table_function_allowed(bad),
                "{bad}"
            );
        }
        assert!(table_function_allowed("generate_series"));
        assert!(type_allowed("NUMERIC(10,2)"));
        assert!(type_allowed("timestamp(3) with time zone"));
        assert!(type_allowed("text[]"));
        for bad in [
            "regclass", "oid", "regproc", "xml", "pg_lsn", "tsvector", "bytea",
        ] {
            assert!(!type_allowed(bad), "{bad}");
        }
    }
}
