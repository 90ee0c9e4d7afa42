//! `POST /v1/classify` from the body's first byte to the audio. The body is held against the
//! memory budget from its first byte until it is parsed (while it arrives, `net::body`, and
//! after: the bytes stay in memory until the audio is out of them), and parsing (a multipart
//! scan, JSON and base64) runs on the feature pool, off the async threads, with what it
//! allocates (the audio's copy; for JSON the base64 text and the decoded bytes too) counted in
//! the budget before it starts. A request the budget cannot hold is refused rather than
//! parsed outside it.

use axum::body::{Body, Bytes};
use axum::extract::Query;
use axum::extract::rejection::QueryRejection;
use base64::Engine;
use bytes::BytesMut;
use http_body_util::BodyExt;

use super::{ClassifyParams, audio_of, multipart};
use crate::budget::Reservation;
use crate::classify::{BatchClip, Classifier};
use crate::error::ServiceError;
use crate::net::body::{BodyRefused, Budgeted};
use crate::pipeline::Audio;

/// A request body read whole, and its share of the memory budget.
pub(super) struct Received {
    bytes: Bytes,
    held: Reservation,
}

/// Reads a request body of at most `max` bytes, counted against the memory budget as it arrives
/// (and held after) and cut off when it stalls.
pub(super) async fn read(c: &Classifier, body: Body, max: usize) -> Result<Received, ServiceError> {
    let mut budgeted = Budgeted::whole(body, c.budget(), c.limits().stream_idle);
    let mut bytes = BytesMut::new();
    while let Some(frame) = budgeted.frame().await {
        let frame = frame.map_err(|e| match e.downcast::<BodyRefused>() {
            Ok(refused) => refused.error,
            Err(other) => ServiceError::bad_request("body_error", format!("reading the body failed: {other}")),
        })?;
        if let Ok(data) = frame.into_data() {
            if bytes.len() + data.len() > max {
                return Err(ServiceError::MessageTooLarge(format!("the request body is over {max} bytes")));
            }
            bytes.extend_from_slice(&data);
        }
    }
    Ok(Received { bytes: bytes.freeze(), held: budgeted.into_reservation() })
}

/// The audio and the options of a received upload: the raw body (options in the query), the
/// part named `file` of a `multipart/form-data` body (options in the query), or JSON with
/// `audio_base64`. Parsed on the feature pool, within the budget (see the module's comment).
pub(super) async fn parse(
    c: &Classifier,
    content_type: &str,
    query: Result<Query<ClassifyParams>, QueryRejection>,
    received: Received,
) -> Result<(Audio, ClassifyParams), ServiceError> {
    let Received { bytes, mut held } = received;
    let n = bytes.len() as u64;
    let is_json = content_type.starts_with("application/json");
    // Besides the body: the audio's own copy, and for JSON the base64 text (up to the body's
    // size) before it is decoded.
    let parsing = if is_json { n + n.div_ceil(4) * 3 } else { n };
    held.ensure(n + parsing).map_err(ServiceError::from)?;
    let content_type = content_type.to_string();
    let parsed = c.pool().run(move || parse_now(&content_type, is_json, query, bytes)).await;
    // The body and the parse's buffers are gone; the audio is counted by the classification
    // from here on.
    drop(held);
    parsed
}

/// The body of `POST /v1/classify:batch`: JSON `{"clips": [...]}`, each clip the JSON body of
/// `POST /v1/classify` (`audio_base64` and the options).
#[derive(Debug, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchBody {
    clips: Vec<ClassifyParams>,
}

/// The clips of a received batch. Only a body that is not the batch's JSON fails the whole
/// batch; a clip's own fault (no audio, bad base64, a bad PCM format) is that clip's error.
/// Parsed on the feature pool, within the budget, as `parse`.
pub(super) async fn parse_batch(c: &Classifier, received: Received) -> Result<Vec<BatchClip>, ServiceError> {
    let Received { bytes, mut held } = received;
    let n = bytes.len() as u64;
    // The body, its base64 strings (up to its size) and the decoded audio (3/4 of that).
    held.ensure(n + n + n.div_ceil(4) * 3).map_err(ServiceError::from)?;
    let parsed = c
        .pool()
        .run(move || {
            let body: BatchBody = serde_json::from_slice(&bytes).map_err(|e| {
                ServiceError::bad_request("invalid_json", format!("request body is not a batch's JSON: {e}"))
            })?;
            drop(bytes);
            Ok(body.clips.into_iter().map(batch_clip).collect())
        })
        .await;
    drop(held);
    parsed
}

/// One clip of a batch body: its audio from `audio_base64` in the format its options name.
fn batch_clip(mut p: ClassifyParams) -> BatchClip {
    let audio = p
        .audio_base64
        .take()
        .ok_or_else(|| ServiceError::bad_request("missing_audio", "each clip carries its audio in `audio_base64`"))
        .and_then(|b64| {
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .map_err(|e| ServiceError::bad_request("invalid_base64", format!("audio_base64 is not base64: {e}")))
        })
        .and_then(|bytes| audio_of(&p, bytes));
    BatchClip { audio, model: std::mem::take(&mut p.model), version: p.version }
}

fn parse_now(
    content_type: &str,
    is_json: bool,
    query: Result<Query<ClassifyParams>, QueryRejection>,
    body: Bytes,
) -> Result<(Audio, ClassifyParams), ServiceError> {
    let query = || query.map_err(|e| ServiceError::bad_request("invalid_query", format!("bad query string: {e}")));
    if multipart::is_multipart(content_type) {
        // A form upload: the audio is the part named `file`; options stay in the query.
        let Query(p) = query()?;
        let file = multipart::file_part(content_type, &body)?.to_vec();
        drop(body);
        Ok((audio_of(&p, file)?, p))
    } else if is_json {
        let p: ClassifyParams = serde_json::from_slice(&body)
            .map_err(|e| ServiceError::bad_request("invalid_json", format!("request body is not valid JSON: {e}")))?;
        drop(body);
        let b64 = p.audio_base64.as_deref().ok_or_else(|| {
            ServiceError::bad_request("missing_audio", "JSON requests carry the audio in `audio_base64`")
        })?;
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(b64)
            .map_err(|e| ServiceError::bad_request("invalid_base64", format!("audio_base64 is not base64: {e}")))?;
        Ok((audio_of(&p, bytes)?, p))
    } else {
        let Query(p) = query()?;
        Ok((audio_of(&p, Vec::from(body))?, p))
    }
}
