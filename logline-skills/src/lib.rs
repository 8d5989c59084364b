#![doc = include_str!("../README.md")]
#![cfg_attr(test, allow(clippy::unwrap_used, clippy::expect_used))]

mod args;
pub mod demo;
pub mod email;
mod hub;
pub mod notes;
pub mod pdf;
pub mod scaffold;

pub use demo::DemoModel;
pub use hub::{SkillLimits, SkillsHub, SkillsHubBuilder, SKILLS_HUB};
