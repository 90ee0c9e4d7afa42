//! vericlip-server: the gRPC (and HTTP) service that classifies speech as real or synthetic.
//! A transport-free core: `classify` (the context and the one-shot path), `stream` (the
//! streaming path), `input` (declared audio), `model_info` (the model listing), `error` (error
//! classes and names), `models` (registry, hot swap), `pipeline` (feature pool, dynamic
//! batcher), `budget`, `drain`, `config`, `metrics`, `net` (connections, TLS, keys, bodies).
//! The transports map to and from it: `grpc`, `http` (with the WebSocket), `admin`; `server`
//! wires them (and holds every tower layer, `server::layers`). docs/ARCHITECTURE.md draws it.

/// The API's gRPC messages and service (the `vericlip-proto` crate).
pub use vericlip_proto::v1 as api;

pub mod admin;
pub mod budget;
pub mod classify;
pub mod config;
pub mod correlation;
pub mod drain;
pub mod error;
pub mod grpc;
pub mod http;
pub mod input;
pub mod metrics;
pub mod model_info;
pub mod models;
pub mod net;
pub mod pipeline;
pub mod server;
pub mod stream;
