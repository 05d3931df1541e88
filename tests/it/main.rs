//! Integration tests against the real control plane (tests/cluster). One binary, shared helpers.

mod support;

mod auth;
mod bad_inputs;
mod ci;
mod cli;
mod complete;
mod config;
mod examples;
mod graph;
mod import;
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
mod status;
mod terminal;
mod usage;
mod workloads;
