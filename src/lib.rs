//! kubectl-stateful: plan and roll out the storage stack of stateful workloads.
//!
//! Data flows one way, each stage testable without a cluster:
//!
//! 1. [`spec`]: TOML with spans → a validated `Spec` (every error located at its line).
//! 2. [`desired`]: `Spec` → Kubernetes objects; one pod-template builder for every workload kind.
//! 3. [`plan::observe`]: the live state, one LIST per kind, read through the [`gateway`].
//! 4. [`plan`]: desired + live (+ dry runs where fingerprints cannot decide) → `Plan`: steps
//!    (what changes, why) and typed operations with dependencies ([`plan::ops`]); pure.
//! 5. [`render`]: human, JSON, Markdown, Mermaid/DOT views of a plan; pure.
//! 6. [`apply`]: the generic executor runs the operations (ready queue, one watch per kind, a
//!    wait rule per kind) and emits events; [`ui`] turns events into progress, lines or JSON.
//!
//! Each kind lives in one module of [`kinds`] behind the `KindRules` trait (API resource,
//! immutable fields, normalisation, wait rule, diagnosis). Every API request goes through the
//! [`gateway`] (timeouts, retries, deadlines; a fake for unit tests), except the one credential
//! check [`auth`] makes right after connecting. Files written for the user (saved plans,
//! imported specs) go through [`files`]: atomic, owner-only, never through a symbolic link.

pub mod apply;
pub mod auth;
pub mod cli;
pub mod complete;
pub mod config;
pub mod desired;
pub mod files;
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
