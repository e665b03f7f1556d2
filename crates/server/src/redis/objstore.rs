//! `s3://bucket/prefix` backup destinations: upload, list, delete and download through the
//! `object_store` crate's S3 client (cargo feature `s3`, on by default).
//!
//! Credentials come only from config buckets: the backup block's `env_from` (read by the server
//! alone, so the keys stay out of the pods), else the redis's own (`AWS_ACCESS_KEY_ID`,
//! `AWS_SECRET_ACCESS_KEY`, optional `AWS_SESSION_TOKEN`, `AWS_REGION`/`AWS_DEFAULT_REGION`,
//! `AWS_ENDPOINT_URL_S3`/`AWS_ENDPOINT_URL` for S3-compatible servers, `AWS_ALLOW_HTTP`),
//! never from the manifest body or the server's own environment, and are never logged. Keys
//! are required: without them the S3 client would fall back to the cloud instance-metadata
//! endpoint, which is not where a vd operator's credentials live.

use crate::error::ServerError;
use crate::orchestration::controller::Controller;
use crate::orchestration::resolve::bucket_of;
use std::fmt;
use std::path::Path;
use vd_core::env::EnvMap;
use vd_core::{ResourceRef, Spec};

/// What the S3 client is built from. `Debug` leaves the secrets out.
#[derive(Clone, PartialEq, Eq)]
pub struct S3Settings {
    /// `AWS_ACCESS_KEY_ID`.
    pub access_key_id: String,
    /// `AWS_SECRET_ACCESS_KEY`.
    pub secret_access_key: String,
    /// `AWS_SESSION_TOKEN`, for temporary credentials.
    pub session_token: Option<String>,
    /// `AWS_REGION`, else `AWS_DEFAULT_REGION`; the client's default (us-east-1) otherwise.
    pub region: Option<String>,
    /// `AWS_ENDPOINT_URL_S3`, else `AWS_ENDPOINT_URL`: an S3-compatible server.
    pub endpoint: Option<String>,
    /// `AWS_ALLOW_HTTP=true`: a plain-HTTP endpoint is allowed.
    pub allow_http: bool,
}

impl fmt::Debug for S3Settings {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("S3Settings")
            .field("access_key_id", &"<redacted>")
            .field("secret_access_key", &"<redacted>")
            .field(
                "session_token",
                &self.session_token.as_ref().map(|_| "<redacted>"),
            )
            .field("region", &self.region)
            .field("endpoint", &self.endpoint)
            .field("allow_http", &self.allow_http)
            .finish()
    }
}

/// Why the settings were refused: what is wrong, and what to do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingsError {
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub help: String,
}

/// The S3 settings in `vars` (the env_from buckets merged, later buckets winning). Pure.
pub fn settings(vars: &EnvMap) -> Result<S3Settings, SettingsError> {
    let get = |k: &str| vars.get(k).map(|v| v.trim()).filter(|v| !v.is_empty());
    let missing: Vec<&str> = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY"]
        .into_iter()
        .filter(|k| get(k).is_none())
        .collect();
    if !missing.is_empty() {
        return Err(SettingsError {
            message: format!("{} is not set in the env_from buckets of the redis's backup block (or, without one, of the redis)", missing.join(" and ")),
            help: "put the S3 credentials in a config bucket (`vd config SCOPE/NAME set AWS_ACCESS_KEY_ID=… AWS_SECRET_ACCESS_KEY=… AWS_REGION=…`, plus AWS_ENDPOINT_URL for an S3-compatible server) and list it in `backup { env_from = [\"SCOPE/NAME\"] }`, which keeps the keys out of the pods; credentials are never read from the manifest".into(),
        });
    }
    let allow_http = match get("AWS_ALLOW_HTTP")
        .map(str::to_ascii_lowercase)
        .as_deref()
    {
        None | Some("false" | "0" | "no") => false,
        Some("true" | "1" | "yes") => true,
        Some(other) => {
            return Err(SettingsError {
                message: format!("AWS_ALLOW_HTTP is {other:?}, not true or false"),
                help: "set AWS_ALLOW_HTTP=true to allow a plain-HTTP endpoint, or unset it".into(),
            })
        }
    };
    let endpoint = get("AWS_ENDPOINT_URL_S3")
        .or_else(|| get("AWS_ENDPOINT_URL"))
        .map(|e| e.trim_end_matches('/').to_string());
    if let Some(e) = &endpoint {
        if !(e.starts_with("https://") || e.starts_with("http://")) {
            return Err(SettingsError {
                message: format!("the S3 endpoint {e:?} is not an http(s) URL"),
                help: "write AWS_ENDPOINT_URL as https://HOST[:PORT] (or http:// with AWS_ALLOW_HTTP=true)".into(),
            });
        }
        if e.starts_with("http://") && !allow_http {
            return Err(SettingsError {
                message: format!("the S3 endpoint {e} is plain HTTP, which would send the backups unencrypted"),
                help: "use an https:// endpoint, or set AWS_ALLOW_HTTP=true in the same bucket if this server is on a network you trust (such as a local test server)".into(),
            });
        }
    }
    Ok(S3Settings {
        access_key_id: get("AWS_ACCESS_KEY_ID").unwrap_or_default().to_string(),
        secret_access_key: get("AWS_SECRET_ACCESS_KEY").unwrap_or_default().to_string(),
        session_token: get("AWS_SESSION_TOKEN").map(str::to_string),
        region: get("AWS_REGION")
            .or_else(|| get("AWS_DEFAULT_REGION"))
            .map(str::to_string),
        endpoint,
        allow_http,
    })
}

/// The variables of the buckets holding `id`'s S3 credentials (its backup block's env_from,
/// else its own), merged in order (a later bucket wins per key), read the way pods get them.
/// A deleted redis has none.
pub fn env_from_vars(ctl: &Controller, id: &ResourceRef) -> Result<EnvMap, ServerError> {
    // The backup block's own buckets keep the keys out of the pods; the redis's env_from
    // (which the pods get too) is the fallback.
    let entries = match ctl.store.get(id)?.map(|s| s.resource.spec) {
        Some(Spec::Redis(spec)) => match spec.backup {
            Some(b) if !b.env_from.is_empty() => b.env_from,
            _ => spec.env_from,
        },
        _ => Vec::new(),
    };
    let mut vars = EnvMap::new();
    for entry in &entries {
        let (scope, name) = bucket_of(entry);
        if scope.is_empty() || name == Some("") {
            continue;
        }
        vars.extend(match name {
            Some(n) => ctl.store.config_effective(scope, n)?,
            None => ctl.store.config_get(scope, None)?,
        });
    }
    Ok(vars)
}

/// An `s3://` URL split into bucket and key; `None` for anything else.
pub fn split_url(url: &str) -> Option<(String, String)> {
    let rest = url.strip_prefix("s3://")?;
    let (bucket, key) = rest.split_once('/')?;
    (!bucket.is_empty() && !key.is_empty() && !key.ends_with('/'))
        .then(|| (bucket.to_string(), key.to_string()))
}

/// Of the objects (name, size) at a destination, the backups of `id` as (taken at, name,
/// size), oldest first: anything else there (another redis's backups, other files) is left
/// alone by listing and pruning.
pub fn ours(id: &ResourceRef, objects: Vec<(String, u64)>) -> Vec<(i64, String, u64, bool)> {
    use crate::redis::backup_names::Origin;
    let mut out: Vec<(i64, String, u64, bool)> = objects
        .into_iter()
        .filter_map(|(name, bytes)| {
            let kind = crate::redis::backup_names::classify(id, &name)?;
            let scheduled = kind.origin == Origin::Schedule;
            kind.is_backup()
                .then_some((kind.taken(), name, bytes, scheduled))
        })
        .collect();
    out.sort();
    out
}

/// `vd redis:backups --destination s3://…` (the credentials are the redis's, so it must
/// exist).
pub async fn list_s3(
    ctl: &Controller,
    scope: &str,
    name: &str,
    url: &str,
) -> Result<crate::redis::backup_names::BackupList, ServerError> {
    let id = crate::redis::facts::redis_ref(scope, name);
    #[cfg(feature = "s3")]
    {
        let store = open_s3(ctl, &id, url)?;
        let backups = ours(&id, store.list().await?)
            .into_iter()
            .map(
                |(secs, file, bytes, scheduled)| crate::redis::backup_names::BackupEntry {
                    path: store.object_url(&file),
                    file,
                    bytes,
                    taken_at: crate::redis::backup_names::iso(secs),
                    scheduled,
                },
            )
            .collect();
        Ok(crate::redis::backup_names::BackupList {
            directory: store.url(),
            backups,
        })
    }
    #[cfg(not(feature = "s3"))]
    match open_s3(ctl, &id, url)? {}
}

#[cfg(feature = "s3")]
pub use imp::{fetch_to, S3Store};

#[cfg(feature = "s3")]
mod imp {
    use super::*;
    use futures_util::StreamExt;
    use object_store::aws::{AmazonS3, AmazonS3Builder};
    use object_store::path::Path as ObjectPath;
    use object_store::{ClientOptions, ObjectStore, ObjectStoreExt, WriteMultipart};
    use std::time::Duration;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use vd_core::redis::backup::Destination;

    /// Multipart part size: S3's minimum is 5 MiB; 16 MiB keeps a 1 GiB backup at 64 parts.
    const PART: usize = 16 << 20;
    /// Parts in flight at once.
    const CONCURRENCY: usize = 4;

    /// One bucket and prefix, with the client built from a redis's env_from credentials.
    pub struct S3Store {
        store: AmazonS3,
        bucket: String,
        prefix: String,
    }

    impl S3Store {
        /// The client for `bucket`/`prefix` with `id`'s credentials.
        pub fn open(
            ctl: &Controller,
            id: &ResourceRef,
            bucket: &str,
            prefix: &str,
        ) -> Result<S3Store, ServerError> {
            let url = Destination::S3 {
                bucket: bucket.into(),
                prefix: prefix.into(),
            };
            let s = settings(&env_from_vars(ctl, id)?).map_err(|e| {
                ServerError::conflict(format!("cannot use {url} for {id}: {}", e.message), e.help)
            })?;
            let mut b = AmazonS3Builder::new()
                .with_bucket_name(bucket)
                .with_access_key_id(&s.access_key_id)
                .with_secret_access_key(&s.secret_access_key)
                .with_allow_http(s.allow_http)
                .with_client_options(
                    ClientOptions::new()
                        .with_connect_timeout(Duration::from_secs(10))
                        // A part of PART bytes on a slow link; the whole upload has no limit.
                        .with_timeout(Duration::from_secs(300))
                        .with_allow_http(s.allow_http),
                );
            if let Some(t) = &s.session_token {
                b = b.with_token(t);
            }
            if let Some(r) = &s.region {
                b = b.with_region(r);
            }
            if let Some(e) = &s.endpoint {
                b = b.with_endpoint(e);
            }
            let store = b.build().map_err(|e| {
                ServerError::conflict(
                    format!("cannot use {url} for {id}: {e}"),
                    "check the AWS_* settings in the redis's env_from buckets",
                )
            })?;
            Ok(S3Store {
                store,
                bucket: bucket.into(),
                prefix: prefix.into(),
            })
        }

        /// `s3://bucket/prefix`.
        pub fn url(&self) -> String {
            Destination::S3 {
                bucket: self.bucket.clone(),
                prefix: self.prefix.clone(),
            }
            .to_string()
        }

        /// `s3://bucket/prefix/file`.
        pub fn object_url(&self, file: &str) -> String {
            format!(
                "s3://{}/{}",
                self.bucket,
                Destination::key(&self.prefix, file)
            )
        }

        fn path(&self, file: &str) -> ObjectPath {
            ObjectPath::from(Destination::key(&self.prefix, file))
        }

        fn failed(&self, what: &str, e: impl fmt::Display) -> ServerError {
            ServerError::conflict(
                format!("{what} {}: {e}", self.url()),
                "check the bucket exists, the credentials in the redis's env_from buckets may write it, and the endpoint is reachable",
            )
        }

        /// Uploads `local` as `file` (multipart, streamed from disk); the object appears only
        /// when every part is in, and a failed upload is aborted.
        pub async fn upload(&self, local: &Path, file: &str) -> Result<(), ServerError> {
            let mut f = tokio::fs::File::open(local)
                .await
                .map_err(|e| ServerError::io(format!("open {}", local.display()), e))?;
            let upload = self
                .store
                .put_multipart(&self.path(file))
                .await
                .map_err(|e| self.failed("cannot start an upload to", e))?;
            let mut w = WriteMultipart::new_with_chunk_size(upload, PART);
            let mut buf = vec![0u8; 1 << 20];
            loop {
                let n = match f.read(&mut buf).await {
                    Ok(0) => break,
                    Ok(n) => n,
                    Err(e) => {
                        // The upload fails either way; an abort that fails leaves parts the
                        // bucket's lifecycle rules remove.
                        crate::tidy::log_failure(w.abort().await, "abort the multipart upload");
                        return Err(ServerError::io(format!("read {}", local.display()), e));
                    }
                };
                if let Err(e) = w.wait_for_capacity(CONCURRENCY).await {
                    crate::tidy::log_failure(w.abort().await, "abort the multipart upload");
                    return Err(self.failed("upload failed to", e));
                }
                w.write(&buf[..n]);
            }
            w.finish()
                .await
                .map(|_| ())
                .map_err(|e| self.failed("upload failed to", e))
        }

        /// The objects directly under the prefix, as (name, size).
        pub async fn list(&self) -> Result<Vec<(String, u64)>, ServerError> {
            let prefix = (!self.prefix.is_empty()).then(|| ObjectPath::from(self.prefix.as_str()));
            let listed = self
                .store
                .list_with_delimiter(prefix.as_ref())
                .await
                .map_err(|e| self.failed("cannot list", e))?;
            Ok(listed
                .objects
                .into_iter()
                .filter_map(|o| Some((o.location.filename()?.to_string(), o.size)))
                .collect())
        }

        /// Deletes `file`.
        pub async fn delete(&self, file: &str) -> Result<(), ServerError> {
            self.store
                .delete(&self.path(file))
                .await
                .map_err(|e| self.failed(&format!("cannot delete {file} from"), e))
        }

        /// Downloads `file` to `dest`, through a temporary file beside it that is renamed
        /// once complete and fsynced; returns the bytes written.
        pub async fn download(&self, file: &str, dest: &Path) -> Result<u64, ServerError> {
            let got = self
                .store
                .get(&self.path(file))
                .await
                .map_err(|e| match e {
                    object_store::Error::NotFound { .. } => ServerError::conflict(
                        format!("{} does not exist", self.object_url(file)),
                        "list the backups with `vd redis:backups REF --destination s3://…`",
                    ),
                    e => self.failed(&format!("cannot download {file} from"), e),
                })?;
            let name = dest
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_else(|| "download".into());
            let partial = dest.with_file_name(format!(".{name}.{}.partial", std::process::id()));
            let result = async {
                let mut out = tokio::fs::OpenOptions::new()
                    .write(true)
                    .create_new(true)
                    .mode(0o600)
                    .open(&partial)
                    .await
                    .map_err(|e| ServerError::io(format!("create {}", partial.display()), e))?;
                let mut stream = got.into_stream();
                let mut bytes = 0u64;
                while let Some(chunk) = stream.next().await {
                    let chunk = chunk
                        .map_err(|e| self.failed(&format!("download of {file} failed from"), e))?;
                    out.write_all(&chunk)
                        .await
                        .map_err(|e| ServerError::io(format!("write {}", partial.display()), e))?;
                    bytes += chunk.len() as u64;
                }
                out.sync_all()
                    .await
                    .map_err(|e| ServerError::io(format!("fsync {}", partial.display()), e))?;
                tokio::fs::rename(&partial, dest)
                    .await
                    .map_err(|e| ServerError::io(format!("rename to {}", dest.display()), e))?;
                Ok(bytes)
            }
            .await;
            if result.is_err() {
                crate::tidy::remove_file(&partial, "a partial download");
            }
            result
        }
    }

    /// Downloads the object at `url` (`s3://bucket/key`) to `dest` with the credentials of
    /// redis `id`'s env_from buckets; returns its size. The file appears whole or not at all
    /// (0600); it is not verified here (`vd_redisctl::rdb::verify` does that).
    pub async fn fetch_to(
        ctl: &Controller,
        id: &ResourceRef,
        url: &str,
        dest: &Path,
    ) -> Result<u64, ServerError> {
        let (bucket, key) = split_url(url).ok_or_else(|| {
            ServerError::conflict(
                format!("{url:?} is not an s3://BUCKET/KEY URL of one object"),
                "name one backup, e.g. s3://bucket/prefix/data-cache-20240101T000000Z.rdb (`vd redis:backups REF --destination s3://bucket/prefix` lists them)",
            )
        })?;
        let (prefix, file) = key.rsplit_once('/').unwrap_or(("", key.as_str()));
        S3Store::open(ctl, id, &bucket, prefix)?
            .download(file, dest)
            .await
    }
}

/// Without the `s3` feature every S3 destination is refused with this.
#[cfg(not(feature = "s3"))]
pub fn unsupported(url: &str) -> ServerError {
    ServerError::conflict(
        format!("this vd server was built without S3 support, so {url} cannot be used"),
        "rebuild vd with the default features (cargo feature `s3`), or use a local directory",
    )
}

#[cfg(not(feature = "s3"))]
/// Without the `s3` feature: refuses.
pub async fn fetch_to(
    _ctl: &Controller,
    _id: &ResourceRef,
    url: &str,
    _dest: &Path,
) -> Result<u64, ServerError> {
    Err(unsupported(url))
}

/// An `s3://` destination, parsed, with its client (credentials from `id`'s env_from).
#[cfg(feature = "s3")]
pub(crate) fn open_s3(
    ctl: &Controller,
    id: &ResourceRef,
    url: &str,
) -> Result<S3Store, ServerError> {
    use vd_core::redis::backup::Destination;
    match Destination::parse(url) {
        Ok(Destination::S3 { bucket, prefix }) => S3Store::open(ctl, id, &bucket, &prefix),
        Ok(Destination::Local(_)) => Err(ServerError::Conflict {
            message: format!("{url} is not an s3:// destination"),
            help: None,
        }),
        Err(e) => Err(ServerError::Conflict {
            message: e.message,
            help: Some(e.help),
        }),
    }
}

#[cfg(not(feature = "s3"))]
pub(crate) fn open_s3(
    _ctl: &Controller,
    _id: &ResourceRef,
    url: &str,
) -> Result<Never, ServerError> {
    Err(unsupported(url))
}

/// Uninhabited: what [`open_s3`] yields without the `s3` feature.
#[cfg(not(feature = "s3"))]
pub(crate) enum Never {}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(kv: &[(&str, &str)]) -> EnvMap {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    const KEYS: [(&str, &str); 2] = [
        ("AWS_ACCESS_KEY_ID", "AKIDEXAMPLE"),
        ("AWS_SECRET_ACCESS_KEY", "wJalrXUtnFEMI"),
    ];

    #[test]
    fn settings_from_buckets() {
        let s = settings(&vars(&KEYS)).unwrap();
        assert_eq!(s.region, None);
        assert_eq!(s.endpoint, None);
        assert!(!s.allow_http);
        let debug = format!("{s:?}");
        assert!(
            !debug.contains("AKIDEXAMPLE") && !debug.contains("wJalr"),
            "{debug}"
        );

        let mut kv = KEYS.to_vec();
        kv.extend([
            ("AWS_DEFAULT_REGION", "eu-west-1"),
            ("AWS_ENDPOINT_URL", "http://127.0.0.1:9000/"),
            ("AWS_ENDPOINT_URL_S3", "http://127.0.0.1:9001"),
            ("AWS_ALLOW_HTTP", "TRUE"),
            ("AWS_SESSION_TOKEN", "tok"),
        ]);
        let s = settings(&vars(&kv)).unwrap();
        assert_eq!(s.region.as_deref(), Some("eu-west-1"));
        assert_eq!(s.endpoint.as_deref(), Some("http://127.0.0.1:9001"));
        assert!(s.allow_http);
        assert_eq!(s.session_token.as_deref(), Some("tok"));
        kv.push(("AWS_REGION", "us-west-2"));
        assert_eq!(
            settings(&vars(&kv)).unwrap().region.as_deref(),
            Some("us-west-2")
        );
    }

    #[test]
    fn refused_settings() {
        let e = settings(&vars(&[("AWS_ACCESS_KEY_ID", "x")])).unwrap_err();
        assert_eq!(
            e.message,
            "AWS_SECRET_ACCESS_KEY is not set in the env_from buckets of the redis's backup block (or, without one, of the redis)"
        );
        let e = settings(&vars(&[])).unwrap_err();
        assert!(e
            .message
            .starts_with("AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY"));
        let mut kv = KEYS.to_vec();
        kv.push(("AWS_ENDPOINT_URL", "http://minio:9000"));
        let e = settings(&vars(&kv)).unwrap_err();
        assert!(e.message.contains("plain HTTP"), "{}", e.message);
        kv.push(("AWS_ALLOW_HTTP", "maybe"));
        assert!(settings(&vars(&kv)).is_err());
        let mut kv = KEYS.to_vec();
        kv.push(("AWS_ENDPOINT_URL", "minio:9000"));
        assert!(settings(&vars(&kv)).is_err());
    }

    #[test]
    fn only_this_redis_backups_count() {
        use crate::redis::backup_names::{file_name, index_name, shard_file_name, Origin};
        let id = |s: &str, n: &str| ResourceRef::new(vd_core::Kind::Redis, s, n);
        let cache = id("data", "cache");
        let objects = vec![
            (file_name(&cache, 300, Origin::Schedule), 3),
            (file_name(&cache, 100, Origin::Hand), 1),
            (file_name(&id("data", "cache-2"), 50, Origin::Hand), 9),
            ("notes.txt".to_string(), 4),
            (
                format!(".{}.1.partial", file_name(&cache, 400, Origin::Hand)),
                5,
            ),
            (index_name(&cache, 200, Origin::Hand), 2),
            // A cluster backup is listed by its index only.
            (shard_file_name(&cache, 200, Origin::Hand, 0), 7),
        ];
        assert_eq!(
            ours(&cache, objects),
            [
                (100, "data-cache-19700101T000140Z.rdb".to_string(), 1, false),
                (
                    200,
                    "data-cache-19700101T000320Z.cluster.json".to_string(),
                    2,
                    false
                ),
                (
                    300,
                    "data-cache-19700101T000500Z.sched.rdb".to_string(),
                    3,
                    true
                ),
            ]
        );
    }

    #[test]
    fn object_urls() {
        assert_eq!(
            split_url("s3://bkt/a/b/f.rdb"),
            Some(("bkt".into(), "a/b/f.rdb".into()))
        );
        assert_eq!(
            split_url("s3://bkt/f.rdb"),
            Some(("bkt".into(), "f.rdb".into()))
        );
        for bad in [
            "s3://bkt",
            "s3://bkt/",
            "s3:///f",
            "/tmp/f.rdb",
            "s3://bkt/dir/",
        ] {
            assert_eq!(split_url(bad), None, "{bad}");
        }
    }
}
