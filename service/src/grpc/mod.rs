//! The `vericlip.v1.Vericlip` gRPC service: request parsing and status mapping; the work itself
//! is in `classify` (unary), `stream` (ClassifyStream) and `models` (ListModels / GetModel).

pub mod models;
mod stream;

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio_stream::Stream;
use tonic::{Request, Response, Status, Streaming};
use tracing::Instrument;
use vericlip_core::audio::PcmFormat;

use crate::api;
use crate::classify::{Classifier, request_span};
use crate::error::ServiceError;
use crate::pipeline::Audio;

pub struct VericlipService {
    pub classifier: Arc<Classifier>,
}

/// When a request reached the service stack (see `stamp_arrival`).
#[derive(Debug, Clone, Copy)]
pub struct Arrival(pub Instant);

/// A tower request mapper on the gRPC server: tonic starts its own `grpc-timeout` timer just
/// after handing the request to our stack and answers CANCELLED when it fires. Stamping the
/// arrival here lets the handler's deadline start no later than tonic's, so the client hears
/// DEADLINE_EXCEEDED from us (with the error name) even on a loaded machine.
pub fn stamp_arrival<B>(mut request: http::Request<B>) -> http::Request<B> {
    request.extensions_mut().insert(Arrival(Instant::now()));
    request
}

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

pub fn pcm_format(format: Option<&api::PcmFormat>) -> Result<(PcmFormat, u32, u32), ServiceError> {
    let f = format.ok_or_else(|| ServiceError::bad_request("missing_pcm_format", "raw PCM needs a `format`"))?;
    let encoding = match api::PcmEncoding::try_from(f.encoding) {
        Ok(api::PcmEncoding::S16le) => PcmFormat::S16Le,
        Ok(api::PcmEncoding::F32le) => PcmFormat::F32Le,
        _ => {
            return Err(ServiceError::bad_request(
                "invalid_pcm_encoding",
                format!("PCM encoding {} is not supported; use PCM_ENCODING_S16LE or PCM_ENCODING_F32LE", f.encoding),
            ));
        }
    };
    Ok((encoding, f.sample_rate, f.channels))
}

fn audio_of(request: api::ClassifyRequest) -> Result<Audio, ServiceError> {
    match request.audio {
        Some(api::classify_request::Audio::Encoded(bytes)) => Ok(Audio::Encoded(bytes)),
        Some(api::classify_request::Audio::Pcm(pcm)) => {
            let (format, sample_rate, channels) = pcm_format(pcm.format.as_ref())?;
            Ok(Audio::Pcm { data: pcm.data, format, sample_rate, channels })
        }
        None => Err(ServiceError::bad_request("missing_audio", "the request carries no audio (`encoded` or `pcm`)")),
    }
}

/// Counts a unary request whose handler was dropped before it answered.
struct Unanswered<'a> {
    classifier: &'a Classifier,
    armed: bool,
}

impl Drop for Unanswered<'_> {
    fn drop(&mut self) {
        if self.armed {
            self.classifier.metrics.request("Classify", tonic::Code::Cancelled);
        }
    }
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
        let id = c.request_id();
        let span = request_span("grpc", &id);
        let route = crate::models::Route::from_metadata(request.metadata());
        let req = request.into_inner();
        let (model, version) = (req.model.clone(), req.version);
        let work = async {
            let audio = audio_of(req)?;
            let fut = c.classify(audio, &model, version, route, deadline, id);
            match deadline {
                Some(d) => tokio::time::timeout_at(d.into(), fut).await.unwrap_or_else(|_| {
                    // Dropping the future drops the queued job's reply: the batcher skips it.
                    c.metrics.expired_in_queue.inc();
                    Err(ServiceError::DeadlineExceeded)
                }),
                None => fut.await,
            }
        };
        // If the client cancels (or its own deadline fires first), tonic drops this future:
        // the guard still counts the request, as CANCELLED.
        let mut unanswered = Unanswered { classifier: c, armed: true };
        let result = work.instrument(span.clone()).await;
        unanswered.armed = false;
        c.record("Classify", &span, &result);
        result.map(|r| Response::new(r.into())).map_err(Into::into)
    }

    type ClassifyStreamStream = ResponseStream;

    async fn classify_stream(
        &self,
        request: Request<Streaming<api::ClassifyStreamRequest>>,
    ) -> Result<Response<Self::ClassifyStreamStream>, Status> {
        let route = crate::models::Route::from_metadata(request.metadata());
        match stream::start(Arc::clone(&self.classifier), request.into_inner(), route).await {
            Ok(s) => Ok(Response::new(s)),
            Err(e) => {
                self.classifier.metrics.request("ClassifyStream", e.code());
                Err(e.into())
            }
        }
    }

    async fn list_models(
        &self,
        request: Request<api::ListModelsRequest>,
    ) -> Result<Response<api::ListModelsResponse>, Status> {
        self.classifier.metrics.request("ListModels", tonic::Code::Ok);
        Ok(Response::new(models::list(&self.classifier.store, request.into_inner().include_manifest)))
    }

    async fn get_model(&self, request: Request<api::GetModelRequest>) -> Result<Response<api::ModelInfo>, Status> {
        let r = request.into_inner();
        let result = self.classifier.store.resolve(&r.name, r.version, crate::models::Route::STABLE).map(|m| {
            let serving = self.classifier.store.snapshot().models.get(m.name()).and_then(|e| e.serving);
            models::info(&m, serving == Some(m.version()), true)
        });
        let code = result.as_ref().map_or_else(ServiceError::code, |_| tonic::Code::Ok);
        self.classifier.metrics.request("GetModel", code);
        result.map(Response::new).map_err(Into::into)
    }
}
