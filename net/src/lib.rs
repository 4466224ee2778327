//! What every Arbor server shares: the skeleton that accepts connections,
//! caps them, and drains them on shutdown ([`server`]), and the cluster
//! secret that authenticates requests between Arbor's processes
//! ([`auth`]). The S3 gateway,
//! the metadata node's RPC server and the chunk server all run on it, so
//! they stop the same way: stop accepting, let open connections finish
//! their requests until a deadline, then cut what is left.
//!
//! The lowest crate of the workspace: it knows sockets and HTTP
//! connections, nothing of S3, metadata or chunks.

pub mod auth;
pub mod server;

pub use server::{ServerLimits, serve, serve_http_connection, serve_http1_connection};
