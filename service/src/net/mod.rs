//! Network edges shared by both ports: bounded connections (`conn`), TLS (`tls`), API keys
//! (`auth`) and request bodies counted against the memory budget as they arrive (`body`).

pub mod auth;
pub mod body;
pub mod conn;
pub mod tls;
