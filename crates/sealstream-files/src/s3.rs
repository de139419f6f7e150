//! S3 configuration shared by every `s3://` user (the agent's object-store
//! sink, the market server's object store): an `object_store`
//! [`AmazonS3Builder`] from the standard `AWS_*` environment, with the
//! defaults sealstream relies on. Only with the `object-store` feature.
//!
//! These environment variables are honoured (all `AWS_*` variables
//! `object_store` knows are read):
//! - `AWS_ENDPOINT_URL_S3`, `AWS_ENDPOINT_URL` or `AWS_ENDPOINT`: the
//!   endpoint of an S3-compatible server (path-style requests unless
//!   `AWS_VIRTUAL_HOSTED_STYLE_REQUEST=true`); AWS itself when unset. An
//!   `http://` endpoint is allowed without `AWS_ALLOW_HTTP`, unless
//!   `AWS_ALLOW_HTTP` is set (then it decides);
//! - `AWS_REGION`, else `AWS_DEFAULT_REGION`, else `us-east-1`;
//! - `AWS_ACCESS_KEY_ID`, `AWS_SECRET_ACCESS_KEY`, `AWS_SESSION_TOKEN`;
//!   without them, web identity (`AWS_WEB_IDENTITY_TOKEN_FILE`,
//!   `AWS_ROLE_ARN`), container credentials, then the EC2 instance
//!   metadata service (`~/.aws` files and `AWS_PROFILE` are not read);
//! - `AWS_CONNECT_TIMEOUT` and `AWS_TIMEOUT` (e.g. `10s`) replace the
//!   defaults of 5 s and 60 s.

use std::time::Duration;

use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use object_store::{BackoffConfig, ClientConfigKey, RetryConfig};

/// How long to wait for a TCP (and TLS) connection to the store.
pub const CONNECT_TIMEOUT: &str = "5s";
/// How long one request may take, from sending to the end of the response.
pub const REQUEST_TIMEOUT: &str = "60s";
/// Retries of one request before its failure is reported (callers retry
/// later with their own backoff).
pub const MAX_RETRIES: usize = 2;
/// The region when the environment names none.
pub const DEFAULT_REGION: &str = "us-east-1";

/// An S3 builder for `bucket` from the environment (see the module
/// documentation), with short timeouts and few retries.
pub fn s3_builder(bucket: &str) -> AmazonS3Builder {
    let env_set = |name: &str| std::env::var_os(name).is_some();
    let mut builder = AmazonS3Builder::from_env().with_bucket_name(bucket);
    let client = |key| AmazonS3ConfigKey::Client(key);
    // The S3-specific endpoint wins over the generic one, as in `build`.
    let endpoint = builder
        .get_config_value(&AmazonS3ConfigKey::S3Endpoint)
        .or_else(|| builder.get_config_value(&AmazonS3ConfigKey::Endpoint));
    if !env_set("AWS_ALLOW_HTTP")
        && endpoint.is_some_and(|e| {
            e.get(..7)
                .is_some_and(|s| s.eq_ignore_ascii_case("http://"))
        })
    {
        builder = builder.with_allow_http(true);
    }
    if builder
        .get_config_value(&AmazonS3ConfigKey::Region)
        .is_none()
    {
        builder = builder.with_region(DEFAULT_REGION);
    }
    if !env_set("AWS_CONNECT_TIMEOUT") {
        builder = builder.with_config(client(ClientConfigKey::ConnectTimeout), CONNECT_TIMEOUT);
    }
    if !env_set("AWS_TIMEOUT") {
        builder = builder.with_config(client(ClientConfigKey::Timeout), REQUEST_TIMEOUT);
    }
    builder.with_retry(RetryConfig {
        backoff: BackoffConfig {
            init_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            base: 2.0,
        },
        max_retries: MAX_RETRIES,
        retry_timeout: Duration::from_secs(30),
    })
}

/// Splits `s3://bucket[/prefix]` into the bucket and the prefix (without
/// leading or trailing `/`; may be empty). `None` unless the URL starts with
/// `s3://` and names a bucket.
pub fn parse_s3_url(url: &str) -> Option<(&str, &str)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, prefix) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return None;
    }
    Some((bucket, prefix.trim_matches('/')))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn s3_urls_split_into_bucket_and_prefix() {
        assert_eq!(parse_s3_url("s3://b"), Some(("b", "")));
        assert_eq!(parse_s3_url("s3://b/"), Some(("b", "")));
        assert_eq!(parse_s3_url("s3://b/p/q/"), Some(("b", "p/q")));
        assert_eq!(parse_s3_url("s3:///p"), None);
        assert_eq!(parse_s3_url("file:///p"), None);
    }
}
