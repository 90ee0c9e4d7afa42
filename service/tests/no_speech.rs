//! `no_speech` through the real server on every transport: digital silence and near-silence
//! (-70 dBFS noise) get `no_speech` for the clip and each segment from gRPC Classify, gRPC
//! ClassifyStream, HTTP JSON and the WebSocket, instead of a confident verdict; a clip with
//! speech and silence is judged on its speech alone; the bundled speech clips have no
//! `no_speech` segment.

mod common;

use common::{Server, pcm_f32, pcm_request, samples, temp_registry, wav_bytes};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;
use vericlip_server::api;

const RATE: usize = 16_000;

fn silence(seconds: f64) -> Vec<f32> {
    vec![0.0; (seconds * RATE as f64) as usize]
}

/// Deterministic noise at about -70 dBFS RMS (a quiet line's hiss).
fn hiss(seconds: f64) -> Vec<f32> {
    let amp = 10f64.powf(-70.0 / 20.0) * 3f64.sqrt();
    let mut x = 0x9e37_79b9_u32;
    (0..(seconds * RATE as f64) as usize)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 17;
            x ^= x << 5;
            ((f64::from(x) / f64::from(u32::MAX) * 2.0 - 1.0) * amp) as f32
        })
        .collect()
}

fn assert_no_speech(r: &api::ClassifyResponse, what: &str) {
    assert_eq!(r.verdict, api::Verdict::NoSpeech as i32, "{what}: {r:?}");
    assert_eq!(r.fake_score, 0.0, "{what}");
    assert!(!r.segments.is_empty(), "{what}: segments listed");
    for s in &r.segments {
        assert_eq!(s.verdict, api::Verdict::NoSpeech as i32, "{what}: {s:?}");
        assert_eq!(s.fake_score, 0.0, "{what}");
    }
}

async fn websocket(server: &Server, audio: &[f32]) -> Vec<Value> {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/v1/stream", server.http)).await.unwrap();
    ws.send(Message::text(json!({"format": "f32le", "sample_rate": 16000}).to_string())).await.unwrap();
    for chunk in audio.chunks(3_200) {
        ws.send(Message::binary(pcm_f32(chunk))).await.unwrap();
    }
    ws.send(Message::text(r#"{"type":"end"}"#)).await.unwrap();
    let mut messages = Vec::new();
    while let Some(Ok(m)) = ws.next().await {
        if let Message::Text(t) = m {
            messages.push(serde_json::from_str::<Value>(&t).unwrap());
        }
    }
    messages
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn silence_and_near_silence_are_no_speech_on_every_transport() {
    let reg = temp_registry("no-speech");
    let server = Server::start(&reg, &[]).await;
    let mut c = server.client().await;
    for (what, audio) in [("digital silence", silence(3.0)), ("-70 dBFS noise", hiss(3.0))] {
        // gRPC Classify, raw PCM and a WAV file.
        let r = c.classify(pcm_request(&audio)).await.unwrap().into_inner();
        assert_no_speech(&r, &format!("{what}, gRPC PCM"));
        let wav = wav_bytes(&audio, RATE as u32);
        let r = c
            .classify(api::ClassifyRequest {
                audio: Some(api::classify_request::Audio::Encoded(wav.clone())),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert_no_speech(&r, &format!("{what}, gRPC WAV"));

        // gRPC ClassifyStream: every window, then the summary.
        let (windows, summary) = common::grpc_stream(&server, &audio, 3_200).await;
        assert!(windows.len() >= 2, "{what}: {} windows", windows.len());
        assert!(windows.iter().all(|w| w.verdict == api::Verdict::NoSpeech as i32), "{what}: {windows:?}");
        assert_no_speech(&summary, &format!("{what}, gRPC stream"));

        // HTTP JSON.
        let (status, _, body) = server.http("POST", "/v1/classify", "audio/wav", &wav);
        assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
        let v: Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["verdict"], "no_speech", "{what}, HTTP: {v}");
        assert_eq!(v["fake_score"], 0.0);
        assert!(v["segments"].as_array().unwrap().iter().all(|s| s["verdict"] == "no_speech"), "{v}");

        // WebSocket.
        let messages = websocket(&server, &audio).await;
        let segments: Vec<&Value> = messages.iter().filter(|m| m["type"] == "segment").collect();
        assert!(segments.len() >= 2, "{what}: {messages:?}");
        assert!(segments.iter().all(|s| s["verdict"] == "no_speech"), "{what}: {messages:?}");
        let summary = messages.iter().find(|m| m["type"] == "summary").expect("a summary");
        assert_eq!(summary["verdict"], "no_speech", "{what}, WebSocket: {summary}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_clip_is_judged_on_its_speech_alone() {
    let reg = temp_registry("no-speech-mixed");
    let server = Server::start(&reg, &[]).await;
    let mut c = server.client().await;
    let limits = vericlip_core::AudioLimits::default();
    let speech = vericlip_core::audio::load_file(&samples()[0], RATE as u32, &limits).unwrap().samples;
    assert_eq!(speech.len(), 2 * RATE, "the first bundled sample is one 2 s segment");
    let alone = c.classify(pcm_request(&speech)).await.unwrap().into_inner();
    assert_ne!(alone.verdict, api::Verdict::NoSpeech as i32);

    // Speech, then 4 s of silence: the silent segments are no_speech, and the clip's verdict and
    // score are the speech segment's, bit for bit (silence does not dilute the score).
    let mut mixed = speech.clone();
    mixed.extend(silence(4.0));
    let r = c.classify(pcm_request(&mixed)).await.unwrap().into_inner();
    let verdicts: Vec<i32> = r.segments.iter().map(|s| s.verdict).collect();
    assert_eq!(verdicts[1..], [api::Verdict::NoSpeech as i32; 2], "{r:?}");
    assert_eq!(r.segments[0].fake_score.to_bits(), alone.segments[0].fake_score.to_bits());
    assert_eq!(r.fake_score.to_bits(), alone.fake_score.to_bits(), "{r:?}");
    assert_eq!(r.verdict, alone.verdict);

    // The bundled speech clips: no segment is taken for silence.
    for path in samples() {
        let bytes = std::fs::read(&path).unwrap();
        let r = c
            .classify(api::ClassifyRequest {
                audio: Some(api::classify_request::Audio::Encoded(bytes)),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner();
        assert!(r.segments.iter().all(|s| s.verdict != api::Verdict::NoSpeech as i32), "{}: {r:?}", path.display());
    }
}
