//! The core tool hub conformance suite on `ComposioToolHub` against the fake server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "support/fake_server.rs"]
mod fake_server;

use std::sync::Arc;
use std::time::Duration;

use fake_server::{FakeComposio, FakeState};
use logline_composio::{ComposioConfig, ComposioToolHub};
use logline_core::conformance::hub::{HubCapabilities, HubFixture, SeenExecution, TENANT, USER};
use logline_core::run::Subject;
use logline_core::tool::{Connection, ToolHub};
use serde_json::{json, Value};

/// A generated catalog of 30 tools; the echo tool is any of them (the fake answers with the
/// arguments it received and fails on `"fail": true`).
struct ComposioFixture {
    fake: FakeComposio,
    hub: ComposioToolHub,
}

impl HubFixture for ComposioFixture {
    fn hub(&self) -> &dyn ToolHub {
        &self.hub
    }
    fn echo_tool(&self) -> String {
        "ACMECRM_LIST_ITEM".into()
    }
    fn valid_arguments(&self) -> Value {
        json!({"item_id": "42", "limit": 5})
    }
    fn invalid_arguments(&self) -> Value {
        json!({"item_id": 42})
    }
    fn connected_user(&self) -> (Subject, Vec<Connection>) {
        let conn = |toolkit: &str, account: &str| Connection {
            toolkit: toolkit.into(),
            account_id: account.into(),
            active: true,
        };
        (
            Subject::tenant(TENANT).with_user(USER),
            vec![conn("github", "ca_github"), conn("gmail", "ca_gmail")],
        )
    }
    fn seen(&self) -> Vec<SeenExecution> {
        self.fake
            .lock()
            .executions
            .iter()
            .map(|(slug, body)| SeenExecution {
                tool_id: slug.clone(),
                arguments: body["arguments"].clone(),
                // Composio acts for the tenant-qualified user; the check asks for the user.
                user_id: body["user_id"].as_str().map(|u| {
                    u.strip_prefix(&format!("{TENANT}:"))
                        .unwrap_or(u)
                        .to_string()
                }),
                idempotency_key: None,
            })
            .collect()
    }
}

async fn composio() -> Arc<dyn HubFixture> {
    let mut state = FakeState::generated(30, 3);
    state.validate_arguments = true;
    let user = format!("{TENANT}:{USER}");
    state.add_account("ca_github", &user, "github", "ACTIVE", false);
    state.add_account("ca_gmail", &user, "gmail", "ACTIVE", false);
    state.add_account("ca_slack", &user, "slack", "ACTIVE", true);
    state.add_account("ca_notion", &user, "notion", "EXPIRED", false);
    state.add_account("ca_same_name", USER, "jira", "ACTIVE", false);
    state.add_account("ca_other", "someone-else", "jira", "ACTIVE", false);
    let fake = FakeComposio::start(state).await;
    let config = ComposioConfig::builder("test-key")
        .base_url(&fake.base_url)
        .retry_backoff(Duration::from_millis(1), Duration::from_millis(5))
        .build()
        .unwrap();
    let hub = ComposioToolHub::new(config).unwrap();
    Arc::new(ComposioFixture { fake, hub })
}

mod composio_checks {
    use super::*;
    // Composio's execute endpoint takes no idempotency key.
    logline_core::hub_conformance_tests!(
        composio(),
        HubCapabilities {
            idempotency_keys: false,
            ..HubCapabilities::all()
        }
    );
}
