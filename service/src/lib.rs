//! vericlip-server: the gRPC (and HTTP) service that classifies speech as real or synthetic.
//! One concern per module: `config`, `error` (status mapping), `metrics`, `models` (registry,
//! hot swap), `pipeline` (feature pool, dynamic batcher), `classify` (the unary flow shared by
//! gRPC and HTTP), `grpc`, `http`, `server` (wiring and shutdown).

pub mod api {
    //! Generated from `proto/vericlip/v1/vericlip.proto`.
    #![allow(clippy::all)]
    tonic::include_proto!("vericlip.v1");
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("vericlip_descriptor");
}

pub mod admin;
pub mod budget;
pub mod classify;
pub mod config;
pub mod drain;
pub mod error;
pub mod grpc;
pub mod http;
pub mod metrics;
pub mod models;
pub mod net;
pub mod pipeline;
pub mod server;
