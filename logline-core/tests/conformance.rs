//! The shared conformance suites on the in-memory backends and the test doubles.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, Mutex};

use logline_core::conformance::hub::{echo, echo_spec, HubFixture, SeenExecution, USER};
use logline_core::conformance::llm::LlmFixture;
use logline_core::llm::Embedder;
use logline_core::memory::{MemoryQueue, MemoryStore};
use logline_core::queue::Queue;
use logline_core::run::Subject;
use logline_core::store::Store;
use logline_core::testing::{FakeEmbedder, FakeToolHub, ScriptedLlm};
use logline_core::tool::{handler, Connection, LocalToolHub, ToolHub};
use serde_json::{json, Value};

async fn store() -> Arc<dyn Store> {
    Arc::new(MemoryStore::new())
}

async fn queue() -> Arc<dyn Queue> {
    Arc::new(MemoryQueue::new())
}

mod store_checks {
    use super::*;
    logline_core::store_conformance_tests!(store());
}

mod queue_checks {
    use super::*;
    logline_core::queue_conformance_tests!(queue());
}

async fn scripted_llm() -> Arc<dyn LlmFixture> {
    Arc::new(ScriptedLlm::new())
}

mod scripted_llm_checks {
    use super::*;
    use logline_core::conformance::llm::LlmCapabilities;
    // The trait's default `stream` sends the text in one delta at the end.
    logline_core::llm_conformance_tests!(
        scripted_llm(),
        LlmCapabilities {
            streaming: false,
            ..LlmCapabilities::all()
        }
    );
}

const ECHO: &str = "conformance.echo";

/// `FakeToolHub` with the echo tool, a few more tools and the user's connections.
struct FakeHubFixture(FakeToolHub);

impl HubFixture for FakeHubFixture {
    fn hub(&self) -> &dyn ToolHub {
        &self.0
    }
    fn echo_tool(&self) -> String {
        ECHO.into()
    }
    fn valid_arguments(&self) -> Value {
        json!({"text": "hello"})
    }
    fn invalid_arguments(&self) -> Value {
        json!({"text": 42})
    }
    fn connected_user(&self) -> (Subject, Vec<Connection>) {
        let conn = |toolkit: &str| Connection {
            toolkit: toolkit.into(),
            account_id: format!("acc_{USER}_{toolkit}"),
            active: true,
        };
        (
            Subject::tenant("conformance").with_user(USER),
            vec![conn("gmail"), conn("github")],
        )
    }
    fn seen(&self) -> Vec<SeenExecution> {
        self.0
            .calls()
            .iter()
            .map(|(tool, args, ctx)| SeenExecution::from_call(tool, args, ctx))
            .collect()
    }
}

async fn fake_hub() -> Arc<dyn HubFixture> {
    let mut hub = FakeToolHub::new("fake")
        .with_page_size(3)
        .tool(echo_spec(ECHO), |args| echo(ECHO, args))
        .connect(USER, "gmail")
        .connect(USER, "github");
    for i in 0..6 {
        let spec = logline_core::tool::ToolSpec::new(
            format!("conformance.tool{i}"),
            "Another tool.",
            json!({"type": "object"}),
        );
        hub = hub.tool(spec, |_| Ok(json!({})));
    }
    Arc::new(FakeHubFixture(hub))
}

mod fake_hub_checks {
    use super::*;
    logline_core::hub_conformance_tests!(fake_hub());
}

type Seen = Arc<Mutex<Vec<SeenExecution>>>;

/// `LocalToolHub` with the echo tool as a handler that records what it received. Handlers
/// are host code: the engine validates arguments before calling them, the hub does not.
struct LocalHubFixture {
    hub: LocalToolHub,
    seen: Seen,
}

impl HubFixture for LocalHubFixture {
    fn hub(&self) -> &dyn ToolHub {
        &self.hub
    }
    fn echo_tool(&self) -> String {
        ECHO.into()
    }
    fn valid_arguments(&self) -> Value {
        json!({"text": "hello"})
    }
    fn invalid_arguments(&self) -> Value {
        json!({"text": 42})
    }
    fn seen(&self) -> Vec<SeenExecution> {
        self.seen.lock().expect("seen").clone()
    }
}

async fn local_hub() -> Arc<dyn HubFixture> {
    let seen: Seen = Arc::default();
    let mut hub = LocalToolHub::new();
    let recorder = seen.clone();
    hub.register(
        echo_spec(ECHO),
        handler(move |args, ctx| {
            let recorder = recorder.clone();
            async move {
                recorder
                    .lock()
                    .expect("seen")
                    .push(SeenExecution::from_call(ECHO, &args, &ctx));
                echo(ECHO, &args)
            }
        }),
    );
    Arc::new(LocalHubFixture { hub, seen })
}

mod local_hub_checks {
    use super::*;
    use logline_core::conformance::hub::HubCapabilities;
    logline_core::hub_conformance_tests!(
        local_hub(),
        HubCapabilities {
            validates_arguments: false,
            connections: false,
            ..HubCapabilities::all()
        }
    );
}

async fn fake_embedder() -> Arc<dyn Embedder> {
    Arc::new(FakeEmbedder::new(64))
}

mod fake_embedder_checks {
    use super::*;
    logline_core::embedder_conformance_tests!(fake_embedder());
}

async fn memory_artifact_index() -> Arc<dyn logline_core::artifact::ArtifactIndex> {
    Arc::new(logline_core::artifact::MemoryArtifactIndex::new())
}

mod memory_artifact_checks {
    use super::*;
    logline_core::artifact_conformance_tests!(memory_artifact_index());
}

async fn memory_note_store() -> Arc<dyn logline_core::notes::NoteStore> {
    Arc::new(logline_core::notes::MemoryNoteStore::new())
}

mod memory_note_checks {
    use super::*;
    logline_core::notes_conformance_tests!(memory_note_store());
}

mod recall_checks {
    use super::*;
    use logline_core::memory::MemoryRecallStore;
    use logline_core::recall::RecallStore;

    async fn recall_store() -> Arc<dyn RecallStore> {
        Arc::new(MemoryRecallStore::new())
    }
    logline_core::recall_conformance_tests!(recall_store());
}

mod vector_checks {
    use super::*;
    use logline_core::search::VectorStore;

    async fn vector_store() -> Arc<dyn VectorStore> {
        Arc::new(MemoryStore::new())
    }
    logline_core::vector_conformance_tests!(vector_store());
}

mod app_checks {
    use super::*;
    use logline_core::app::AppStore;
    use logline_core::memory::MemoryAppStore;

    async fn app_store() -> Arc<dyn AppStore> {
        Arc::new(MemoryAppStore::new())
    }
    logline_core::app_conformance_tests!(app_store());
}
