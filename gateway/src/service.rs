//! The S3 service as every gateway serves it: s3s over [`Arbor`], with
//! Arbor's bucket names, admin and Range routes, keys and permissions, XML
//! body limits and, given a domain, virtual-host-style addressing.

use std::sync::Arc;

use arbor_chunkstore::ChunkBackend;
use arbor_meta::MetaClient;
use s3s::config::{S3Config, StaticConfigProvider};
use s3s::service::S3ServiceBuilder;

use crate::admin::{AdminRoute, NamesWithAdmin};
use crate::auth;
use crate::cors::Cors;
use crate::http_server::{Frontend, VirtualHosts};
use crate::keyring::Keyring;
use crate::permission::AccessControl;
use crate::post_object::PostUploads;
use crate::sealing::NodeKey;
use arbor_meta::clock::Seams;

use crate::limits::XML_BODY_SIZE_MAX;
use crate::routes::{CopySourceCheck, IgnoredHeaders, RenameRoute, Routes};
use crate::s3::{Arbor, GatewaySettings};

/// The S3 service over `meta` and `backend`, ready for
/// [`crate::http_server::run`].
pub fn frontend(
    meta: MetaClient,
    backend: ChunkBackend,
    settings: GatewaySettings,
    credentials: &auth::Credentials,
    node_key: NodeKey,
    domain: Option<String>,
    seams: Seams,
) -> Arc<Frontend> {
    let keyring = Keyring::new(
        credentials.clone(),
        meta.clone(),
        node_key,
        seams.clock.clone(),
        seams.entropy.clone(),
    );
    let region = settings.region.clone();
    let entropy = seams.entropy.clone();
    let clock = seams.clock.clone();
    let arbor = Arbor::with_seams(
        meta.clone(),
        backend.clone(),
        settings,
        seams.clock,
        seams.entropy,
    );
    let post_uploads = PostUploads {
        s3: arbor.clone(),
        keyring: keyring.clone(),
        access: AccessControl {
            keyring: keyring.clone(),
        },
        clock: clock.clone(),
        hosts: domain.clone().map(|domain| VirtualHosts { domain }),
    };
    let mut builder = s3_service(arbor.clone(), domain.as_deref());
    builder.set_route(Routes {
        admin: AdminRoute {
            meta,
            chunks: backend,
            keyring: keyring.clone(),
        },
        keyring: keyring.clone(),
        ignored_headers: IgnoredHeaders {
            // Checks no signature: only `Routes` reaches it, after s3s has.
            unauthenticated: {
                let mut inner = s3_service(arbor.clone(), domain.as_deref());
                inner.set_access(CopySourceCheck(AccessControl {
                    keyring: keyring.clone(),
                }));
                inner.build()
            },
        },
        rename: RenameRoute {
            s3: arbor,
            hosts: domain.clone().map(|domain| VirtualHosts { domain }),
        },
    });
    builder.set_auth(keyring.clone());
    builder.set_access(AccessControl {
        keyring: keyring.clone(),
    });
    Arc::new(Frontend {
        s3: builder.build(),
        region,
        entropy,
        clock,
        cors: Cors {
            keyring,
            hosts: domain.map(|domain| VirtualHosts { domain }),
        },
        post_uploads,
        metrics: Arc::default(),
    })
}

/// An S3 service over `arbor` with Arbor's names, addressing and limits,
/// and as yet no authentication.
fn s3_service(arbor: Arbor, domain: Option<&str>) -> S3ServiceBuilder {
    let mut builder = S3ServiceBuilder::new(arbor);
    builder.set_validation(NamesWithAdmin);
    if let Some(domain) = domain {
        builder.set_host(VirtualHosts {
            domain: domain.to_owned(),
        });
    }
    let mut s3s_config = S3Config::default();
    s3s_config.xml_max_body_size = XML_BODY_SIZE_MAX;
    // Browser uploads never reach s3s (`crate::post_object` serves them):
    // should one, it is refused rather than read into memory.
    s3s_config.post_object_max_file_size = 0;
    builder.set_config(Arc::new(StaticConfigProvider::new(Arc::new(s3s_config))));
    builder
}
