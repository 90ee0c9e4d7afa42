//! Model versions from the registry: loading, the catalog requests resolve against, the watcher
//! that follows the registry's serving states and hot-swaps versions, and the canary routing.

mod loaded;
pub mod route;
mod store;
pub mod watch;

pub use loaded::{LoadOptions, LoadedModel};
pub use route::Route;
pub use store::{Catalog, ModelStore, ModelVersions, Rejected};
