//! Arbor's S3 gateway, a library: it speaks S3 (via s3s) and maps every
//! operation onto the metadata service (`arbor-meta`) and the chunk store
//! (`arbor-chunkstore`). It holds no durable state of its own. The `arbor`
//! crate runs it (`arbor serve`, `arbor gateway`): `service::frontend`
//! builds the S3 service, `http_server::run` serves it.

pub mod admin;
pub mod auth;
pub mod cors;
pub mod data_path;
pub mod error;
pub mod http_server;
pub mod keyring;
pub mod limits;
pub mod metrics;
pub mod object_url;
pub mod permission;
pub mod policy;
pub mod post_form;
pub mod post_object;
pub mod routes;
pub mod s3;
pub mod sealing;
pub mod service;
pub mod signature_form;
pub mod subresource;
pub mod xml_body;
pub mod xml_text;
