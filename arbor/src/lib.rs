//! The `arbor` binary's roles, one module each: `serve` (everything in one
//! process), `meta` (a metadata node), `chunk` (a chunk server), `gateway`
//! (a stateless S3 front end of a cluster), `admin` (the command-line
//! client of the admin API and of the metadata group), `fs` (tree
//! operations on any endpoint), `bench` (a load generator and the
//! machine's limits), `metrics` (the Prometheus endpoint of `serve`,
//! `gateway` and `meta`) and `dev_cluster` (a whole cluster of those
//! processes on loopback). `tasks` holds the background work `serve` and
//! `meta` run beside their servers, `config` the settings. `main.rs`
//! parses the command line and runs one role.

pub mod admin;
pub mod bench;
pub mod chunk;
pub mod config;
pub mod dev_cluster;
pub mod fs;
pub mod gateway;
pub mod logging;
pub mod meta;
pub mod metrics;
pub mod serve;
pub mod tasks;
