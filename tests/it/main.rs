//! Integration tests against the real control plane (tests/cluster). One binary, shared helpers.

mod support;

mod auth;
mod ci;
mod cli;
mod complete;
mod examples;
mod graph;
mod import;
mod ownership;
mod rbac;
mod rollout;
mod status;
mod workloads;
