//! [`DefinitionStore`] and [`PolicySource`] for [`PgStore`]: workflows (versioned), tools,
//! agents, policies.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Instant;

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use logline_core::agent::Agent;
use logline_core::policy::{Policy, PolicySource};
use logline_core::store::{DefinitionStore, Page, ToolQuery};
use logline_core::tool::ToolSpec;
use logline_core::workflow::{Workflow, WorkflowDefinition};
use logline_core::{Error, Result};
use serde_json::Value;
use sqlx::postgres::{PgPool, PgRow};
use sqlx::Row;

use super::PgStore;
use crate::codec::{enum_str, join, page_args, split, to_json};
use crate::error::{corrupt, db};

/// Rows per statement when writing tool batches.
const TOOL_CHUNK: usize = 1_000;

fn decode_workflow(row: &PgRow) -> Result<Workflow> {
    let definition: Value = row.try_get("definition").map_err(db)?;
    let extra: Value = row.try_get("extra").map_err(db)?;
    join("workflow", extra, [("definition", definition)])
}

fn decode_spec<T: serde::de::DeserializeOwned>(what: &str, row: &PgRow) -> Result<T> {
    let spec: Value = row.try_get("spec").map_err(db)?;
    serde_json::from_value(spec).map_err(|e| corrupt(format!("{what}: {e}")))
}

/// The `spec` document of the row with `id` in `table`, decoded.
async fn spec_by_id<T: serde::de::DeserializeOwned>(
    pool: &PgPool,
    table: &str,
    entity: &'static str,
    id: &str,
) -> Result<T> {
    let row = sqlx::query(&format!("SELECT spec FROM {table} WHERE id = $1"))
        .bind(id)
        .fetch_optional(pool)
        .await
        .map_err(db)?
        .ok_or_else(|| Error::not_found(entity, id))?;
    decode_spec(entity, &row)
}

async fn enabled_policies(pool: &PgPool) -> Result<Vec<Policy>> {
    let rows = sqlx::query("SELECT spec FROM policies WHERE enabled ORDER BY id")
        .fetch_all(pool)
        .await
        .map_err(db)?;
    rows.iter().map(|r| decode_spec("policy", r)).collect()
}

#[async_trait]
impl DefinitionStore for PgStore {
    async fn put_workflow(&self, workflow: &Workflow) -> Result<()> {
        let ([definition], extra) = split(workflow, ["definition"])?;
        let inserted = sqlx::query(
            "INSERT INTO workflows (id, version, name, definition, extra, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (id, version) DO NOTHING",
        )
        .bind(&workflow.id)
        .bind(&workflow.version)
        .bind(&workflow.name)
        .bind(&definition)
        .bind(&extra)
        .bind(workflow.created_at)
        .execute(&self.db.pool)
        .await
        .map_err(db)?
        .rows_affected();
        if inserted == 1 {
            return Ok(());
        }
        let existing: Option<Value> =
            sqlx::query_scalar("SELECT definition FROM workflows WHERE id = $1 AND version = $2")
                .bind(&workflow.id)
                .bind(&workflow.version)
                .fetch_optional(&self.db.pool)
                .await
                .map_err(db)?;
        let same = match existing {
            Some(v) => {
                let stored: WorkflowDefinition = serde_json::from_value(v)
                    .map_err(|e| corrupt(format!("workflow definition: {e}")))?;
                stored == workflow.definition
            }
            // Deleted between the two statements: store it again.
            None => return self.put_workflow(workflow).await,
        };
        if same {
            Ok(())
        } else {
            Err(Error::Conflict(format!(
                "workflow {} version {} already exists with another definition",
                workflow.id, workflow.version
            )))
        }
    }

    async fn get_workflow(&self, id: &str, version: Option<&str>) -> Result<Workflow> {
        let row = match version {
            Some(v) => sqlx::query(
                "SELECT definition, extra FROM workflows WHERE id = $1 AND version = $2",
            )
            .bind(id)
            .bind(v)
            .fetch_optional(&self.db.pool)
            .await
            .map_err(db)?,
            None => sqlx::query(
                "SELECT definition, extra FROM workflows WHERE id = $1
                 ORDER BY registered_seq DESC LIMIT 1",
            )
            .bind(id)
            .fetch_optional(&self.db.pool)
            .await
            .map_err(db)?,
        };
        match row {
            Some(r) => decode_workflow(&r),
            None => Err(match version {
                Some(v) => Error::not_found("workflow", format!("{id}@{v}")),
                None => Error::not_found("workflow", id),
            }),
        }
    }

    async fn latest_workflow_version(&self, id: &str) -> Result<String> {
        sqlx::query_scalar(
            "SELECT version FROM workflows WHERE id = $1 ORDER BY registered_seq DESC LIMIT 1",
        )
        .bind(id)
        .fetch_optional(&self.db.pool)
        .await
        .map_err(db)?
        .ok_or_else(|| Error::not_found("workflow", id))
    }

    async fn list_workflows(&self, page: Page) -> Result<Vec<Workflow>> {
        let (offset, limit) = page_args(page);
        let rows = sqlx::query(
            "SELECT DISTINCT ON (id) definition, extra FROM workflows
             ORDER BY id, registered_seq DESC OFFSET $1 LIMIT $2",
        )
        .bind(offset)
        .bind(limit)
        .fetch_all(&self.db.pool)
        .await
        .map_err(db)?;
        rows.iter().map(decode_workflow).collect()
    }

    async fn delete_workflow(&self, id: &str) -> Result<()> {
        let n = sqlx::query("DELETE FROM workflows WHERE id = $1")
            .bind(id)
            .execute(&self.db.pool)
            .await
            .map_err(db)?
            .rows_affected();
        if n == 0 {
            return Err(Error::not_found("workflow", id));
        }
        Ok(())
    }

    async fn put_tools(&self, tools: &[ToolSpec]) -> Result<()> {
        // The last spec of an id wins, as if written one by one.
        let mut last: HashMap<&str, usize> = HashMap::with_capacity(tools.len());
        for (i, t) in tools.iter().enumerate() {
            last.insert(t.id.as_str(), i);
        }
        let unique: Vec<&ToolSpec> = tools
            .iter()
            .enumerate()
            .filter(|(i, t)| last.get(t.id.as_str()) == Some(i))
            .map(|(_, t)| t)
            .collect();
        for chunk in unique.chunks(TOOL_CHUNK) {
            let mut ids = Vec::with_capacity(chunk.len());
            let mut names = Vec::with_capacity(chunk.len());
            let mut toolkits: Vec<Option<String>> = Vec::with_capacity(chunk.len());
            let mut hubs = Vec::with_capacity(chunk.len());
            let mut risks = Vec::with_capacity(chunk.len());
            let mut confirm = Vec::with_capacity(chunk.len());
            let mut specs = Vec::with_capacity(chunk.len());
            let mut updated: Vec<DateTime<Utc>> = Vec::with_capacity(chunk.len());
            for t in chunk {
                ids.push(t.id.clone());
                names.push(t.name.clone());
                toolkits.push(t.toolkit.clone());
                hubs.push(t.hub.clone());
                risks.push(t.risk_level.as_str().to_string());
                confirm.push(t.requires_confirmation);
                specs.push(to_json(t)?);
                updated.push(t.updated_at);
            }
            sqlx::query(
                "INSERT INTO tools (id, name, toolkit, hub, risk_level, tags, side_effects,
                                    requires_confirmation, spec, updated_at)
                 SELECT t.id, t.name, t.toolkit, t.hub, t.risk_level,
                        ARRAY(SELECT jsonb_array_elements_text(COALESCE(t.spec->'tags', '[]'))),
                        ARRAY(SELECT jsonb_array_elements_text(COALESCE(t.spec->'side_effects', '[]'))),
                        t.confirm, t.spec, t.updated_at
                 FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[],
                             $6::bool[], $7::jsonb[], $8::timestamptz[])
                      AS t(id, name, toolkit, hub, risk_level, confirm, spec, updated_at)
                 ON CONFLICT (id) DO UPDATE SET
                     name = EXCLUDED.name, toolkit = EXCLUDED.toolkit, hub = EXCLUDED.hub,
                     risk_level = EXCLUDED.risk_level, tags = EXCLUDED.tags,
                     side_effects = EXCLUDED.side_effects,
                     requires_confirmation = EXCLUDED.requires_confirmation,
                     spec = EXCLUDED.spec, updated_at = EXCLUDED.updated_at, stored_at = now()",
            )
            .bind(&ids)
            .bind(&names)
            .bind(&toolkits)
            .bind(&hubs)
            .bind(&risks)
            .bind(&confirm)
            .bind(&specs)
            .bind(&updated)
            .execute(&self.db.pool)
            .await
            .map_err(db)?;
        }
        Ok(())
    }

    async fn get_tool(&self, id: &str) -> Result<ToolSpec> {
        spec_by_id(&self.db.pool, "tools", "tool", id).await
    }

    async fn list_tools(&self, query: &ToolQuery) -> Result<Vec<ToolSpec>> {
        let (offset, limit) = page_args(query.page);
        // One statement per filter shape, so each gets a plan that uses its index.
        let sql = match (&query.toolkit, &query.hub) {
            (None, None) => "SELECT spec FROM tools ORDER BY id OFFSET $1 LIMIT $2",
            (Some(_), None) => {
                "SELECT spec FROM tools WHERE toolkit = $3 ORDER BY id OFFSET $1 LIMIT $2"
            }
            (None, Some(_)) => {
                "SELECT spec FROM tools WHERE hub = $3 ORDER BY id OFFSET $1 LIMIT $2"
            }
            (Some(_), Some(_)) => {
                "SELECT spec FROM tools WHERE toolkit = $3 AND hub = $4
                 ORDER BY id OFFSET $1 LIMIT $2"
            }
        };
        let mut q = sqlx::query(sql).bind(offset).bind(limit);
        if let Some(t) = &query.toolkit {
            q = q.bind(t);
        }
        if let Some(h) = &query.hub {
            q = q.bind(h);
        }
        let rows = q.fetch_all(&self.db.pool).await.map_err(db)?;
        rows.iter().map(|r| decode_spec("tool", r)).collect()
    }

    async fn delete_tool(&self, id: &str) -> Result<()> {
        let n = sqlx::query("DELETE FROM tools WHERE id = $1")
            .bind(id)
            .execute(&self.db.pool)
            .await
            .map_err(db)?
            .rows_affected();
        if n == 0 {
            return Err(Error::not_found("tool", id));
        }
        Ok(())
    }

    async fn put_agent(&self, agent: &Agent) -> Result<()> {
        sqlx::query(
            "INSERT INTO agents (id, name, allowed_tools, spec) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name,
                 allowed_tools = EXCLUDED.allowed_tools, spec = EXCLUDED.spec, updated_at = now()",
        )
        .bind(&agent.id)
        .bind(&agent.name)
        .bind(&agent.allowed_tools)
        .bind(to_json(agent)?)
        .execute(&self.db.pool)
        .await
        .map_err(db)?;
        Ok(())
    }

    async fn get_agent(&self, id: &str) -> Result<Agent> {
        spec_by_id(&self.db.pool, "agents", "agent", id).await
    }

    async fn list_agents(&self, page: Page) -> Result<Vec<Agent>> {
        let (offset, limit) = page_args(page);
        let rows = sqlx::query("SELECT spec FROM agents ORDER BY id OFFSET $1 LIMIT $2")
            .bind(offset)
            .bind(limit)
            .fetch_all(&self.db.pool)
            .await
            .map_err(db)?;
        rows.iter().map(|r| decode_spec("agent", r)).collect()
    }

    async fn put_policy(&self, policy: &Policy) -> Result<()> {
        let res = sqlx::query(
            "INSERT INTO policies (id, name, scope, scope_id, effect, priority, enabled, spec)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, scope = EXCLUDED.scope,
                 scope_id = EXCLUDED.scope_id, effect = EXCLUDED.effect,
                 priority = EXCLUDED.priority, enabled = EXCLUDED.enabled,
                 spec = EXCLUDED.spec, updated_at = now()",
        )
        .bind(&policy.id)
        .bind(&policy.name)
        .bind(enum_str(&policy.scope)?)
        .bind(&policy.scope_id)
        .bind(enum_str(&policy.effect)?)
        .bind(policy.priority)
        .bind(policy.enabled)
        .bind(to_json(policy)?)
        .execute(&self.db.pool)
        .await;
        self.db.invalidate_policies();
        res.map_err(db)?;
        Ok(())
    }

    async fn list_policies(&self) -> Result<Vec<Policy>> {
        let rows = sqlx::query("SELECT spec FROM policies ORDER BY id")
            .fetch_all(&self.db.pool)
            .await
            .map_err(db)?;
        rows.iter().map(|r| decode_spec("policy", r)).collect()
    }

    async fn delete_policy(&self, id: &str) -> Result<()> {
        let res = sqlx::query("DELETE FROM policies WHERE id = $1")
            .bind(id)
            .execute(&self.db.pool)
            .await;
        self.db.invalidate_policies();
        if res.map_err(db)?.rows_affected() == 0 {
            return Err(Error::not_found("policy", id));
        }
        Ok(())
    }
}

#[async_trait]
impl PolicySource for PgStore {
    /// Enabled policies ordered by id, cached for [`PgConfig::policy_cache_ttl`] (writes
    /// through this store invalidate the cache at once).
    ///
    /// [`PgConfig::policy_cache_ttl`]: crate::PgConfig::policy_cache_ttl
    async fn policies(&self) -> Result<Arc<Vec<Policy>>> {
        let ttl = self.db.config.policy_cache_ttl;
        // The cache is one `Option` replaced whole, so a poisoned lock still holds a
        // consistent value.
        let cache = || {
            self.db
                .policy_cache
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
        };
        let cached = cache()
            .as_ref()
            .filter(|(at, _)| at.elapsed() < ttl)
            .map(|(_, list)| Arc::clone(list));
        if let Some(list) = cached {
            return Ok(list);
        }
        let generation = self.db.policy_gen.load(Ordering::SeqCst);
        let list = Arc::new(enabled_policies(&self.db.pool).await?);
        if self.db.policy_gen.load(Ordering::SeqCst) == generation {
            *cache() = Some((Instant::now(), Arc::clone(&list)));
        }
        Ok(list)
    }
}
