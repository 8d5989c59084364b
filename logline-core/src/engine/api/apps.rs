//! Apps on the engine: importing manifests and running their actions.

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::app::{build_input, ActionRun, App, AppStore, ImportOutcome, Manifest, ManifestError};
use crate::engine::{Engine, ScopedEngine, StartRun};
use crate::error::{Error, ErrorKind, Result};
use crate::run::{RunStatus, Subject};

/// What [`Engine::import_app`] did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ImportReport {
    /// The app.
    pub app_id: String,
    /// The manifest version now stored.
    pub version: String,
    /// Created, updated or unchanged.
    pub outcome: ImportOutcome,
}

impl Engine {
    /// Where imported apps are kept.
    pub fn apps(&self) -> &Arc<dyn AppStore> {
        &self.inner.exec.apps
    }

    /// Imports a manifest (trusted host code): every `workflow_ref` (and pinned version)
    /// must name a registered workflow, then the app is upserted (see
    /// [`AppStore::put_app`]: re-importing the same manifest changes nothing).
    pub async fn import_app(&self, manifest: Manifest) -> Result<ImportReport> {
        manifest.validate()?;
        let mut missing = Vec::new();
        for (i, w) in manifest.app.workflows.iter().enumerate() {
            match self
                .store()
                .get_workflow(&w.workflow_ref, w.version.as_deref())
                .await
            {
                Ok(_) => {}
                Err(e) if e.kind() == ErrorKind::NotFound => missing.extend(
                    ManifestError::at(
                        format!("app.workflows[{i}].workflow_ref"),
                        match &w.version {
                            Some(v) => format!("no workflow `{}` version {v}", w.workflow_ref),
                            None => format!("no workflow `{}` is registered", w.workflow_ref),
                        },
                    )
                    .issues,
                ),
                Err(e) => return Err(e),
            }
        }
        if !missing.is_empty() {
            return Err(ManifestError { issues: missing }.into());
        }
        let app = App::new(manifest)?;
        let outcome = self.apps().put_app(&app).await?;
        Ok(ImportReport {
            app_id: app.id().to_string(),
            version: app.version().to_string(),
            outcome,
        })
    }

    /// [`Engine::import_app`] of a JSON or YAML manifest text.
    pub async fn import_app_text(&self, text: &str) -> Result<ImportReport> {
        self.import_app(Manifest::parse(text)?).await
    }

    /// Runs an app's action for the tenant and user the trusted `context` names
    /// (`tenant_id`, required, and `user_id`): see [`Engine::run_action_as`].
    pub async fn run_action(
        &self,
        app_id: &str,
        action_id: &str,
        event: Value,
        context: Value,
    ) -> Result<ActionRun> {
        let tenant = context
            .get("tenant_id")
            .and_then(Value::as_str)
            .filter(|t| !t.is_empty())
            .ok_or_else(|| Error::InvalidInput("the action context needs a `tenant_id`".into()))?;
        let mut subject = Subject::tenant(tenant);
        subject.user_id = context
            .get("user_id")
            .and_then(Value::as_str)
            .map(String::from);
        self.run_action_as(subject, app_id, action_id, event, context)
            .await
    }

    /// Runs an app's action for `subject`: builds the workflow input from the action's
    /// `input_mapping`, starts a run of its workflow (the app's `default_mode`, tagged with
    /// the app and the action) and executes it in this task until it completes, fails or
    /// pauses. Returns `{run_id, status, result}`.
    pub async fn run_action_as(
        &self,
        mut subject: Subject,
        app_id: &str,
        action_id: &str,
        event: Value,
        context: Value,
    ) -> Result<ActionRun> {
        let app = self.apps().get_app(app_id).await?;
        let (action, wf) = app
            .action(action_id)
            .ok_or_else(|| Error::not_found("app action", format!("{app_id}/{action_id}")))?;
        let input = build_input(&action.input_mapping, &event, &context)?;
        subject.app_id = Some(app.id().to_string());
        let mut req = StartRun::new(wf.workflow_ref.clone(), input, subject).mode(wf.default_mode);
        req.version = wf.version.clone();
        req.app_action_id = Some(action.id.clone());
        let run = self.start_run(req).await?;
        let run = if run.status == RunStatus::Pending {
            self.execute(run.id).await?
        } else {
            run
        };
        Ok(ActionRun {
            run_id: run.id,
            status: run.status,
            result: run.result,
        })
    }
}

impl ScopedEngine {
    /// Runs an app's action for the principal: the run's tenant and user are the
    /// principal's, and so are the context's `tenant_id` and `user_id`, whatever the caller
    /// sent.
    pub async fn run_action(
        &self,
        app_id: &str,
        action_id: &str,
        event: Value,
        context: Value,
    ) -> Result<ActionRun> {
        let p = self.principal();
        let mut ctx = match context {
            Value::Object(m) => m,
            Value::Null => Map::new(),
            _ => {
                return Err(Error::InvalidInput(
                    "the action context is a JSON object".into(),
                ))
            }
        };
        ctx.insert("tenant_id".into(), Value::String(p.tenant_id.clone()));
        match &p.user_id {
            Some(u) => ctx.insert("user_id".into(), Value::String(u.clone())),
            None => ctx.remove("user_id"),
        };
        let mut subject = Subject::tenant(&p.tenant_id);
        subject.user_id = p.user_id.clone();
        subject.role = p.roles.first().cloned();
        self.engine()
            .run_action_as(subject, app_id, action_id, event, Value::Object(ctx))
            .await
    }
}
