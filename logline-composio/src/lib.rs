#![doc = include_str!("../README.md")]

mod body;
mod catalog;
mod client;
mod config;
mod connections;
mod error;
mod hub;
mod identity;
pub mod risk;
mod sync;

pub use catalog::{CatalogSnapshot, Toolkit};
pub use config::{
    ComposioConfig, ComposioConfigBuilder, ExecuteRetry, DEFAULT_API_PREFIX, DEFAULT_BASE_URL,
    DEFAULT_DEADLINE, DEFAULT_HUB_NAME, DEFAULT_MAX_RESPONSE_BYTES,
};
pub use hub::ComposioToolHub;
pub use identity::{ComposioUserIds, UserIdMapping};
pub use risk::{CategoryEffect, RiskAssessment, RiskCategory, RiskInput, RiskOverride, RiskRules};
pub use sync::{sync_job, CatalogSync, CatalogSyncJob, SyncMode, SyncReport, CATALOG_SYNC_QUEUE};
