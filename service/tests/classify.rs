//! Correctness through the real server: unary scores equal an in-process reference (core features
//! and ONNX Runtime, as the trainer scores), streaming windows equal unary/reference windows and
//! arrive before the stream ends, HTTP equals gRPC, and model listing / selection work.

mod common;

use std::time::Duration;

use common::{Server, f32_16k, long_clip, pcm_f32, pcm_request, samples, temp_registry};
use ndarray::Array3;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use vericlip_core::audio::{load_file, resample};
use vericlip_core::registry::load_version;
use vericlip_core::runtime::{self, ModelSession};
use vericlip_core::{AudioLimits, FeatureExtractor};
use vericlip_server::api;

/// Reference scores of `audio` (model-rate) windows every `step` samples, by version 1.
fn reference(registry: &std::path::Path, audio: &[f32], step: usize) -> Vec<f32> {
    reference_of(&registry.join("vericlip-lstm/1"), audio, step)
}

/// Reference scores of the version in `dir`, computed with that version's own feature spec.
fn reference_of(dir: &std::path::Path, audio: &[f32], step: usize) -> Vec<f32> {
    let v = load_version(dir).unwrap();
    let spec = v.manifest.feature_spec.clone();
    let ex = FeatureExtractor::new(spec.clone()).unwrap();
    let segs = spec.segments(audio.len(), step);
    let (frames, nf) = (spec.frames_per_segment(), spec.n_features());
    let mut batch = Array3::<f32>::zeros((segs.len(), frames, nf));
    for (i, s) in segs.iter().enumerate() {
        let mut f = ex.extract(&s.samples(audio, spec.segment_samples)).unwrap();
        v.manifest.normalization.apply(f.as_slice_mut().unwrap());
        batch.slice_mut(ndarray::s![i, .., ..]).assign(&f);
    }
    let mut session = ModelSession::from_bytes(runtime::init(None).unwrap(), &v.model_onnx).unwrap();
    session.run(batch.view()).unwrap()
}

fn assert_close(got: &[f32], want: &[f32], what: &str) {
    assert_eq!(got.len(), want.len(), "{what}: segment count");
    for (i, (g, w)) in got.iter().zip(want).enumerate() {
        assert!((g - w).abs() <= 1e-5, "{what}: segment {i}: server {g}, reference {w}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unary_matches_the_reference_and_http_matches_grpc() {
    let reg = temp_registry("classify-unary");
    let server = Server::start(&reg, &[]).await;
    let mut c = server.client().await;
    for path in samples() {
        let bytes = std::fs::read(&path).unwrap();
        let r = c
            .classify(api::ClassifyRequest {
                audio: Some(api::classify_request::Audio::Encoded(bytes.clone())),
                model: String::new(),
                version: 0,
            })
            .await
            .unwrap()
            .into_inner();
        let audio = load_file(&path, 16_000, &AudioLimits::default()).unwrap().samples;
        let want = reference(&reg, &audio, 32_000);
        let got: Vec<f32> = r.segments.iter().map(|s| s.fake_score).collect();
        assert_close(&got, &want, &path.display().to_string());
        let mean = want.iter().map(|&s| f64::from(s)).sum::<f64>() / want.len() as f64;
        assert!((f64::from(r.fake_score) - mean).abs() < 1e-5);
        let fake = mean >= r.threshold;
        assert_eq!(r.verdict, if fake { api::Verdict::Fake } else { api::Verdict::Real } as i32);
        assert_eq!((r.model.as_str(), r.model_version), ("vericlip-lstm", 1));
        assert!((r.duration_seconds - audio.len() as f64 / 16_000.0).abs() < 1e-9);
        let t = r.timings.unwrap();
        assert!(t.total_ms > 0.0 && t.inference_ms > 0.0 && t.total_ms >= t.inference_ms);

        let (status, head, body) = server.http("POST", "/v1/classify", "audio/wav", &bytes);
        assert_eq!(status, 200, "{head}");
        let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!((j["fake_score"].as_f64().unwrap() - f64::from(r.fake_score)).abs() < 1e-6);
        assert_eq!(j["verdict"], if fake { "fake" } else { "real" });
        assert_eq!(j["segments"].as_array().unwrap().len(), r.segments.len());

        use base64::Engine;
        let b64 = base64::engine::general_purpose::STANDARD.encode(&bytes);
        let body = serde_json::json!({"audio_base64": b64, "model": "vericlip-lstm", "version": 1}).to_string();
        let (status, head, body) = server.http("POST", "/v1/classify", "application/json", body.as_bytes());
        assert_eq!(status, 200, "{head}");
        let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert!((j["fake_score"].as_f64().unwrap() - f64::from(r.fake_score)).abs() < 1e-6);

        // What most people try first: a form upload (`curl -F file=@clip.wav`), the same answer
        // as the raw body.
        let (status, _, raw) = server.http("POST", "/v1/classify", "audio/wav", &bytes);
        assert_eq!(status, 200);
        let raw: serde_json::Value = serde_json::from_slice(&raw).unwrap();
        let out = std::process::Command::new("curl")
            .args(["-sS", "--max-time", "60", "-w", "\n%{http_code}", "-F"])
            .arg(format!("file=@{}", path.display()))
            .args(["-F", "note=ignored"])
            .arg(format!("http://{}/v1/classify", server.http))
            .output()
            .expect("curl");
        let text = String::from_utf8_lossy(&out.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap();
        assert_eq!(code, "200", "{text}{}", String::from_utf8_lossy(&out.stderr));
        let form: serde_json::Value = serde_json::from_str(body).unwrap();
        for field in ["verdict", "fake_score", "threshold", "segments", "model", "model_version", "duration_seconds"] {
            assert_eq!(form[field], raw[field], "{}: {field}", path.display());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_windows_arrive_early_and_match_unary_and_reference() {
    let reg = temp_registry("classify-stream");
    let server = Server::start(&reg, &[]).await;
    let mut c = server.client().await;
    let audio = long_clip();
    assert!(audio.len() > 8 * 16_000);

    // Unary over raw PCM: non-overlapping windows.
    let unary = c.classify(pcm_request(&audio)).await.unwrap().into_inner();

    // The same audio streamed in uneven chunks with a 2 s step gives the same windows.
    let stream = |rate: u32, encoding: api::PcmEncoding, step: f64, chunks: Vec<Vec<u8>>| {
        let mut c = c.clone();
        async move {
            let (tx, rx) = mpsc::channel(4);
            let config = api::StreamConfig {
                format: Some(api::stream_config::Format::Pcm(api::PcmFormat {
                    encoding: encoding as i32,
                    sample_rate: rate,
                    channels: 1,
                })),
                step_seconds: step,
                model: String::new(),
                version: 0,
            };
            tx.send(api::ClassifyStreamRequest {
                message: Some(api::classify_stream_request::Message::Config(config)),
            })
            .await
            .unwrap();
            let mut inbound = c.classify_stream(ReceiverStream::new(rx)).await.unwrap().into_inner();
            // The first window's verdict comes back while the client still holds the rest.
            let mut sent = 0;
            let mut first = None;
            for chunk in &chunks {
                tx.send(api::ClassifyStreamRequest {
                    message: Some(api::classify_stream_request::Message::Audio(chunk.clone())),
                })
                .await
                .unwrap();
                sent += 1;
                if first.is_none()
                    && let Ok(m) = tokio::time::timeout(Duration::from_millis(20), inbound.message()).await
                {
                    first = Some((sent, m.unwrap().unwrap()));
                }
            }
            if first.is_none() {
                first = Some((sent, inbound.message().await.unwrap().unwrap()));
            }
            drop(tx);
            let (sent_before_first, first) = first.unwrap();
            let mut segments = vec![first];
            while let Some(m) = inbound.message().await.unwrap() {
                segments.push(m);
            }
            let mut windows = Vec::new();
            let mut summary = None;
            for m in segments {
                match m.message.unwrap() {
                    api::classify_stream_response::Message::Segment(s) => windows.push(s),
                    api::classify_stream_response::Message::Summary(s) => summary = Some(s),
                }
            }
            (sent_before_first, chunks.len(), windows, summary.expect("a summary after half-close"))
        }
    };
    let chunks: Vec<Vec<u8>> = audio.chunks(7_919).map(pcm_f32).collect();
    let (early, total, windows, summary) = stream(16_000, api::PcmEncoding::F32le, 2.0, chunks).await;
    assert!(early < total, "first verdict only after all {total} chunks were sent");
    let got: Vec<f32> = windows.iter().map(|s| s.fake_score).collect();
    let want: Vec<f32> = unary.segments.iter().map(|s| s.fake_score).collect();
    assert_close(&got, &want, "stream (step 2 s) vs unary");
    for (i, (w, u)) in windows.iter().zip(&unary.segments).enumerate() {
        assert_eq!(
            (w.index as usize, w.start_seconds, w.end_seconds, w.verdict),
            (i, u.start_seconds, u.end_seconds, u.verdict)
        );
    }
    assert!((summary.fake_score - unary.fake_score).abs() < 1e-5);
    assert_eq!(summary.verdict, unary.verdict);

    // Sliding 1 s windows over 8 kHz s16le audio: the server resamples as chunks arrive; the
    // windows equal the reference over the whole clip resampled at once.
    let at8k = resample(&audio, 16_000, 8_000).unwrap();
    let s16: Vec<u8> = at8k.iter().flat_map(|s| ((s.clamp(-1.0, 1.0) * 32767.0) as i16).to_le_bytes()).collect();
    let back: Vec<f32> = s16.chunks_exact(2).map(|b| f32::from(i16::from_le_bytes([b[0], b[1]])) / 32768.0).collect();
    let want = reference(&reg, &resample(&back, 8_000, 16_000).unwrap(), 16_000);
    let chunks: Vec<Vec<u8>> = s16.chunks(1_234).map(<[u8]>::to_vec).collect();
    let (_, _, windows, summary) = stream(8_000, api::PcmEncoding::S16le, 1.0, chunks).await;
    let got: Vec<f32> = windows.iter().map(|s| s.fake_score).collect();
    assert_close(&got, &want, "stream (8 kHz, step 1 s) vs reference");
    assert_eq!(summary.segments.len(), windows.len());
    assert!(windows.windows(2).all(|p| (p[1].start_seconds - p[0].start_seconds - 1.0).abs() < 1e-9));

    // An encoded file split into arbitrary chunks: decoded at half-close, same windows.
    let path = samples().into_iter().max_by_key(|p| std::fs::metadata(p).unwrap().len()).unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let want = reference(&reg, &load_file(&path, 16_000, &AudioLimits::default()).unwrap().samples, 16_000);
    use api::classify_stream_request::Message as M;
    let config = M::Config(api::StreamConfig {
        format: Some(api::stream_config::Format::Encoded(true)),
        step_seconds: 1.0,
        ..Default::default()
    });
    let msgs: Vec<_> = std::iter::once(config)
        .chain(bytes.chunks(5_000).map(|b| M::Audio(b.to_vec())))
        .map(|m| api::ClassifyStreamRequest { message: Some(m) })
        .collect();
    let mut inbound = c.classify_stream(tokio_stream::iter(msgs)).await.unwrap().into_inner();
    let mut got = Vec::new();
    let mut summary = None;
    while let Some(m) = inbound.message().await.unwrap() {
        match m.message.unwrap() {
            api::classify_stream_response::Message::Segment(s) => got.push(s.fake_score),
            api::classify_stream_response::Message::Summary(s) => summary = Some(s),
        }
    }
    assert!(want.len() >= 2, "{} windows", want.len());
    assert_close(&got, &want, "encoded stream (step 1 s) vs reference");
    assert_eq!(summary.expect("summary").segments.len(), want.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn models_are_listed_and_selected_by_name_and_version() {
    let reg = temp_registry("classify-models");
    let server = Server::start(&reg, &[]).await;
    let mut c = server.client().await;
    let list = c.list_models(api::ListModelsRequest::default()).await.unwrap().into_inner();
    assert_eq!(list.models.len(), 1);
    let m = &list.models[0];
    assert_eq!((m.name.as_str(), m.version, m.serving), ("vericlip-lstm", 1, true));
    assert_eq!(m.execution_provider, "cpu");
    assert_eq!((m.frames, m.features, m.sample_rate), (126, 96, 16_000));
    assert!(m.test_metrics.contains_key("eer") && m.sha256.len() == 64);
    // Validation beside test, each from its own split of the manifest (not one copied into both).
    let manifest: serde_json::Value =
        serde_json::from_slice(&std::fs::read(reg.join("vericlip-lstm/1/manifest.json")).unwrap()).unwrap();
    for (split, got) in [("validation", &m.validation_metrics), ("test", &m.test_metrics)] {
        assert_eq!(got.get("eer").copied(), manifest["metrics"][split]["eer"].as_f64(), "{split}");
    }
    assert_ne!(m.validation_metrics.get("eer"), m.test_metrics.get("eer"));
    let got =
        c.get_model(api::GetModelRequest { name: "vericlip-lstm".into(), version: 0 }).await.unwrap().into_inner();
    assert_eq!(got.version, 1);
    for (name, version) in [("vericlip-lstm", 7), ("no-such-model", 0)] {
        let e = c.get_model(api::GetModelRequest { name: name.into(), version }).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound, "{name}/{version}: {e:?}");
        assert!(e.message().contains(name), "{}", e.message());
        let bytes = std::fs::read(&samples()[0]).unwrap();
        let e = c
            .classify(api::ClassifyRequest {
                audio: Some(api::classify_request::Audio::Encoded(bytes)),
                model: name.into(),
                version,
            })
            .await
            .unwrap_err();
        assert_eq!(e.code(), tonic::Code::NotFound);
        assert_eq!(e.metadata().get("vericlip-error").unwrap(), "model_not_found");
    }
    assert!(
        server.metric("vericlip_model_loaded{model=\"vericlip-lstm\",version=\"1\",execution_provider=\"cpu\"}") == 1.0
    );
    assert!(server.metric("vericlip_execution_provider{provider=\"cpu\"}") == 1.0);
}

/// Honest clip scores: a tail is scored by a window of real audio ending with the clip (never a
/// zero-padded one that drags the clip's score towards "real"), and audio too short for a
/// verdict is refused with `audio_too_short`, over gRPC, HTTP and streams.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tails_are_scored_on_real_audio_and_short_audio_is_refused() {
    let reg = temp_registry("classify-tail");
    let server = Server::start(&reg, &[]).await;
    let mut c = server.client().await;
    let pcm = pcm_request;
    // 2.6 s of speech: windows 0..2 s and 0.6..2.6 s.
    let audio = long_clip();
    let clip = &audio[..41_600];
    let r = c.classify(pcm(clip)).await.unwrap().into_inner();
    let spans: Vec<(f64, f64)> = r.segments.iter().map(|s| (s.start_seconds, s.end_seconds)).collect();
    assert_eq!(spans, vec![(0.0, 2.0), (0.6, 2.6)]);
    // The tail window is exactly the last 2 s of the clip, scored like a clip of its own.
    let last = c.classify(pcm(&clip[9_600..])).await.unwrap().into_inner();
    assert!((r.segments[1].fake_score - last.segments[0].fake_score).abs() <= 1e-5);
    let mean = (f64::from(r.segments[0].fake_score) + f64::from(r.segments[1].fake_score)) / 2.0;
    assert!((f64::from(r.fake_score) - mean).abs() <= 1e-6);
    // Streamed in chunks (step 1 s, and step 2 s), the tail window is the same one.
    for step in [1.0, 2.0] {
        use api::classify_stream_request::Message as M;
        let config = M::Config(api::StreamConfig {
            format: Some(api::stream_config::Format::Pcm(f32_16k())),
            step_seconds: step,
            ..Default::default()
        });
        let msgs: Vec<_> = std::iter::once(config)
            .chain(clip.chunks(3_000).map(|b| M::Audio(pcm_f32(b))))
            .map(|m| api::ClassifyStreamRequest { message: Some(m) })
            .collect();
        let mut inbound = c.classify_stream(tokio_stream::iter(msgs)).await.unwrap().into_inner();
        let mut windows = Vec::new();
        while let Some(m) = inbound.message().await.unwrap() {
            if let Some(api::classify_stream_response::Message::Segment(s)) = m.message {
                windows.push(s);
            }
        }
        let tail = windows.last().unwrap();
        assert_eq!((tail.start_seconds, tail.end_seconds), (0.6, 2.6), "step {step}");
        assert!((tail.fake_score - r.segments[1].fake_score).abs() <= 1e-5, "step {step}");
    }

    // Too short: one sample, half a second; over HTTP too, and as a stream.
    for n in [1usize, 8_000, 15_999] {
        let e = c.classify(pcm(&audio[..n])).await.unwrap_err();
        assert_eq!(e.code(), tonic::Code::InvalidArgument, "{n} samples: {e:?}");
        assert_eq!(e.metadata().get("vericlip-error").unwrap(), "audio_too_short");
        assert!(e.message().contains("at least 1.00 s"), "{}", e.message());
    }
    let (status, _, body) = server.http(
        "POST",
        "/v1/classify?format=f32le&sample_rate=16000",
        "application/octet-stream",
        &pcm_f32(&audio[..8_000]),
    );
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("audio_too_short"));
    // One second is enough: a single window, padded.
    let r = c.classify(pcm(&audio[..16_000])).await.unwrap().into_inner();
    assert_eq!(r.segments.len(), 1);
    use api::classify_stream_request::Message as M;
    let config =
        M::Config(api::StreamConfig { format: Some(api::stream_config::Format::Pcm(f32_16k())), ..Default::default() });
    let msgs: Vec<_> = [config, M::Audio(pcm_f32(&audio[..8_000]))]
        .into_iter()
        .map(|m| api::ClassifyStreamRequest { message: Some(m) })
        .collect();
    let mut inbound = c.classify_stream(tokio_stream::iter(msgs)).await.unwrap().into_inner();
    let e = inbound.message().await.unwrap_err();
    assert_eq!(e.metadata().get("vericlip-error").unwrap(), "audio_too_short");
}

/// Versions with different feature specs (version 2: the seed's 96 features per frame; version 3:
/// LFCC and deltas as well, 156) serve side by side from one registry: each request is scored
/// with the features of the version that answers it, and unpinned requests go to the newest.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn versions_with_different_feature_specs_serve_side_by_side() {
    let reg = std::env::temp_dir().join(format!("vericlip-side-by-side-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&reg);
    for v in [2, 3] {
        common::copy_dir(
            &common::repo().join(format!("models/vericlip-lstm/{v}")),
            &reg.join(format!("vericlip-lstm/{v}")),
        );
    }
    let spec = |v: u64| load_version(&reg.join(format!("vericlip-lstm/{v}"))).unwrap().manifest.feature_spec;
    assert_ne!(spec(2).n_features(), spec(3).n_features(), "the two versions must differ in features");
    let server = Server::start(&reg, &[]).await;
    let mut c = server.client().await;
    for path in samples() {
        let bytes = std::fs::read(&path).unwrap();
        let audio = load_file(&path, 16_000, &AudioLimits::default()).unwrap().samples;
        for (asked, answered) in [(2, 2), (3, 3), (0, 3)] {
            let r = c
                .classify(api::ClassifyRequest {
                    audio: Some(api::classify_request::Audio::Encoded(bytes.clone())),
                    model: "vericlip-lstm".into(),
                    version: asked,
                })
                .await
                .unwrap()
                .into_inner();
            assert_eq!(r.model_version, answered, "{}: asked for {asked}", path.display());
            let want = reference_of(&reg.join(format!("vericlip-lstm/{answered}")), &audio, 32_000);
            let got: Vec<f32> = r.segments.iter().map(|s| s.fake_score).collect();
            assert_close(&got, &want, &format!("{} on version {answered}", path.display()));
        }
    }
    std::fs::remove_dir_all(&reg).ok();
}

/// `ClassifyBatch` and `POST /v1/classify:batch`: one answer per clip, in order, each equal to
/// what `Classify` says of that clip alone; a bad clip fails only itself; the clips share the
/// dynamic batcher (with a long batching delay, several clips' segments go into one ORT run);
/// an empty batch and one over the limit (the queue's size when smaller) fail whole with their
/// stable names.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn batches_answer_each_clip_and_share_the_batcher() {
    use base64::Engine;
    let reg = temp_registry("classify-batch");
    let env = [("VERICLIP__RUNTIME__MAX_DELAY_MS", "1000"), ("VERICLIP__RUNTIME__MAX_QUEUE", "8")];
    let server = Server::start(&reg, &env).await;
    let mut c = server.client().await;
    let clips: Vec<Vec<u8>> = samples().iter().map(|p| std::fs::read(p).unwrap()).collect();
    let n = clips.len();
    let encoded = |bytes: &[u8]| api::ClassifyRequest {
        audio: Some(api::classify_request::Audio::Encoded(bytes.to_vec())),
        model: String::new(),
        version: 0,
    };
    // Clip 1 is not audio, clip 3 asks for a model that is not loaded: their own errors.
    let mut requests: Vec<api::ClassifyRequest> = clips.iter().map(|b| encoded(b)).collect();
    requests.insert(1, encoded(b"not audio at all"));
    requests.insert(3, api::ClassifyRequest { model: "no-such-model".into(), ..encoded(&clips[0]) });
    let before = server.metric("vericlip_batch_size_count");
    let batch = c.classify_batch(api::ClassifyBatchRequest { clips: requests.clone() }).await.unwrap().into_inner();
    let runs = server.metric("vericlip_batch_size_count") - before;
    assert_eq!(batch.results.len(), n + 2);
    assert!(!batch.request_id.is_empty());
    assert!(runs < n as f64, "{n} clips took {runs} ORT runs: the batch's clips were not batched together");
    use api::classify_batch_result::Result as R;
    let error = |i: usize| match &batch.results[i].result {
        Some(R::Error(e)) => e.clone(),
        other => panic!("clip {i}: want an error, got {other:?}"),
    };
    let e = error(1);
    assert_eq!((e.name.as_str(), e.code.as_str()), ("undecodable_audio", "INVALID_ARGUMENT"), "{e:?}");
    let e = error(3);
    assert_eq!((e.name.as_str(), e.code.as_str()), ("model_not_found", "NOT_FOUND"), "{e:?}");
    assert!(e.message.contains("no-such-model"), "{}", e.message);
    let mut http_clips = Vec::new();
    for (i, request) in requests.iter().enumerate().filter(|(i, _)| ![1, 3].contains(i)) {
        let Some(R::Response(got)) = &batch.results[i].result else { panic!("clip {i}: {:?}", batch.results[i]) };
        let alone = c.classify(request.clone()).await.unwrap().into_inner();
        let scores = |r: &api::ClassifyResponse| r.segments.iter().map(|s| s.fake_score).collect::<Vec<_>>();
        assert_close(&scores(got), &scores(&alone), &format!("batch clip {i}"));
        assert_eq!((got.verdict, got.model_version), (alone.verdict, alone.model_version));
        assert_eq!(got.request_id, batch.request_id);
        let Some(api::classify_request::Audio::Encoded(bytes)) = &request.audio else { unreachable!() };
        http_clips.push(serde_json::json!({ "audio_base64": base64::engine::general_purpose::STANDARD.encode(bytes) }));
        if i == 0 {
            // Raw PCM in a batch: the format's options beside the audio, as in POST /v1/classify.
            let pcm = pcm_f32(&long_clip()[..16_000]);
            http_clips
                .push(serde_json::json!({ "audio_base64": base64::engine::general_purpose::STANDARD.encode(&pcm),
                "format": "f32le", "sample_rate": 16000 }));
            http_clips.push(serde_json::json!({ "audio_base64": "%%%" }));
        }
    }
    // HTTP: the same answers in the proto's JSON form; its own per-clip errors.
    let body = serde_json::to_vec(&serde_json::json!({ "clips": http_clips })).unwrap();
    let (status, head, out) = server.http("POST", "/v1/classify:batch", "application/json", &body);
    assert_eq!(status, 200, "{head} {}", String::from_utf8_lossy(&out));
    let j: serde_json::Value = serde_json::from_slice(&out).unwrap();
    let results = j["results"].as_array().unwrap();
    assert_eq!(results.len(), n + 2);
    assert!(head.to_ascii_lowercase().contains(&format!("x-request-id: {}", j["request_id"].as_str().unwrap())));
    let first = batch.results[0].result.as_ref().map(|r| match r {
        R::Response(r) => r.fake_score,
        R::Error(_) => f32::NAN,
    });
    assert!((results[0]["response"]["fake_score"].as_f64().unwrap() - f64::from(first.unwrap())).abs() < 1e-6);
    assert_eq!(results[1]["response"]["duration_seconds"], 1.0, "{}", results[1]);
    assert_eq!(results[2]["error"]["name"], "invalid_base64", "{}", results[2]);
    assert!(results[3..].iter().all(|r| r["response"]["verdict"].is_string()), "{results:?}");

    // Whole-batch refusals: empty, over the limit (8 here: the queue's size), not a batch's JSON.
    let e = c.classify_batch(api::ClassifyBatchRequest { clips: vec![] }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_eq!(e.metadata().get("vericlip-error").unwrap(), "empty_batch");
    let e = c.classify_batch(api::ClassifyBatchRequest { clips: vec![encoded(&clips[0]); 9] }).await.unwrap_err();
    assert_eq!(e.code(), tonic::Code::InvalidArgument);
    assert_eq!(e.metadata().get("vericlip-error").unwrap(), "batch_too_large");
    assert!(e.message().contains("at most 8"), "{}", e.message());
    let nine = serde_json::to_vec(&serde_json::json!({ "clips": vec![http_clips[0].clone(); 9] })).unwrap();
    for (body, name) in [(nine, "batch_too_large"), (b"{\"clips\": 3}".to_vec(), "invalid_json")] {
        let (status, head, _) = server.http("POST", "/v1/classify:batch", "application/json", &body);
        assert_eq!(status, 400, "{head}");
        assert!(head.contains(&format!("vericlip-error: {name}")), "{head}");
    }
    // Every slot is given back (the queue gauge returns to 0).
    assert_eq!(server.metric("vericlip_queue_depth"), 0.0);
}
