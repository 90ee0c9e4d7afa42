//! The WebSocket stream (`GET /v1/stream`) against gRPC `ClassifyStream` and HTTP JSON, through
//! the real server: the same audio gives the same windows and summary over every transport (one
//! pipeline), verdicts arrive while audio is still being sent, and errors carry the same names.

mod common;

use common::{Server, long_clip, pcm_f32, pcm_request, temp_registry};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use vericlip_server::api;

/// Streams `chunks` over the WebSocket after `config`; returns (messages, how many chunks had
/// been sent when the first window arrived).
async fn ws_stream(server: &Server, config: Value, chunks: &[Vec<u8>]) -> (Vec<Value>, Option<usize>) {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/v1/stream", server.http)).await.unwrap();
    ws.send(Message::text(config.to_string())).await.unwrap();
    let mut messages = Vec::new();
    let mut first_after = None;
    // A refused stream is closed by the server: sending then fails, and what it said is read below.
    for (i, chunk) in chunks.iter().enumerate() {
        if ws.send(Message::binary(chunk.clone())).await.is_err() {
            break;
        }
        // Pick up whatever has arrived, without waiting.
        while let Ok(Some(Ok(m))) = tokio::time::timeout(std::time::Duration::from_millis(5), ws.next()).await {
            if let Message::Text(t) = m {
                first_after.get_or_insert(i + 1);
                messages.push(serde_json::from_str(&t).unwrap());
            }
        }
    }
    let _ = ws.send(Message::text(r#"{"type":"end"}"#)).await;
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Text(t) = m {
            messages.push(serde_json::from_str::<Value>(&t).unwrap());
        }
    }
    (messages, first_after)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_grpc_and_http_give_the_same_scores() {
    let reg = temp_registry("websocket");
    let server = Server::start(&reg, &[]).await;
    let audio = long_clip();
    let chunks: Vec<Vec<u8>> = audio.chunks(4_000).map(pcm_f32).collect();

    // gRPC ClassifyStream, step 1 s.
    let (grpc_windows, grpc_summary) = common::grpc_stream(&server, &audio, 4_000).await;

    // The WebSocket, same audio and step.
    let (messages, first_after) =
        ws_stream(&server, json!({"format": "f32le", "sample_rate": 16000, "step_seconds": 1.0}), &chunks).await;
    let windows: Vec<&Value> = messages.iter().filter(|m| m["type"] == "segment").collect();
    let summary = messages.iter().find(|m| m["type"] == "summary").expect("a summary");
    assert!(first_after.is_some_and(|n| n < chunks.len()), "first window only after all audio: {first_after:?}");
    assert_eq!(windows.len(), grpc_windows.len());
    assert!(windows.len() >= 7, "{} windows", windows.len());
    for (w, g) in windows.iter().zip(&grpc_windows) {
        assert_eq!(w["index"], g.index);
        assert_eq!(w["start_seconds"].as_f64().unwrap(), g.start_seconds);
        assert_eq!(w["end_seconds"].as_f64().unwrap(), g.end_seconds);
        assert_eq!(w["fake_score"].as_f64().unwrap() as f32, g.fake_score, "window {}", g.index);
        let verdict = if g.verdict == api::Verdict::Fake as i32 { "fake" } else { "real" };
        assert_eq!(w["verdict"], verdict);
    }
    assert_eq!(summary["fake_score"].as_f64().unwrap() as f32, grpc_summary.fake_score);
    assert_eq!(summary["model_version"], grpc_summary.model_version);
    assert_eq!(summary["segments"].as_array().unwrap().len(), grpc_summary.segments.len());

    // Unary over gRPC and HTTP JSON: one pipeline, the same numbers.
    let unary = server.client().await.classify(pcm_request(&audio)).await.unwrap().into_inner();
    let (status, _, body) = server.http(
        "POST",
        "/v1/classify?format=f32le&sample_rate=16000",
        "application/octet-stream",
        &pcm_f32(&audio),
    );
    assert_eq!(status, 200);
    let http: Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(http["fake_score"].as_f64().unwrap() as f32, unary.fake_score);
    let http_scores: Vec<f32> =
        http["segments"].as_array().unwrap().iter().map(|s| s["fake_score"].as_f64().unwrap() as f32).collect();
    let grpc_scores: Vec<f32> = unary.segments.iter().map(|s| s.fake_score).collect();
    assert_eq!(http_scores, grpc_scores);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_errors_carry_the_error_names() {
    let reg = temp_registry("websocket-errors");
    let server = Server::start(&reg, &[]).await;
    let one_second = pcm_f32(&vec![0.1; 16_000]);
    let cases = [
        (json!({"format": "f32le", "sample_rate": 16000, "model": "nope"}), "model_not_found"),
        (json!({"format": "u8", "sample_rate": 16000}), "invalid_pcm_encoding"),
        (json!({"format": "f32le", "sample_rate": 10}), "invalid_sample_rate"),
        (json!({"format": "f32le", "sample_rate": 16000, "step_seconds": 9}), "invalid_step"),
        (json!({"sample_rate": 16000}), "invalid_stream_config"),
    ];
    for (config, name) in cases {
        let (messages, _) = ws_stream(&server, config.clone(), std::slice::from_ref(&one_second)).await;
        let error = messages.iter().find(|m| m["type"] == "error").unwrap_or_else(|| panic!("{config}: {messages:?}"));
        assert_eq!(error["error"]["name"], name, "{config}");
        assert!(!error["error"]["message"].as_str().unwrap().is_empty());
    }
    // NaN samples are refused mid-stream with the same name gRPC gives.
    let nan = pcm_f32(&[f32::NAN; 100]);
    let (messages, _) = ws_stream(&server, json!({"format": "f32le", "sample_rate": 16000}), &[nan]).await;
    assert_eq!(messages.last().unwrap()["error"]["name"], "non_finite_samples");
    // The server keeps serving.
    let (messages, _) =
        ws_stream(&server, json!({"format": "f32le", "sample_rate": 16000}), &[pcm_f32(&long_clip()[..3 * 16_000])])
            .await;
    assert_eq!(messages.last().unwrap()["type"], "summary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websockets_are_admitted_before_the_upgrade() {
    let reg = temp_registry("websocket-cap");
    let server = Server::start(&reg, &[("VERICLIP__LIMITS__MAX_STREAMS", "1")]).await;
    let url = format!("ws://{}/v1/stream", server.http);
    let (held, _) = tokio_tungstenite::connect_async(&url).await.unwrap();
    // The second is refused at the handshake (429, too_many_streams): nothing is buffered for it.
    match tokio_tungstenite::connect_async(&url).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            assert_eq!(response.status(), 429);
            assert_eq!(response.headers().get("vericlip-error").unwrap(), "too_many_streams");
        }
        other => panic!("a second stream over the limit was not refused: {other:?}"),
    }
    // A message over 1 MiB closes the stream instead of being buffered.
    let mut held = held;
    held.send(Message::text(json!({"format": "f32le", "sample_rate": 16000}).to_string())).await.unwrap();
    let _ = held.send(Message::binary(vec![0u8; (1 << 20) + 4])).await;
    let mut closed = false;
    while let Ok(Some(m)) = tokio::time::timeout(std::time::Duration::from_secs(10), held.next()).await {
        if matches!(m, Err(_) | Ok(Message::Close(_))) {
            closed = true;
            break;
        }
    }
    assert!(closed, "an oversized message did not end the stream");
    // Once it ends, the slot is free again.
    let mut ok = false;
    for _ in 0..50 {
        if tokio_tungstenite::connect_async(&url).await.is_ok() {
            ok = true;
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    assert!(ok, "the stream slot was not freed");
}
