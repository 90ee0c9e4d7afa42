//! vericlip-proto: Vericlip's public API as Rust types, shared by the server and the `vericlip`
//! client. `v1` is generated from `vericlip/v1/vericlip.proto` (messages, the gRPC client and
//! server traits, the descriptor set for reflection); `result` is what a classification
//! answers, with its JSON form (HTTP, WebSocket, the CLI's `--json`) and its conversions to and
//! from the gRPC messages.

pub mod v1 {
    //! Generated from `vericlip/v1/vericlip.proto`.
    #![allow(clippy::all)]
    tonic::include_proto!("vericlip.v1");
    pub const FILE_DESCRIPTOR_SET: &[u8] = tonic::include_file_descriptor_set!("vericlip_descriptor");
}

pub mod result;
