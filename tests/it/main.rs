//! Integration tests against the real control plane (tests/cluster). One binary, shared helpers.

mod support;

mod bad_inputs;
mod ci;
mod cli;
mod config;
mod examples;
mod lock;
mod ownership;
mod prune;
mod rbac;
mod readme;
mod replace;
mod resize;
mod rollout;
mod snapshots;
mod stale;
mod terminal;
mod usage;
mod workloads;
