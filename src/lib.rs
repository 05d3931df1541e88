//! kubectl-stateful: plan and roll out the storage stack of stateful workloads.
//!
//! Data flows one way: `spec` (TOML, validated) → `desired` (objects) → `plan` (with `live`
//! reads and dry-runs) → `render` (views) or `apply` (ordered rollout emitting events) → `ui`.

pub mod apply;
pub mod auth;
pub mod cli;
pub mod complete;
pub mod config;
pub mod desired;
pub mod gateway;
pub mod import;
pub mod inventory;
pub mod kinds;
pub mod live;
pub mod lock;
pub mod plan;
pub mod render;
pub mod run;
pub mod snapshots;
pub mod spec;
pub mod status;
pub mod ui;
