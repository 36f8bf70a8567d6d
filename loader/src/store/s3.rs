//! [`ObjectStore`] over the S3 API (aws-sdk-s3).

use async_trait::async_trait;
use aws_sdk_s3::config::http::HttpResponse;
use aws_sdk_s3::error::SdkError;
use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures::stream::{self, BoxStream, StreamExt};
use percent_encoding::{utf8_percent_encode, AsciiSet, NON_ALPHANUMERIC};

use super::{Content, GetObject, ObjectMeta, ObjectStore, PutMode};
use crate::aws::OperationError;
use crate::error::{Error, Result};

/// Single-request CopyObject is limited to 5 GiB; above it S3 requires
/// UploadPartCopy.
pub const MAX_SINGLE_COPY: u64 = 5 * 1024 * 1024 * 1024;

/// Everything but RFC 3986 unreserved characters and `/` is escaped in the
/// `x-amz-copy-source` header, which S3 URL-decodes.
const COPY_SOURCE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'/')
    .remove(b'-')
    .remove(b'_')
    .remove(b'.')
    .remove(b'~');

/// `store.client.<op>().bucket(<its bucket>).key(<key>)`: how every
/// object request starts.
macro_rules! request {
    ($store:expr, $op:ident, $key:expr) => {
        $store.client.$op().bucket(&$store.bucket).key($key)
    };
}

/// A bucket reached through the S3 API.
#[derive(Debug, Clone)]
pub struct S3Store {
    client: aws_sdk_s3::Client,
    bucket: String,
    name: String,
    multipart_threshold: u64,
    part_size: u64,
}

impl S3Store {
    /// Uses a client built once by the caller.
    pub fn new(client: aws_sdk_s3::Client, bucket: impl Into<String>) -> Self {
        let bucket = bucket.into();
        Self {
            client,
            name: format!("s3://{bucket}"),
            bucket,
            multipart_threshold: MAX_SINGLE_COPY,
            part_size: 512 * 1024 * 1024,
        }
    }

    /// Builds the client from the standard AWS configuration chain
    /// (credentials, region, `AWS_ENDPOINT_URL` / `AWS_ENDPOINT_URL_S3`).
    /// A custom endpoint turns on path-style addressing, which local
    /// emulators need.
    pub async fn from_env(bucket: &str) -> Self {
        let shared = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Self::from_shared(&shared, bucket)
    }

    /// [`S3Store::from_env`] with a configuration already loaded, so a Lambda
    /// builds its clients from one credential chain.
    pub fn from_shared(shared: &aws_config::SdkConfig, bucket: &str) -> Self {
        let custom_endpoint = shared.endpoint_url().is_some()
            || std::env::var_os("AWS_ENDPOINT_URL_S3").is_some()
            || std::env::var_os("AWS_ENDPOINT_URL").is_some();
        let conf = aws_sdk_s3::config::Builder::from(shared)
            .force_path_style(custom_endpoint)
            .build();
        Self::new(aws_sdk_s3::Client::from_conf(conf), bucket)
    }

    /// Copies objects larger than `threshold` with UploadPartCopy in parts of
    /// `part_size` bytes. Lowered in tests so the multipart path runs for real.
    pub fn with_multipart_copy(mut self, threshold: u64, part_size: u64) -> Self {
        self.multipart_threshold = threshold.min(MAX_SINGLE_COPY);
        self.part_size = part_size.max(5 * 1024 * 1024);
        self
    }

    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    fn copy_source(&self, key: &str) -> String {
        format!("{}/{}", self.bucket, utf8_percent_encode(key, COPY_SOURCE))
    }

    fn classify<E: OperationError>(
        &self,
        op: &'static str,
        key: &str,
        err: SdkError<E, HttpResponse>,
    ) -> Error {
        classify(&self.name, op, key, err)
    }

    /// UploadPartCopy for objects over the single-copy limit; completed with
    /// `If-None-Match: *`, so it never replaces an object either.
    async fn multipart_copy(&self, from: &ObjectMeta, to: &str) -> Result<()> {
        let upload = request!(self, create_multipart_upload, to)
            .send()
            .await
            .map_err(|e| self.classify("create multipart upload for", to, e))?;
        let upload_id = upload.upload_id().unwrap_or_default().to_owned();
        // S3 allows at most 10,000 parts.
        let part_size = self.part_size.max(from.size.div_ceil(10_000));
        let result = async {
            let mut parts = Vec::new();
            let mut start = 0u64;
            let mut number = 1;
            while start < from.size {
                let end = (start + part_size).min(from.size) - 1;
                let part = request!(self, upload_part_copy, to)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .copy_source(self.copy_source(&from.key))
                    .copy_source_if_match(&from.etag)
                    .copy_source_range(format!("bytes={start}-{end}"))
                    .send()
                    .await
                    .map_err(|e| self.classify("copy part of", &from.key, e))?;
                let etag = part
                    .copy_part_result()
                    .and_then(|r| r.e_tag())
                    .unwrap_or_default();
                parts.push(
                    CompletedPart::builder()
                        .e_tag(etag)
                        .part_number(number)
                        .build(),
                );
                start = end + 1;
                number += 1;
            }
            request!(self, complete_multipart_upload, to)
                .upload_id(&upload_id)
                .if_none_match("*")
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await
                .map_err(|e| self.classify("complete multipart copy to", to, e))?;
            Ok(())
        }
        .await;
        if result.is_err() {
            // Best effort: an abandoned upload only costs storage, and a
            // lifecycle rule for incomplete uploads sweeps it anyway.
            let _ = request!(self, abort_multipart_upload, to)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }
}

impl S3Store {
    fn list_from<'a>(
        &'a self,
        prefix: &'a str,
        start_after: Option<&'a str>,
    ) -> BoxStream<'a, Result<Vec<ObjectMeta>>> {
        let pages = self
            .client
            .list_objects_v2()
            .bucket(&self.bucket)
            .prefix(prefix)
            .set_start_after(start_after.map(str::to_owned))
            .into_paginator()
            .send();

        stream::unfold(pages, move |mut pages| async move {
            let page = pages.next().await?;
            let page = page
                .map(|out| {
                    out.contents()
                        .iter()
                        .filter_map(|o| {
                            let key = o.key()?;
                            (!key.ends_with('/')).then(|| ObjectMeta {
                                key: key.to_owned(),
                                size: o.size().unwrap_or(0).max(0) as u64,
                                last_modified: to_chrono(o.last_modified()),
                                etag: o.e_tag().unwrap_or_default().to_owned(),
                            })
                        })
                        .collect()
                })
                .map_err(|e| self.classify("list", prefix, e));
            Some((page, pages))
        })
        .boxed()
    }
}

/// Maps an SDK error onto [`Error`]: a missing object and a failed
/// condition by S3's code or status, the rest as [`crate::aws::classify`]
/// reads it.
fn classify<E: OperationError>(
    store: &str,
    op: &'static str,
    key: &str,
    err: SdkError<E, HttpResponse>,
) -> Error {
    let failure = crate::aws::classify(err);
    match (failure.status, failure.code.as_deref()) {
        (_, Some("NoSuchKey" | "NotFound")) | (Some(404), None) => Error::NotFound {
            store: store.to_owned(),
            key: key.to_owned(),
        },
        (_, Some("PreconditionFailed" | "ConditionalRequestConflict")) | (Some(412), _) => {
            Error::Precondition {
                store: store.to_owned(),
                key: key.to_owned(),
                what: "the object exists or its ETag changed",
            }
        }
        _ => Error::Store {
            op,
            store: store.to_owned(),
            key: key.to_owned(),
            code: failure.code,
            retryable: failure.retryable,
            source: failure.source,
        },
    }
}

/// An object's metadata from the headers HeadObject and GetObject share.
fn meta(
    key: &str,
    length: Option<i64>,
    modified: Option<&aws_smithy_types::DateTime>,
    etag: Option<&str>,
) -> ObjectMeta {
    ObjectMeta {
        key: key.to_owned(),
        size: length.unwrap_or(0).max(0) as u64,
        last_modified: to_chrono(modified),
        etag: etag.unwrap_or_default().to_owned(),
    }
}

fn to_chrono(t: Option<&aws_smithy_types::DateTime>) -> DateTime<Utc> {
    t.and_then(|t| DateTime::from_timestamp(t.secs(), t.subsec_nanos()))
        .unwrap_or_default()
}

#[async_trait]
impl ObjectStore for S3Store {
    fn name(&self) -> &str {
        &self.name
    }

    fn list<'a>(&'a self, prefix: &'a str) -> BoxStream<'a, Result<Vec<ObjectMeta>>> {
        self.list_from(prefix, None)
    }

    fn list_after<'a>(
        &'a self,
        prefix: &'a str,
        start_after: &'a str,
    ) -> BoxStream<'a, Result<Vec<ObjectMeta>>> {
        self.list_from(prefix, Some(start_after))
    }

    async fn head(&self, key: &str) -> Result<ObjectMeta> {
        let out = request!(self, head_object, key)
            .send()
            .await
            .map_err(|e| self.classify("head", key, e))?;
        Ok(meta(
            key,
            out.content_length(),
            out.last_modified(),
            out.e_tag(),
        ))
    }

    async fn content(&self, key: &str) -> Result<Content> {
        let out = request!(self, head_object, key)
            .send()
            .await
            .map_err(|e| self.classify("head", key, e))?;
        Ok(Content {
            encoding: out.content_encoding().map(str::to_owned),
            content_type: out.content_type().map(str::to_owned),
        })
    }

    async fn get(&self, key: &str, if_match: Option<&str>) -> Result<GetObject> {
        let out = request!(self, get_object, key)
            .set_if_match(if_match.map(str::to_owned))
            .send()
            .await
            .map_err(|e| self.classify("get", key, e))?;
        Ok(GetObject {
            meta: meta(key, out.content_length(), out.last_modified(), out.e_tag()),
            content: Content {
                encoding: out.content_encoding().map(str::to_owned),
                content_type: out.content_type().map(str::to_owned),
            },
            body: Box::pin(out.body.into_async_read()),
        })
    }

    async fn put(&self, key: &str, body: Bytes, mode: PutMode) -> Result<String> {
        let mut req = request!(self, put_object, key).body(ByteStream::from(body));
        req = match mode {
            PutMode::Overwrite => req,
            PutMode::Create => req.if_none_match("*"),
            PutMode::Update(etag) => req.if_match(etag),
        };
        let out = req.send().await.map_err(|e| self.classify("put", key, e))?;
        Ok(out.e_tag().unwrap_or_default().to_owned())
    }

    async fn delete(&self, key: &str, if_match: Option<&str>) -> Result<()> {
        let res = request!(self, delete_object, key)
            .set_if_match(if_match.map(str::to_owned))
            .send()
            .await;
        match res.map_err(|e| self.classify("delete", key, e)) {
            Ok(_) | Err(Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    async fn copy_if_absent(&self, from: &ObjectMeta, to: &str) -> Result<()> {
        if from.size > self.multipart_threshold {
            return self.multipart_copy(from, to).await;
        }
        request!(self, copy_object, to)
            .copy_source(self.copy_source(&from.key))
            .copy_source_if_match(&from.etag)
            .if_none_match("*")
            .send()
            .await
            .map_err(|e| self.classify("copy", &from.key, e))?;
        Ok(())
    }
}
