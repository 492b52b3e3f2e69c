//! tokengate: issues, manages and verifies API access tokens for a multi-tenant SaaS.

pub mod auth;
pub mod cli;
pub mod config;
pub mod credential;
pub mod db;
pub mod gateway;
pub mod http;
pub mod metrics;
pub mod names;
pub mod policy;
pub mod telemetry;
