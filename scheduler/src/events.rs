//! The event-driven fast path's input: S3 event notifications delivered
//! by SQS, either straight from the bucket or wrapped in SNS messages (as
//! the Met Office's public buckets send them: S3 → SNS → your SQS queue).
//!
//! Parsing is pure and never fails as a whole: every message ends up in
//! one of three lists, so the Lambda can answer with a partial batch
//! response that returns exactly the messages it could not act on.

use chrono::{DateTime, Utc};
use percent_encoding::percent_decode_str;
use serde::Deserialize;

/// One object an S3 notification says was created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notified {
    /// The SQS message it came in, for the partial batch response.
    pub message_id: String,
    pub bucket: String,
    /// The key decoded (S3 sends it form-encoded: `+` for a space).
    pub key: String,
    /// The ETag as S3 notifies it (no quotes), when present.
    pub etag: Option<String>,
    /// When S3 created the object (`eventTime`): where the end-to-end
    /// latency starts.
    pub event_time: Option<DateTime<Utc>>,
}

/// What a batch of SQS messages holds.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Parsed {
    /// Objects created, in message order (duplicates kept: a key notified
    /// twice is loaded once, and both messages are answered).
    pub notified: Vec<Notified>,
    /// Messages with nothing to load, and why: S3's test event, events
    /// other than a creation. They are acknowledged.
    pub ignored: Vec<(String, String)>,
    /// Messages that could not be read, and why. They are returned to the
    /// queue, and after its `maxReceiveCount` land in the dead-letter
    /// queue, which alarms.
    pub unreadable: Vec<(String, String)>,
}

/// Lambda's SQS event: only what the fast path uses.
#[derive(Debug, Deserialize)]
pub struct SqsEvent {
    #[serde(rename = "Records", default)]
    pub records: Vec<SqsMessage>,
}

#[derive(Debug, Deserialize)]
pub struct SqsMessage {
    #[serde(rename = "messageId")]
    pub message_id: String,
    #[serde(default)]
    pub body: String,
}

#[derive(Deserialize)]
struct S3Event {
    #[serde(rename = "Records", default)]
    records: Option<Vec<S3Record>>,
    /// `s3:TestEvent`, sent once when a notification is configured.
    #[serde(rename = "Event", default)]
    event: Option<String>,
}

#[derive(Deserialize)]
struct S3Record {
    #[serde(rename = "eventName", default)]
    event_name: String,
    #[serde(rename = "eventTime", default)]
    event_time: Option<DateTime<Utc>>,
    s3: S3Entity,
}

#[derive(Deserialize)]
struct S3Entity {
    bucket: S3Bucket,
    object: S3Object,
}

#[derive(Deserialize)]
struct S3Bucket {
    name: String,
}

#[derive(Deserialize)]
struct S3Object {
    key: String,
    #[serde(rename = "eTag", default)]
    etag: Option<String>,
}

/// An SNS notification as SNS delivers it to SQS (raw delivery off).
#[derive(Deserialize)]
struct SnsEnvelope {
    #[serde(rename = "Type")]
    kind: String,
    #[serde(rename = "Message")]
    message: String,
}

/// Sorts a batch of SQS messages into objects to load, messages to
/// acknowledge, and messages to return.
pub fn parse(messages: &[SqsMessage]) -> Parsed {
    let mut parsed = Parsed::default();
    for m in messages {
        match parse_body(&m.message_id, &m.body) {
            Ok(Body::Objects(objects)) if objects.is_empty() => parsed
                .ignored
                .push((m.message_id.clone(), "no object creation in it".into())),
            Ok(Body::Objects(objects)) => parsed.notified.extend(objects),
            Ok(Body::Ignored(why)) => parsed.ignored.push((m.message_id.clone(), why)),
            Err(why) => parsed.unreadable.push((m.message_id.clone(), why)),
        }
    }
    parsed
}

enum Body {
    Objects(Vec<Notified>),
    Ignored(String),
}

fn parse_body(message_id: &str, body: &str) -> Result<Body, String> {
    let value: serde_json::Value =
        serde_json::from_str(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    // SNS wraps the S3 event as a string in `Message`.
    let inner;
    let event = if value.get("Type").is_some() && value.get("Message").is_some() {
        let sns: SnsEnvelope = serde_json::from_value(value)
            .map_err(|e| format!("an SNS envelope without a readable Message: {e}"))?;
        if sns.kind == "SubscriptionConfirmation" || sns.kind == "UnsubscribeConfirmation" {
            return Ok(Body::Ignored(format!("SNS {}", sns.kind)));
        }
        inner = serde_json::from_str::<serde_json::Value>(&sns.message)
            .map_err(|e| format!("the SNS Message is not JSON: {e}"))?;
        inner
    } else {
        value
    };
    let event: S3Event =
        serde_json::from_value(event).map_err(|e| format!("not an S3 event notification: {e}"))?;
    if let Some(kind) = event.event {
        return Ok(Body::Ignored(format!("{kind} (nothing to load)")));
    }
    let records = event
        .records
        .ok_or_else(|| "not an S3 event notification: no Records".to_owned())?;
    let mut objects = Vec::new();
    for r in records {
        if !r.event_name.starts_with("ObjectCreated:") {
            continue;
        }
        objects.push(Notified {
            message_id: message_id.to_owned(),
            bucket: r.s3.bucket.name,
            key: decode_key(&r.s3.object.key)
                .map_err(|e| format!("key {:?} is not form-encoded UTF-8: {e}", r.s3.object.key))?,
            etag: r.s3.object.etag.filter(|e| !e.is_empty()),
            event_time: r.event_time,
        });
    }
    Ok(Body::Objects(objects))
}

/// S3 notifications carry keys form-encoded: `+` is a space, `%XX` a byte.
pub fn decode_key(key: &str) -> Result<String, std::str::Utf8Error> {
    let spaced = key.replace('+', " ");
    percent_decode_str(&spaced)
        .decode_utf8()
        .map(|k| k.into_owned())
}

/// The partial batch response Lambda expects with
/// `ReportBatchItemFailures`: the messages to return to the queue.
pub fn batch_response<'a>(failed: impl IntoIterator<Item = &'a str>) -> serde_json::Value {
    let mut ids: Vec<&str> = failed.into_iter().collect();
    ids.sort_unstable();
    ids.dedup();
    serde_json::json!({
        "batchItemFailures": ids
            .into_iter()
            .map(|id| serde_json::json!({ "itemIdentifier": id }))
            .collect::<Vec<_>>()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3_event(bucket: &str, key: &str, name: &str) -> String {
        serde_json::json!({
            "Records": [{
                "eventVersion": "2.1",
                "eventSource": "aws:s3",
                "eventName": name,
                "eventTime": "2026-11-24T03:00:00.123Z",
                "s3": {
                    "bucket": {"name": bucket, "arn": format!("arn:aws:s3:::{bucket}")},
                    "object": {"key": key, "size": 12, "eTag": "0123abcd", "sequencer": "00"}
                }
            }]
        })
        .to_string()
    }

    fn msg(id: &str, body: String) -> SqsMessage {
        SqsMessage {
            message_id: id.into(),
            body,
        }
    }

    #[test]
    fn direct_and_sns_wrapped_notifications_both_name_the_decoded_key() {
        let direct = s3_event("b", "incoming/a+b%27c%C3%BC.csv", "ObjectCreated:Put");
        let wrapped = serde_json::json!({
            "Type": "Notification",
            "MessageId": "x",
            "TopicArn": "arn:aws:sns:eu-west-2:1:met-office",
            "Message": s3_event("b", "incoming/d.nc", "ObjectCreated:CompleteMultipartUpload"),
        })
        .to_string();
        let p = parse(&[msg("1", direct), msg("2", wrapped)]);
        assert!(p.ignored.is_empty() && p.unreadable.is_empty(), "{p:?}");
        let keys: Vec<(&str, &str)> = p
            .notified
            .iter()
            .map(|n| (n.message_id.as_str(), n.key.as_str()))
            .collect();
        assert_eq!(keys, [("1", "incoming/a b'cü.csv"), ("2", "incoming/d.nc")]);
        assert_eq!(p.notified[0].etag.as_deref(), Some("0123abcd"));
        assert_eq!(
            p.notified[0].event_time.unwrap().timestamp_millis() % 1000,
            123
        );
    }

    #[test]
    fn test_events_and_deletions_are_acknowledged_and_garbage_is_returned() {
        let test_event = serde_json::json!({
            "Service": "Amazon S3", "Event": "s3:TestEvent",
            "Time": "2026-11-24T03:00:00Z", "Bucket": "b", "RequestId": "r", "HostId": "h"
        })
        .to_string();
        let wrapped_test =
            serde_json::json!({"Type": "Notification", "Message": test_event}).to_string();
        let removed = s3_event("b", "incoming/x.csv", "ObjectRemoved:Delete");
        let p = parse(&[
            msg("t", test_event),
            msg("w", wrapped_test),
            msg("r", removed),
            msg("g", "not json".into()),
            msg("e", "{\"Records\": 3}".into()),
            msg(
                "n",
                "{\"Type\": \"Notification\", \"Message\": \"{\"}".into(),
            ),
        ]);
        assert!(p.notified.is_empty(), "{p:?}");
        let ignored: Vec<&str> = p.ignored.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(ignored, ["t", "w", "r"]);
        assert!(p.ignored[0].1.contains("s3:TestEvent"), "{:?}", p.ignored);
        let unreadable: Vec<&str> = p.unreadable.iter().map(|(id, _)| id.as_str()).collect();
        assert_eq!(unreadable, ["g", "e", "n"]);
    }

    #[test]
    fn a_key_that_is_not_utf8_once_decoded_is_unreadable_not_guessed() {
        let p = parse(&[msg(
            "1",
            s3_event("b", "incoming/%FF.csv", "ObjectCreated:Put"),
        )]);
        assert_eq!(p.unreadable.len(), 1, "{p:?}");
    }

    #[test]
    fn the_batch_response_names_each_failed_message_once() {
        let r = batch_response(["b", "a", "b"]);
        assert_eq!(
            r,
            serde_json::json!({"batchItemFailures": [{"itemIdentifier": "a"}, {"itemIdentifier": "b"}]})
        );
        assert_eq!(
            batch_response([]),
            serde_json::json!({"batchItemFailures": []})
        );
    }
}
