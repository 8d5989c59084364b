//! Typed tool arguments and the trusted owner of a call.

use logline_core::owner::Owner;
use logline_core::tool::ToolContext;
use logline_core::{Error, Result};
use serde::de::DeserializeOwned;
use serde_json::Value;

/// Parses `arguments` of `tool_id` into `T`; a mismatch names the failing path.
pub(crate) fn parse<T: DeserializeOwned>(tool_id: &str, arguments: Value) -> Result<T> {
    serde_path_to_error::deserialize(arguments).map_err(|e| {
        let path = e.path().to_string();
        Error::InvalidInput(format!(
            "arguments of `{tool_id}` at `{path}`: {}",
            e.into_inner()
        ))
    })
}

/// The owner a call acts for: the run's subject, never the model's arguments.
pub(crate) fn owner(ctx: &ToolContext) -> Owner {
    Owner::from(&ctx.subject)
}
