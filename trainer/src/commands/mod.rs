//! The `vericlip-train` subcommands, one file each: what each reads, which stages of
//! `crate::pipeline` it runs, and its summary. `main.rs` only parses arguments and prints.

pub mod corpus;
pub mod eval;
pub mod extract;
pub mod fit;
pub mod import;
pub mod loeo;
pub mod model;
