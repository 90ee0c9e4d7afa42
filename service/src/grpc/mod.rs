//! The `vericlip.v1.Vericlip` gRPC service: reads requests into the service's terms, answers
//! with `From` conversions (`error`: statuses, `models`: listings, the results in
//! `vericlip-proto`); the work itself is the context's (`crate::classify`, `crate::stream`).
//! Everything that speaks tonic lives here and in the server wiring (`crate::server`).

pub mod error;
pub mod models;
mod stream;

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;

use crate::api;
use crate::classify::{BatchClip, Classifier, request_span};
use crate::correlation::Correlation;
use crate::error::{ErrorClass, ServiceError};
use crate::input::{AudioFormat, Spelling};

pub struct VericlipService {
    classifier: Arc<Classifier>,
}

/// The gRPC service over `classifier`, taking and sending messages of up to `max_message_bytes`.
pub fn service(
    classifier: Arc<Classifier>,
    max_message_bytes: usize,
) -> api::vericlip_server::VericlipServer<VericlipService> {
    api::vericlip_server::VericlipServer::new(VericlipService { classifier })
        .max_decoding_message_size(max_message_bytes)
        .max_encoding_message_size(max_message_bytes)
}

/// When a request reached the service stack (stamped by `server::layers`).
#[derive(Debug, Clone, Copy)]
pub struct Arrival(pub Instant);

/// The client's deadline from `grpc-timeout`, counted from the request's arrival and a
/// millisecond early, so that it fires before tonic's timer.
pub fn deadline<T>(request: &Request<T>) -> Option<Instant> {
    let value = request.metadata().get("grpc-timeout")?.to_str().ok()?;
    let (digits, unit) = value.split_at(value.len().checked_sub(1)?);
    let n: u64 = digits.parse().ok()?;
    let timeout = match unit {
        "H" => Duration::from_secs(n.saturating_mul(3600)),
        "M" => Duration::from_secs(n.saturating_mul(60)),
        "S" => Duration::from_secs(n),
        "m" => Duration::from_millis(n),
        "u" => Duration::from_micros(n),
        "n" => Duration::from_nanos(n),
        _ => return None,
    };
    let arrived = request.extensions().get::<Arrival>().map_or_else(Instant::now, |a| a.0);
    arrived.checked_add(timeout.saturating_sub(Duration::from_millis(1)))
}

/// How the proto spells the PCM encodings.
const SPELLING: Spelling = Spelling { s16le: "PCM_ENCODING_S16LE", f32le: "PCM_ENCODING_F32LE" };

/// A `PcmFormat` message (absent: none sent) as the service's audio format.
pub fn pcm_format(format: Option<&api::PcmFormat>) -> Result<AudioFormat, ServiceError> {
    let encoding = format.map(|f| {
        api::PcmEncoding::try_from(f.encoding).map_or_else(|_| f.encoding.to_string(), |e| e.as_str_name().to_string())
    });
    let sample_rate = format.map(|f| f.sample_rate);
    AudioFormat::pcm(encoding.as_deref(), SPELLING, sample_rate, format.map_or(1, |f| f.channels))
}

fn audio_of(request: api::ClassifyRequest) -> Result<crate::pipeline::Audio, ServiceError> {
    match request.audio {
        Some(api::classify_request::Audio::Encoded(bytes)) => Ok(AudioFormat::Encoded.with(bytes)),
        Some(api::classify_request::Audio::Pcm(pcm)) => Ok(pcm_format(pcm.format.as_ref())?.with(pcm.data)),
        None => Err(ServiceError::bad_request("missing_audio", "the request carries no audio (`encoded` or `pcm`)")),
    }
}

/// Counts a unary request whose handler was dropped before it answered.
struct Unanswered<'a> {
    classifier: &'a Classifier,
    rpc: &'static str,
    armed: bool,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.classifier.count(self.rpc, Err(ErrorClass::Cancelled));
        }
    }
}

/// A batch's clip as the service reads it: its audio, or the error that is that clip's answer.
fn batch_clip(request: api::ClassifyRequest) -> BatchClip {
    let (model, version) = (request.model.clone(), request.version);
    BatchClip { audio: audio_of(request), model, version }
}

/// One clip's answer in a batch: its classification, or its error (name, status, message).
fn batch_result(result: Result<crate::pipeline::ClipResult, ServiceError>) -> api::ClassifyBatchResult {
    use api::classify_batch_result::Result as R;
    let result = match result {
        Ok(r) => R::Response(r.into()),
        Err(e) => R::Error(api::ClipError {
            name: e.name().to_string(),
            code: e.class().name().to_string(),
            message: e.public_message(),
        }),
    };
    api::ClassifyBatchResult { result: Some(result) }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<api::ClassifyStreamResponse, Status>> + Send>>;

#[tonic::async_trait]
impl api::vericlip_server::Vericlip for VericlipService {
    async fn classify(
        &self,
        request: Request<api::ClassifyRequest>,
    ) -> Result<Response<api::ClassifyResponse>, Status> {
        let c = &self.classifier;
        let deadline = deadline(&request);
        let id = Correlation::of(request.extensions().get()).id;
        let span = request_span("grpc", &id);
        let route = route(request.metadata());
        let req = request.into_inner();
        let (model, version) = (req.model.clone(), req.version);
        let work = async {
            let audio = audio_of(req)?;
            c.classify(audio, &model, version, route, deadline, id).await
        };
        // If the client cancels (or its own deadline fires first), tonic drops this future:
        // the guard still counts the request, as CANCELLED.
        let mut unanswered = Unanswered { classifier: c, rpc: "Classify", armed: true };
        let result = work.instrument(span.clone()).await;
        unanswered.armed = false;
        c.record("Classify", &span, &result);
        result.map(|r| Response::new(r.into())).map_err(Into::into)
    }

    async fn classify_batch(
        &self,
        request: Request<api::ClassifyBatchRequest>,
    ) -> Result<Response<api::ClassifyBatchResponse>, Status> {
        let c = &self.classifier;
        let deadline = deadline(&request);
        let id = Correlation::of(request.extensions().get()).id;
        let route = route(request.metadata());
        let clips = request.into_inner().clips.into_iter().map(batch_clip).collect();
        let mut unanswered = Unanswered { classifier: c, rpc: "ClassifyBatch", armed: true };
        let result = c.classify_batch("grpc", "ClassifyBatchClip", clips, route, deadline, &id).await;
        unanswered.armed = false;
        c.count("ClassifyBatch", ServiceError::outcome(&result));
        let results = result.map_err(Status::from)?;
        Ok(Response::new(api::ClassifyBatchResponse {
            results: results.into_iter().map(batch_result).collect(),
            request_id: id,
        }))
    }

    type ClassifyStreamStream = ResponseStream;

    async fn classify_stream(
        &self,
        request: Request<Streaming<api::ClassifyStreamRequest>>,
    ) -> Result<Response<Self::ClassifyStreamStream>, Status> {
        let route = route(request.metadata());
        let id = Correlation::of(request.extensions().get()).id;
        match stream::start(Arc::clone(&self.classifier), request.into_inner(), route, id).await {
            Ok(s) => Ok(Response::new(s)),
            Err(e) => {
                self.classifier.count("ClassifyStream", Err(e.class()));
                Err(e.into())
            }
        }
    }

    async fn list_models(
        &self,
        request: Request<api::ListModelsRequest>,
    ) -> Result<Response<api::ListModelsResponse>, Status> {
        self.classifier.count("ListModels", Ok(()));
        Ok(Response::new(self.classifier.models(request.into_inner().include_manifest).into()))
    }

    async fn get_model(&self, request: Request<api::GetModelRequest>) -> Result<Response<api::ModelInfo>, Status> {
        let r = request.into_inner();
        let result = self.classifier.model(&r.name, r.version);
        self.classifier.count("GetModel", ServiceError::outcome(&result));
        result.map(|m| Response::new(m.into())).map_err(Into::into)
    }
}

/// The canary side of a call, from its `x-vericlip-routing-key` metadata (else random).
fn route(metadata: &tonic::metadata::MetadataMap) -> crate::models::Route {
    crate::models::Route::from_key(metadata.get(crate::models::route::ROUTING_KEY_HEADER).map(|v| v.as_bytes()))
}
