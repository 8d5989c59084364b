//! An app's scopes at exposure: a run of an app is offered only the tools its manifest names
//! (and the memory tools when it grants memory), before any call is attempted. The call-time
//! check in the tool runtime stays: exposure narrows what a model sees, the runtime decides
//! what runs.

use std::sync::Arc;

use crate::app::App;
use crate::engine::step::StepCtx;
use crate::error::{ErrorKind, Result};
use crate::tool::ToolSpec;

/// The tools a run of an app may be offered.
pub(crate) struct AppTools {
    /// The app; `None` when it is not installed (nothing is offered).
    app: Option<App>,
    ids: Vec<String>,
}

impl AppTools {
    /// The scope of the step's run: `None` for a run of no app.
    pub(crate) async fn of_run(sc: &StepCtx<'_>) -> Result<Option<Self>> {
        let Some(app_id) = &sc.run.subject.app_id else {
            return Ok(None);
        };
        match sc.exec.apps.get_app(app_id).await {
            Ok(app) => Ok(Some(AppTools {
                ids: app.offered_tool_ids(),
                app: Some(app),
            })),
            Err(e) if e.kind() == ErrorKind::NotFound => Ok(Some(AppTools {
                app: None,
                ids: Vec::new(),
            })),
            Err(e) => Err(e),
        }
    }

    /// The tool ids the app may be offered.
    pub(crate) fn ids(&self) -> &[String] {
        &self.ids
    }

    /// Keeps the tools the app may call.
    pub(crate) fn retain(&self, specs: &mut Vec<Arc<ToolSpec>>) {
        specs.retain(|s| {
            self.app
                .as_ref()
                .is_some_and(|a| a.allows_tool(&s.id, &s.hub))
        });
    }
}
