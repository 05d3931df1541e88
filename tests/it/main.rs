//! Integration tests against the real control plane (tests/cluster). One binary, shared helpers.

mod support;

mod ci;
mod cli;
mod examples;
mod ownership;
mod prune;
mod rbac;
mod resize;
mod rollout;
mod workloads;
