//! Model versions from the registry: loading, the catalog requests resolve against, and the
//! watcher that hot-swaps versions as they are published or removed.

mod loaded;
mod store;
pub mod watch;

pub use loaded::{LoadOptions, LoadedModel};
pub use store::{Catalog, ModelStore, ModelVersions, Rejected};
