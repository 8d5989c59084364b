//! The tenant boundary: an [`Engine`] seen through one authenticated [`Principal`].
//!
//! Every run operation of a [`ScopedEngine`] first reads the run and compares its subject's
//! tenant with the principal's; a run of another tenant is reported exactly like a run that
//! does not exist (`NotFound` for `run <id>`), so nothing about it leaks. A run's subject is
//! fixed at creation, so the check cannot go stale before the operation it guards.
//!
//! Definitions (workflows, agents, tools, policies) are global: they are registered only
//! through the unscoped [`Engine`] by trusted host code, and tenants tell them apart through
//! policies on `subject.tenant_id`.

use futures::stream::BoxStream;
use serde::{Deserialize, Serialize};

use crate::engine::{Engine, Progress, StartRun};
use crate::error::{Error, Result};
use crate::event::Event;
use crate::run::{PendingGate, Run, RunId, Step};
use crate::store::RunFilter;

/// Who calls, as the host authenticated them (from a session or token, never from a request
/// body).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Principal {
    /// Tenant the caller belongs to.
    pub tenant_id: String,
    /// The authenticated user; `None` for a service acting for the tenant.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_id: Option<String>,
    /// Roles the caller holds (`admin`, `approver`, ...).
    #[serde(default)]
    pub roles: Vec<String>,
}

impl Principal {
    /// User `user_id` of `tenant_id`, with no roles.
    pub fn user(tenant_id: impl Into<String>, user_id: impl Into<String>) -> Self {
        Principal {
            tenant_id: tenant_id.into(),
            user_id: Some(user_id.into()),
            roles: Vec::new(),
        }
    }

    /// A service of `tenant_id` (no user), with no roles.
    pub fn service(tenant_id: impl Into<String>) -> Self {
        Principal {
            tenant_id: tenant_id.into(),
            ..Default::default()
        }
    }

    /// Adds a role.
    pub fn with_role(mut self, role: impl Into<String>) -> Self {
        self.roles.push(role.into());
        self
    }

    /// Whether the principal holds `role`.
    pub fn has_role(&self, role: &str) -> bool {
        self.roles.iter().any(|r| r == role)
    }
}

/// Who may decide (approve or deny) a gate through a [`ScopedEngine`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalRules {
    /// Roles, any of which decides a gate that names no `required_role`.
    pub approver_roles: Vec<String>,
    /// Whether no gate may be approved by the run's own subject user (a gate can also ask
    /// for it with `forbid_self_approval`).
    #[serde(default)]
    pub forbid_self_approval: bool,
}

impl Default for ApprovalRules {
    /// Approvers are `admin` or `approver`; self-approval only where a gate forbids it.
    fn default() -> Self {
        ApprovalRules {
            approver_roles: vec!["admin".into(), "approver".into()],
            forbid_self_approval: false,
        }
    }
}

/// An [`Engine`] through which one [`Principal`] acts: only the principal's tenant's runs
/// exist for it, and runs it starts act for the principal. Cheap to clone.
#[derive(Debug, Clone)]
pub struct ScopedEngine {
    engine: Engine,
    principal: Principal,
}

impl Engine {
    /// The engine as `principal` may use it (see [`ScopedEngine`]). The unscoped methods of
    /// `Engine` stay for trusted host code (workers, administration, registration).
    pub fn scoped(&self, principal: Principal) -> ScopedEngine {
        ScopedEngine {
            engine: self.clone(),
            principal,
        }
    }
}

impl ScopedEngine {
    /// Who acts.
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The unscoped engine (crate-internal: scoped operations build on it).
    pub(crate) fn engine(&self) -> &Engine {
        &self.engine
    }

    /// Starts a run for the principal: the subject's tenant and user are the principal's,
    /// whatever the request says; its role must be one the principal holds (default: the
    /// principal's first role). The app id is taken from the request.
    pub async fn start_run(&self, mut req: StartRun) -> Result<Run> {
        let p = &self.principal;
        req.subject.role = match req.subject.role.take() {
            Some(role) if p.has_role(&role) => Some(role),
            Some(role) => {
                return Err(Error::PolicyDenied {
                    policy_id: None,
                    reason: format!("the caller does not hold the role `{role}`"),
                })
            }
            None => p.roles.first().cloned(),
        };
        req.subject.tenant_id.clone_from(&p.tenant_id);
        req.subject.user_id.clone_from(&p.user_id);
        self.engine.start_run(req).await
    }

    /// A run of the principal's tenant.
    pub async fn get_run(&self, run_id: RunId) -> Result<Run> {
        let run = self.engine.get_run(run_id).await?;
        if run.subject.tenant_id == self.principal.tenant_id {
            Ok(run)
        } else {
            // Exactly what a missing run answers.
            Err(Error::not_found("run", run_id))
        }
    }

    /// Runs of the principal's tenant matching `filter` (its tenant is replaced), newest
    /// first; the store filters by tenant in its query.
    pub async fn list_runs(&self, mut filter: RunFilter) -> Result<Vec<Run>> {
        filter.tenant_id = Some(self.principal.tenant_id.clone());
        self.engine.list_runs(&filter).await
    }

    /// Every event of a run, in order.
    pub async fn events(&self, run_id: RunId) -> Result<Vec<Event>> {
        self.get_run(run_id).await?;
        self.engine.events(run_id).await
    }

    /// Steps of a run.
    pub async fn steps(&self, run_id: RunId) -> Result<Vec<Step>> {
        self.get_run(run_id).await?;
        self.engine.steps(run_id).await
    }

    /// Live events of a run after `after_seq` (see [`Engine::subscribe`]).
    pub async fn subscribe(
        &self,
        run_id: RunId,
        after_seq: u64,
    ) -> Result<BoxStream<'static, Result<Event>>> {
        self.get_run(run_id).await?;
        Ok(self.engine.subscribe(run_id, after_seq))
    }

    /// Live progress of one run: text deltas and tool progress (see [`Engine::progress_of`]).
    pub async fn progress(&self, run_id: RunId) -> Result<BoxStream<'static, Progress>> {
        // Subscribe first so no delta is missed while the run is checked.
        let stream = self.engine.progress_of(run_id);
        self.get_run(run_id).await?;
        Ok(stream)
    }

    /// Waits until the run is terminal or paused, and returns it.
    pub async fn wait(&self, run_id: RunId) -> Result<Run> {
        self.get_run(run_id).await?;
        self.engine.wait(run_id).await
    }

    /// Cancels a run that has not finished (see [`Engine::cancel`]).
    pub async fn cancel(&self, run_id: RunId, reason: &str) -> Result<Run> {
        self.get_run(run_id).await?;
        self.engine.cancel(run_id, reason).await
    }

    /// Approves the gate the run is paused at, in the principal's name. The principal needs
    /// a user, the role the gate requires (else one of the engine's approver roles) and,
    /// where the gate or the engine forbids self-approval, not to be the run's subject user.
    /// Otherwise `PolicyDenied`.
    pub async fn approve(&self, run_id: RunId, gate_id: &str, reason: Option<&str>) -> Result<Run> {
        let run = self.get_run(run_id).await?;
        let approver = self.decider(&run, gate_id, true)?;
        self.engine.approve(run_id, gate_id, approver, reason).await
    }

    /// Denies the gate the run is paused at, in the principal's name; the run fails. Needs
    /// a user and the role, as [`ScopedEngine::approve`] (the run's own user may deny).
    pub async fn deny(&self, run_id: RunId, gate_id: &str, reason: &str) -> Result<Run> {
        let run = self.get_run(run_id).await?;
        let approver = self.decider(&run, gate_id, false)?;
        self.engine.deny(run_id, gate_id, approver, reason).await
    }

    /// Refuses the tool call the run is paused at, in the principal's name; the run goes on
    /// and the model is told the call was refused. Needs what [`ScopedEngine::deny`] needs.
    pub async fn refuse(&self, run_id: RunId, gate_id: &str, reason: Option<&str>) -> Result<Run> {
        let run = self.get_run(run_id).await?;
        let approver = self.decider(&run, gate_id, false)?;
        self.engine.refuse(run_id, gate_id, approver, reason).await
    }

    /// The principal's user id when it may decide `gate_id` of `run`. A gate other than the
    /// pending one is left to the engine to reject, after the default role check.
    fn decider(&self, run: &Run, gate_id: &str, approving: bool) -> Result<&str> {
        let denied = |reason: String| Error::PolicyDenied {
            policy_id: None,
            reason,
        };
        let p = &self.principal;
        let Some(user) = p.user_id.as_deref() else {
            return Err(denied("a gate is decided by an authenticated user".into()));
        };
        let rules = &self.engine.inner.exec.config.approvals;
        let gate: Option<&PendingGate> = run.pending_gate.as_ref().filter(|g| g.gate_id == gate_id);
        match gate.and_then(|g| g.required_role.as_deref()) {
            Some(role) if !p.has_role(role) => {
                return Err(denied(format!("gate `{gate_id}` needs the role `{role}`")));
            }
            Some(_) => {}
            None if !rules.approver_roles.iter().any(|r| p.has_role(r)) => {
                return Err(denied(format!(
                    "deciding gates needs one of the roles: {}",
                    rules.approver_roles.join(", ")
                )));
            }
            None => {}
        }
        let no_self = rules.forbid_self_approval || gate.is_some_and(|g| g.forbid_self_approval);
        if approving && no_self && run.subject.user_id.as_deref() == Some(user) {
            return Err(denied(format!(
                "gate `{gate_id}` may not be approved by the run's own user"
            )));
        }
        Ok(user)
    }
}
