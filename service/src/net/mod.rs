//! Network edges shared by both ports: bounded connections (`conn`), TLS (`tls`), API keys
//! (`auth`; both re-read when their files change: `file_watch`) and request bodies counted
//! against the memory budget as they arrive (`body`).

pub mod auth;
pub mod body;
pub mod conn;
pub mod file_watch;
pub mod tls;
