//! Tollgate: a self-hosted API gateway that serves Swagger 2.0 APIs (with
//! their `x-amazon-apigateway-*` extensions) the way Amazon API Gateway
//! does, on a thread-per-core glommio runtime.
//!
//! Map (see `docs/ARCHITECTURE.md`): `config` compiles files into a
//! `snapshot::Snapshot`; `shard` runs the executors and connections; the
//! per-request logic is plain code in `http`, `router`, `integration`,
//! `gateway_response`, `template` and `error`.

pub mod access_log;
pub mod admin;
pub mod auth;
pub mod authorizer;
pub mod cache;
pub mod cluster;
pub mod config;
pub mod control;
pub mod demo;
pub mod domain;
pub mod error;
pub mod gateway_response;
pub mod http;
pub mod ids;
pub mod integration;
pub mod limit;
pub mod metrics;
pub mod notify;
pub mod preflight;
pub mod publish;
pub mod resolve;
pub mod resource_policy;
pub mod router;
pub mod shard;
pub mod snapshot;
pub mod sock;
pub mod template;
pub mod template_cli;
pub mod tls;
pub mod validate;
pub mod vtl;
pub mod ws;
