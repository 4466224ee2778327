//! `arbor admin`'s settings.

use std::path::PathBuf;

use arbor_gateway::auth::Credentials;
use serde::{Deserialize, Serialize};

use super::{
    DATA_DIR_DEFAULT, Secret, Settings, admin_endpoint_default, check_key_pair, check_meta_addrs,
    check_path, check_region, key_pair, refuse,
};

/// The region requests are signed for when none is set: what a server
/// without a pinned region takes like any other, and S3's default.
const SIGNING_REGION_DEFAULT: &str = "us-east-1";

#[derive(Clone, Debug, clap::Args, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    /// The S3 endpoint of a running Arbor (http://host:port).
    #[arg(long, env = "ARBOR_ENDPOINT", default_value_t = admin_endpoint_default())]
    pub endpoint: String,
    /// Where to read credentials.json when neither ARBOR_ACCESS_KEY nor
    /// ARBOR_SECRET_KEY is set.
    #[arg(long, env = "ARBOR_DATA_DIR", default_value = DATA_DIR_DEFAULT)]
    pub data_dir: PathBuf,
    /// Metadata nodes (host:port, comma-separated) for `arbor admin meta`.
    #[arg(long, env = "ARBOR_META", value_delimiter = ',', global = true)]
    pub meta: Vec<String>,
    /// File holding the cluster's secret (64 hex digits, made by `arbor
    /// admin cluster-secret FILE`): every request between the cluster's
    /// processes carries a MAC under it. For `arbor admin meta`.
    #[arg(long, env = "ARBOR_CLUSTER_SECRET_FILE", global = true)]
    pub cluster_secret_file: Option<PathBuf>,
    /// The region to sign requests for: the server's `--region` when it
    /// pins one (us-east-1 if unset).
    #[arg(long, env = "ARBOR_REGION")]
    pub region: Option<String>,
    /// Access key to sign with (file or ARBOR_ACCESS_KEY).
    #[arg(skip)]
    pub access_key: Option<Secret>,
    /// Its secret key (file or ARBOR_SECRET_KEY).
    #[arg(skip)]
    pub secret_key: Option<Secret>,
}

impl Settings for AdminConfig {
    fn validate(&self) -> anyhow::Result<()> {
        let endpoint = self.endpoint.parse::<http::Uri>().ok();
        if endpoint.is_none_or(|uri| uri.scheme_str() != Some("http") || uri.host().is_none()) {
            return Err(refuse(
                "endpoint",
                format_args!("{:?}", self.endpoint),
                "it must be an http:// URL such as http://127.0.0.1:9000",
            ));
        }
        check_path("data_dir", &self.data_dir)?;
        check_meta_addrs(&self.meta)?;
        check_region(self.region.as_deref())?;
        check_key_pair(self.access_key.as_ref(), self.secret_key.as_ref())
    }
}

impl AdminConfig {
    /// The region requests are signed for.
    pub fn signing_region(&self) -> &str {
        self.region.as_deref().unwrap_or(SIGNING_REGION_DEFAULT)
    }

    /// The key pair the settings name (else the stored one).
    pub fn credentials(&self) -> Option<Credentials> {
        key_pair(self.access_key.as_ref(), self.secret_key.as_ref())
    }
}
