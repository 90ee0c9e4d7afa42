//! The page for people at `/` (upload or record audio, see the verdict per segment), its static
//! assets (embedded in the binary: no CDN, no build step), the model card, and `GET /v1/models`
//! (what the page's version selector and metrics panel show).

use std::sync::LazyLock;

use axum::Json;
use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use serde::Serialize;

use super::AppState;
use crate::model_info::ModelInfo;

const INDEX: &str = include_str!("../../web/index.html");
const APP_JS: &str = include_str!("../../web/app.js");
const STYLE: &str = include_str!("../../web/style.css");
const WORKLET: &str = include_str!("../../web/pcm-worklet.js");
const FAVICON: &str = include_str!("../../web/favicon.svg");
const MODEL_CARD: &str = include_str!("../../../docs/MODEL_CARD.md");

fn asset(content_type: &'static str, body: &'static str) -> impl IntoResponse {
    ([(header::CONTENT_TYPE, content_type), (header::CACHE_CONTROL, "no-cache")], body)
}

pub async fn index() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX)
}

pub async fn app_js() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", APP_JS)
}

pub async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE)
}

pub async fn worklet() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", WORKLET)
}

/// Browsers ask for `/favicon.ico` on every load; an SVG answers both names.
pub async fn favicon() -> impl IntoResponse {
    asset("image/svg+xml", FAVICON)
}

pub async fn model_card() -> impl IntoResponse {
    static CARD: LazyLock<String> = LazyLock::new(|| relative_data_paths(MODEL_CARD));
    ([(header::CONTENT_TYPE, "text/markdown; charset=utf-8"), (header::CACHE_CONTROL, "no-cache")], CARD.as_str())
}

/// The card's commands as a reader would type them: a corpus path given to `--out` or `--data`
/// is shown relative (`data/corpus-v4`), not as the absolute path of the machine the model was
/// trained on.
fn relative_data_paths(card: &str) -> String {
    let mut out = String::with_capacity(card.len());
    let mut after_flag = false;
    let mut rest = card;
    while !rest.is_empty() {
        let word_end = rest.find(char::is_whitespace).unwrap_or(rest.len());
        let (word, tail) = rest.split_at(word_end);
        let space_end = tail.find(|c: char| !c.is_whitespace()).unwrap_or(tail.len());
        let (space, next) = tail.split_at(space_end);
        if after_flag && word.starts_with('/') {
            let path_end = word.find(|c: char| !(c.is_alphanumeric() || "/._-".contains(c))).unwrap_or(word.len());
            let (path, suffix) = word.split_at(path_end);
            let name = path.trim_end_matches('/').rsplit('/').next().unwrap_or(path);
            out.push_str("data/");
            out.push_str(name);
            out.push_str(suffix);
        } else {
            out.push_str(word);
        }
        out.push_str(space);
        after_flag = matches!(word, "--out" | "--data");
        rest = next;
    }
    out
}

/// `GET /v1/models`: the proto's JSON mapping of `ListModelsResponse`, with the proto's field
/// names (as every HTTP answer): the same listing, in the same order, as gRPC `ListModels`.
#[derive(Debug, Serialize)]
pub struct ModelsJson {
    pub models: Vec<ModelInfo>,
    /// Published versions that failed to load, and why.
    pub rejected: Vec<RejectedJson>,
    pub manifests_omitted: u32,
}

#[derive(Debug, Serialize)]
pub struct RejectedJson {
    pub name: String,
    pub version: u64,
    pub reason: String,
}

/// The loaded models (every version, by name then version, with its role: serving, canary and
/// its share of the traffic) and the rejected versions.
pub async fn list_models(State(s): State<AppState>) -> Json<ModelsJson> {
    let listing = s.classifier.models(false);
    let rejected = listing
        .rejected
        .into_iter()
        .map(|r| RejectedJson { name: r.name, version: r.version, reason: r.reason })
        .collect();
    Json(ModelsJson {
        models: listing.models.into_iter().flat_map(|m| m.versions).collect(),
        rejected,
        manifests_omitted: listing.manifests_omitted,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_card_shows_no_absolute_corpus_path() {
        let card = relative_data_paths(MODEL_CARD);
        for line in card.lines() {
            assert!(!line.contains("--out /") && !line.contains("--data /"), "{line}");
        }
        assert!(!card.contains("/work/"), "an absolute path of the training machine is shown");
        assert!(card.contains("vericlip-train corpus --out data/corpus-v4 --mode full"));
        // Across a line break, and everything else byte for byte.
        assert_eq!(
            relative_data_paths("loeo --data\n/x/y/corpus-v4 --families F`"),
            "loeo --data\ndata/corpus-v4 --families F`"
        );
        assert_eq!(relative_data_paths("a  /abs/path\n\n--registry models"), "a  /abs/path\n\n--registry models");
    }
}
