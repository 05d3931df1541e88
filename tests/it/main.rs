//! Integration tests against the real control plane (tests/cluster). One binary, shared helpers.

mod support;

mod bad_inputs;
mod ci;
mod cli;
mod examples;
mod faults;
mod ownership;
mod proxy;
mod rbac;
mod rollout;
mod secrets;
