//! Arbor's S3 gateway: the `arbor` binary's library. It speaks S3 (via s3s)
//! and maps every operation onto the metadata service (`arbor-meta`) and the
//! chunk store (`arbor-chunkstore`). It holds no durable state of its own.

pub mod admin;
pub mod auth;
pub mod cluster;
pub mod config;
pub mod data_path;
pub mod error;
pub mod http_server;
pub mod limits;
pub mod routes;
pub mod s3;
pub mod serve;
pub mod subresource;
pub mod xml_body;
