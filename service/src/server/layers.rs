//! Every tower layer the ports put in front of their services, and the gRPC port's stack.
//!
//! gRPC, outermost first (`grpc`): an oversized message's status rewritten, the arrival stamped
//! (for the client's deadline), the body counted against the memory budget, the API key, the
//! drain. HTTP: the API key on the `/v1/*` routes (`require_api_key`), the drain around
//! everything (`DrainLayer`, counted in flight). The admin port has none.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::BodyExt;
use tonic::body::Body;
use tower::ServiceBuilder;
use tower::layer::util::{Identity, Stack};
use tower::util::{MapRequestLayer, MapResponseLayer};

use crate::budget::MemoryBudget;
use crate::error::{ERROR_NAME_KEY, ServiceError};
use crate::grpc::Arrival;
use crate::net::auth::ApiKeys;
use crate::net::body::Budgeted;

type GrpcRequest = http::Request<Body>;
type GrpcResponse = http::Response<Body>;

/// The gRPC port's layers (see the module's comment for the order).
pub type GrpcStack<Bodies> = ServiceBuilder<
    Stack<
        DrainLayer,
        Stack<
            GrpcAuthLayer,
            Stack<
                MapRequestLayer<Bodies>,
                Stack<
                    MapRequestLayer<fn(GrpcRequest) -> GrpcRequest>,
                    Stack<MapResponseLayer<fn(GrpcResponse) -> GrpcResponse>, Identity>,
                >,
            >,
        >,
    >,
>;

/// The gRPC port's stack: bodies held against `budget` and cut when they stall for `idle`;
/// with `keys`, calls need one of them.
pub fn grpc(
    keys: Option<Arc<ApiKeys>>,
    budget: Arc<MemoryBudget>,
    idle: Duration,
) -> GrpcStack<impl Fn(GrpcRequest) -> GrpcRequest + Clone> {
    let bodies =
        move |r: GrpcRequest| r.map(|b| Body::new(Budgeted::grpc(b, &budget, idle, crate::grpc::error::body_refusal)));
    ServiceBuilder::new()
        .layer(MapResponseLayer::new(oversized_message_status as fn(GrpcResponse) -> GrpcResponse))
        .layer(MapRequestLayer::new(stamp_arrival as fn(GrpcRequest) -> GrpcRequest))
        .layer(MapRequestLayer::new(bodies))
        .layer(GrpcAuthLayer { keys })
        .layer(DrainLayer { count: false })
}

/// tonic rejects a request message over `max_decoding_message_size` with OUT_OF_RANGE before
/// the service sees it; gRPC's convention (grpc-core, grpc-go) is RESOURCE_EXHAUSTED. This
/// response mapper rewrites that one case and adds the error name.
fn oversized_message_status(mut response: GrpcResponse) -> GrpcResponse {
    let headers = response.headers_mut();
    let out_of_range = headers.get("grpc-status").is_some_and(|v| v == "11");
    let too_large = headers
        .get("grpc-message")
        .and_then(|v| v.to_str().ok())
        .is_some_and(|m| m.contains("too large") || m.contains("too%20large"));
    if out_of_range && too_large {
        headers.insert("grpc-status", http::HeaderValue::from_static("8"));
        headers.insert(ERROR_NAME_KEY, http::HeaderValue::from_static("message_too_large"));
    }
    response
}

/// tonic starts its own `grpc-timeout` timer just after handing the request to our stack and
/// answers CANCELLED when it fires. Stamping the arrival here lets the handler's deadline
/// (`grpc::deadline`) start no later than tonic's, so the client hears DEADLINE_EXCEEDED from us
/// (with the error name) even on a loaded machine.
fn stamp_arrival(mut request: GrpcRequest) -> GrpcRequest {
    request.extensions_mut().insert(Arrival(Instant::now()));
    request
}

/// gRPC paths that need no key: health checking (kubelet, load balancers).
fn open_grpc_path(path: &str) -> bool {
    path.starts_with("/grpc.health.v1.Health/")
}

/// Calls without a valid key are answered UNAUTHENTICATED before they reach a service.
#[derive(Clone)]
pub struct GrpcAuthLayer {
    keys: Option<Arc<ApiKeys>>,
}

impl<S> tower::Layer<S> for GrpcAuthLayer {
    type Service = GrpcAuth<S>;

    fn layer(&self, inner: S) -> GrpcAuth<S> {
        GrpcAuth { inner, keys: self.keys.clone() }
    }
}

#[derive(Clone)]
pub struct GrpcAuth<S> {
    inner: S,
    keys: Option<Arc<ApiKeys>>,
}

impl<S, B> tower::Service<http::Request<B>> for GrpcAuth<S>
where
    S: tower::Service<http::Request<B>, Response = GrpcResponse>,
    S::Future: Send + 'static,
{
    type Response = GrpcResponse;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), S::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: http::Request<B>) -> Self::Future {
        if let Some(keys) = &self.keys
            && !open_grpc_path(request.uri().path())
            && !keys.allows(request.headers().get(http::header::AUTHORIZATION))
        {
            let response = tonic::Status::from(ServiceError::Unauthenticated).into_http();
            return Box::pin(async move { Ok(response) });
        }
        Box::pin(self.inner.call(request))
    }
}

/// How much of a refused (unauthenticated) upload is read before answering.
const REFUSED_BODY_DRAIN: usize = 1 << 20;

/// The HTTP API routes' key check (`axum::middleware::from_fn_with_state`): with keys, a request
/// needs `authorization: Bearer KEY` (the WebSocket upgrade also takes `?api_key=`, see
/// `net::auth`).
pub async fn require_api_key(State(keys): State<Option<Arc<ApiKeys>>>, request: Request, next: Next) -> Response {
    let refused = keys.and_then(|k| match ApiKeys::http_key(&request) {
        Err(e) => Some(e),
        Ok(presented) => (!k.allows(presented.as_ref())).then_some(ServiceError::Unauthenticated),
    });
    let Some(refused) = refused else { return next.run(request).await };
    // Read (and drop, frame by frame) a small upload before refusing it, so the client sees
    // the 401 rather than a reset connection; larger ones are cut off.
    let mut body = request.into_body();
    let drain = async {
        let mut read = 0;
        while read <= REFUSED_BODY_DRAIN
            && let Some(Ok(frame)) = body.frame().await
        {
            read += frame.data_ref().map_or(0, |d| d.len());
        }
    };
    let _ = tokio::time::timeout(Duration::from_secs(2), drain).await;
    refused.into_response()
}

/// For both ports' services: each request is marked with whether it arrived before the drain
/// began and, with `count`, counted in flight until its response is ready (`crate::drain`).
#[derive(Debug, Clone, Copy)]
pub struct DrainLayer {
    pub count: bool,
}

impl<S> tower::Layer<S> for DrainLayer {
    type Service = DrainService<S>;

    fn layer(&self, inner: S) -> Self::Service {
        DrainService { inner, count: self.count }
    }
}

#[derive(Debug, Clone)]
pub struct DrainService<S> {
    inner: S,
    count: bool,
}

impl<S, R> tower::Service<R> for DrainService<S>
where
    S: tower::Service<R>,
    S::Future: Send + 'static,
{
    type Response = S::Response;
    type Error = S::Error;
    type Future = Pin<Box<dyn Future<Output = Result<S::Response, S::Error>> + Send>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        self.inner.poll_ready(cx)
    }

    fn call(&mut self, request: R) -> Self::Future {
        Box::pin(crate::drain::track(self.count, self.inner.call(request)))
    }
}
