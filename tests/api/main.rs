//! Integration tests: the real router over real HTTP against a real PostgreSQL.
//! `#[sqlx::test]` gives every test a fresh, migrated database (DATABASE_URL names the server).
#![allow(clippy::expect_used, clippy::unwrap_used)]

mod cache;
mod concurrency;
mod envelope;
mod escalation;
mod gateway;
mod grants;
mod headers;
mod helpers;
mod iam;
mod identity;
mod introspect;
mod invariants;
mod key_rotation;
mod limits;
mod listener;
mod lists;
mod logs;
mod metrics;
mod names;
mod plans;
mod pool;
mod process;
mod replicas;
mod secret_scanning;
mod tokens;
mod ui;
