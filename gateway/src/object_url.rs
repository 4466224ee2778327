//! An object's URL as S3 gives it in a `Location`: a browser upload's
//! answer and CompleteMultipartUpload's. It names the endpoint the request
//! came to (`X-Forwarded-Proto: https` behind a proxy that says so), in the
//! addressing style the request used, the key's segments percent-encoded.

/// Where a request was sent.
pub(crate) struct Endpoint {
    /// `http://host[:port]`, or `https://` behind a proxy that says so.
    origin: String,
    /// Whether the bucket was in the host name (`bucket.domain`) rather
    /// than in the path.
    virtual_host: bool,
}

impl Endpoint {
    /// A request to a bucket itself (a browser upload: `POST /bucket`, or
    /// `POST /` to `bucket.domain`).
    pub(crate) fn of_bucket_request(uri: &http::Uri, headers: &http::HeaderMap) -> Endpoint {
        Endpoint {
            origin: origin(uri, headers),
            virtual_host: uri.path().trim_matches('/').is_empty(),
        }
    }

    /// A request to `bucket`'s `key`: path-style if its path is
    /// `/bucket/key`, else virtual-host-style (its path is then `/key`).
    pub(crate) fn of_object_request(
        uri: &http::Uri,
        headers: &http::HeaderMap,
        bucket: &str,
        key: &str,
    ) -> Endpoint {
        let path = urlencoding::decode(uri.path()).unwrap_or(uri.path().into());
        let path_style = path
            .strip_prefix('/')
            .and_then(|rest| rest.strip_prefix(bucket))
            .and_then(|rest| rest.strip_prefix('/'))
            .is_some_and(|rest| rest == key);
        Endpoint {
            origin: origin(uri, headers),
            virtual_host: !path_style,
        }
    }

    /// The URL of `bucket`'s `key` at this endpoint.
    pub(crate) fn url(&self, bucket: &str, key: &str) -> String {
        let key: Vec<_> = key.split('/').map(urlencoding::encode).collect();
        let key = key.join("/");
        if self.virtual_host {
            format!("{}/{key}", self.origin)
        } else {
            format!("{}/{}/{key}", self.origin, urlencoding::encode(bucket))
        }
    }
}

fn origin(uri: &http::Uri, headers: &http::HeaderMap) -> String {
    let header = |name| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
    };
    let scheme = match header(http::HeaderName::from_static("x-forwarded-proto")) {
        Some(proto) if proto.eq_ignore_ascii_case("https") => "https",
        _ => "http",
    };
    let host = header(http::header::HOST)
        .map(str::to_owned)
        .or_else(|| uri.authority().map(|a| a.as_str().to_owned()))
        .unwrap_or_default();
    format!("{scheme}://{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(uri: &str, headers: &[(&str, &str)]) -> (http::Uri, http::HeaderMap) {
        let mut request = http::Request::post(uri);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let parts = request.body(()).expect("request").into_parts().0;
        (parts.uri, parts.headers)
    }

    #[test]
    fn a_bucket_requests_url_follows_the_endpoint_posted_to() {
        let (uri, headers) = request("/b", &[("host", "127.0.0.1:9000")]);
        assert_eq!(
            Endpoint::of_bucket_request(&uri, &headers).url("b", "dir/a b+c.txt"),
            "http://127.0.0.1:9000/b/dir/a%20b%2Bc.txt"
        );
        let (uri, headers) = request(
            "/",
            &[("host", "b.s3.example.com"), ("x-forwarded-proto", "HTTPS")],
        );
        assert_eq!(
            Endpoint::of_bucket_request(&uri, &headers).url("b", "k"),
            "https://b.s3.example.com/k"
        );
    }

    #[test]
    fn an_object_requests_style_is_read_from_its_path() {
        let url = |uri: &str, host: &str, bucket: &str, key: &str| {
            let (uri, headers) = request(uri, &[("host", host)]);
            Endpoint::of_object_request(&uri, &headers, bucket, key).url(bucket, key)
        };
        assert_eq!(
            url("/b/dir/a%20b?uploadId=1", "127.0.0.1:9000", "b", "dir/a b"),
            "http://127.0.0.1:9000/b/dir/a%20b"
        );
        assert_eq!(
            url("/dir/a%20b?uploadId=1", "b.example.com", "b", "dir/a b"),
            "http://b.example.com/dir/a%20b"
        );
        // A key that starts with its bucket's name, virtual-host-style.
        assert_eq!(
            url(
                "/photos/x?uploadId=1",
                "photos.example.com",
                "photos",
                "photos/x"
            ),
            "http://photos.example.com/photos/x"
        );
    }
}
