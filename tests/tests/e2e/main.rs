//! Every end-to-end test, in one test binary: one link instead of one per file (eighteen links
//! of a binary carrying librdkafka, OpenSSL and every service's library took minutes of each
//! test run). `scripts/test.sh` runs them with cargo-nextest, each test in a process of its own
//! and side by side; `.config/nextest.toml` says which of them may not share the machine.
//!
//! - real broker, shared: [`anomalies`], [`audit`], [`cli`], [`gateway`], [`gateway_http`], [`input`], [`ip_count`], [`metrics`],
//!   [`pause`], [`pipeline`], [`restore`], [`simulator`]; with PostgreSQL: [`pg_sink`], [`dashboard`]
//!   (in Chromium too); with Prometheus: [`prometheus`];
//! - a broker of their own, restarted under load: [`chaos`], [`ip_count_chaos`], [`secure`];
//! - the in-process demo, its dashboard in Chromium: [`demo`];
//! - files and offline validators: [`compose`], [`kubernetes`];
//! - Docker, run only with `--run-ignored` (`scripts/docker-tests.sh`): [`compose_stack`];
//! - a three-node cluster of their own, brokers bounced under load, run only with
//!   `--run-ignored`: [`bounce`].

mod anomalies;
mod audit;
mod bounce;
mod chaos;
mod cli;
mod compose;
mod compose_stack;
mod dashboard;
mod demo;
mod gateway;
mod gateway_http;
mod input;
mod ip_count;
mod ip_count_chaos;
mod kubernetes;
mod metrics;
mod pause;
mod pg_sink;
mod pipeline;
mod prometheus;
mod restore;
mod secure;
mod simulator;
