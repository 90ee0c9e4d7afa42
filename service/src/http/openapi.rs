//! `GET /openapi.json`: the OpenAPI 3.1 document of the HTTP API (`openapi.json` beside this
//! file, embedded at build time). tests/api/ validates it with a registry validator and checks
//! every route it lists against a running server; docs/API.md is the prose beside it.

use axum::Router;
use axum::http::header;
use axum::response::IntoResponse;
use axum::routing::get;

const DOCUMENT: &str = include_str!("openapi.json");

/// The route, for any router state (the document needs none).
pub fn routes<S: Clone + Send + Sync + 'static>() -> Router<S> {
    Router::new().route("/openapi.json", get(document))
}

async fn document() -> impl IntoResponse {
    ([(header::CONTENT_TYPE, "application/json"), (header::CACHE_CONTROL, "no-cache")], DOCUMENT)
}

#[cfg(test)]
mod tests {
    use super::DOCUMENT;

    /// The embedded document is JSON, OpenAPI 3.1, and lists the routes the HTTP port serves
    /// (the full validation and the route-by-route check are in tests/api/).
    #[test]
    fn document_is_openapi_3_1_with_the_api_routes() {
        let doc: serde_json::Value = serde_json::from_str(DOCUMENT).expect("openapi.json is JSON");
        assert_eq!(doc["openapi"], "3.1.0");
        for (path, method) in [
            ("/v1/classify", "post"),
            ("/v1/models", "get"),
            ("/v1/stream", "get"),
            ("/healthz", "get"),
            ("/readyz", "get"),
            ("/metrics", "get"),
            ("/openapi.json", "get"),
        ] {
            assert!(doc["paths"][path][method].is_object(), "{method} {path} missing from openapi.json");
        }
    }
}
