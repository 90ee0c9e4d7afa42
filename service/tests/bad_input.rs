//! Hostile and broken input through the real server: each case gets the right status, a message
//! that says what was wrong and a stable error name, and the server keeps serving.

mod common;

use common::{Server, samples, temp_registry, wav_bytes};
use tonic::Code;
use vericlip_server::api;

/// A PCM WAV header claiming `data_len` bytes of data, followed by `body`.
fn wav_header(channels: u16, rate: u32, bits: u16, data_len: u32, body: &[u8]) -> Vec<u8> {
    let block = channels.wrapping_mul(bits / 8);
    let mut v = Vec::new();
    v.extend(b"RIFF");
    v.extend(36u32.wrapping_add(data_len).to_le_bytes());
    v.extend(b"WAVEfmt ");
    v.extend(16u32.to_le_bytes());
    v.extend(1u16.to_le_bytes());
    v.extend(channels.to_le_bytes());
    v.extend(rate.to_le_bytes());
    v.extend((rate.wrapping_mul(u32::from(block))).to_le_bytes());
    v.extend(block.to_le_bytes());
    v.extend(bits.to_le_bytes());
    v.extend(b"data");
    v.extend(data_len.to_le_bytes());
    v.extend(body);
    v
}

fn encoded(bytes: Vec<u8>) -> api::ClassifyRequest {
    api::ClassifyRequest { audio: Some(api::classify_request::Audio::Encoded(bytes)), model: String::new(), version: 0 }
}

fn pcm(data: Vec<u8>, encoding: api::PcmEncoding, sample_rate: u32, channels: u32) -> api::ClassifyRequest {
    api::ClassifyRequest {
        audio: Some(api::classify_request::Audio::Pcm(api::RawPcm {
            data,
            format: Some(api::PcmFormat { encoding: encoding as i32, sample_rate, channels }),
        })),
        model: String::new(),
        version: 0,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_the_right_status_and_the_server_keeps_serving() {
    let reg = temp_registry("bad-input");
    let server = Server::start(&reg, &[("VERICLIP__GRPC__MAX_MESSAGE_BYTES", "1048576")]).await;
    let mut c = server.client().await;
    let good = std::fs::read(&samples()[0]).unwrap();
    let nan: Vec<u8> = (0..16_000).flat_map(|i| if i == 777 { f32::NAN } else { 0.1 }.to_le_bytes()).collect();
    let inf: Vec<u8> = (0..16_000).flat_map(|i| if i == 5 { f32::INFINITY } else { 0.1 }.to_le_bytes()).collect();
    let noise: Vec<u8> = (0..50_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    let six_hours = 6 * 3600 * 16_000 * 2;
    let cases: Vec<(&str, api::ClassifyRequest, Code, &str, &str)> = vec![
        ("empty bytes", encoded(Vec::new()), Code::InvalidArgument, "", "empty"),
        ("no audio", api::ClassifyRequest::default(), Code::InvalidArgument, "missing_audio", "no audio"),
        ("random bytes", encoded(noise), Code::InvalidArgument, "undecodable_audio", "decoded"),
        ("truncated WAV", encoded(good[..44].to_vec()), Code::InvalidArgument, "", ""),
        (
            "NaN PCM",
            pcm(nan, api::PcmEncoding::F32le, 16_000, 1),
            Code::InvalidArgument,
            "non_finite_samples",
            "frame 777",
        ),
        (
            "Inf PCM",
            pcm(inf, api::PcmEncoding::F32le, 16_000, 1),
            Code::InvalidArgument,
            "non_finite_samples",
            "frame 5",
        ),
        (
            "sample rate 0",
            pcm(vec![0; 640], api::PcmEncoding::S16le, 0, 1),
            Code::InvalidArgument,
            "invalid_sample_rate",
            "0 Hz",
        ),
        (
            "1e9 channels",
            pcm(vec![0; 640], api::PcmEncoding::S16le, 16_000, 1_000_000_000),
            Code::InvalidArgument,
            "invalid_channels",
            "1000000000",
        ),
        (
            "65535-channel WAV",
            encoded(wav_header(65_535, 16_000, 16, 1 << 20, &[0; 256])),
            Code::InvalidArgument,
            "",
            "",
        ),
        (
            "no PCM encoding",
            pcm(vec![0; 640], api::PcmEncoding::Unspecified, 16_000, 1),
            Code::InvalidArgument,
            "invalid_pcm_encoding",
            "S16LE",
        ),
        (
            "ragged PCM",
            pcm(vec![0; 641], api::PcmEncoding::S16le, 16_000, 1),
            Code::InvalidArgument,
            "ragged_pcm",
            "641",
        ),
        (
            "6-hour header",
            encoded(wav_header(1, 16_000, 16, six_hours, &[0; 4096])),
            Code::InvalidArgument,
            "audio_too_long",
            "limit",
        ),
        (
            "over the size limit",
            encoded(wav_bytes(&vec![0.1; 1_100_000], 16_000)),
            Code::ResourceExhausted,
            "message_too_large",
            "too large",
        ),
        (
            "unknown version",
            api::ClassifyRequest { version: 42, ..encoded(good.clone()) },
            Code::NotFound,
            "model_not_found",
            "42",
        ),
        (
            "unknown model",
            api::ClassifyRequest { model: "nope".into(), ..encoded(good.clone()) },
            Code::NotFound,
            "model_not_found",
            "nope",
        ),
    ];
    for (what, req, code, name, says) in cases {
        let e = c.classify(req).await.expect_err(what);
        assert_eq!(e.code(), code, "{what}: {e:?}");
        assert!(!e.message().is_empty(), "{what}: empty message");
        assert!(e.message().contains(says), "{what}: message `{}` does not say `{says}`", e.message());
        let got = e.metadata().get("vericlip-error").map(|v| v.to_str().unwrap().to_string());
        assert!(got.is_some(), "{what}: no vericlip-error name");
        if !name.is_empty() {
            assert_eq!(got.as_deref(), Some(name), "{what}");
        }
        // Still serving.
        let ok = c.classify(encoded(good.clone())).await;
        assert!(ok.is_ok(), "after {what}: {ok:?}");
    }

    // Bad streams: no config first, a bad step, a NaN chunk.
    let mk = |msgs: Vec<api::classify_stream_request::Message>| {
        tokio_stream::iter(msgs.into_iter().map(|m| api::ClassifyStreamRequest { message: Some(m) }))
    };
    use api::classify_stream_request::Message as M;
    let config = |step: f64| {
        M::Config(api::StreamConfig {
            format: Some(api::stream_config::Format::Pcm(api::PcmFormat {
                encoding: api::PcmEncoding::F32le as i32,
                sample_rate: 16_000,
                channels: 1,
            })),
            step_seconds: step,
            model: String::new(),
            version: 0,
        })
    };
    let e = c.classify_stream(mk(vec![M::Audio(vec![0; 8])])).await.unwrap_err();
    assert_eq!(
        (e.code(), e.metadata().get("vericlip-error").unwrap().to_str().unwrap()),
        (Code::InvalidArgument, "missing_stream_config")
    );
    let e = c.classify_stream(mk(vec![config(7.0)])).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert!(e.message().contains("step_seconds"), "{}", e.message());
    let nan: Vec<u8> = (0..40_000).flat_map(|i| if i == 33_000 { f32::NAN } else { 0.1 }.to_le_bytes()).collect();
    let mut s = c.classify_stream(mk(vec![config(1.0), M::Audio(nan)])).await.unwrap().into_inner();
    let mut err = None;
    loop {
        match s.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => break,
            Err(e) => {
                err = Some(e);
                break;
            }
        }
    }
    let e = err.expect("a NaN chunk fails the stream");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(e.metadata().get("vericlip-error").unwrap(), "non_finite_samples");
    let e = c.classify_stream(mk(vec![config(1.0)])).await.unwrap().into_inner().message().await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument, "a stream with no audio: {e:?}");

    // HTTP: garbage and bad parameters are 400 with a JSON error naming the problem.
    let (status, head, body) = server.http("POST", "/v1/classify", "application/octet-stream", b"not audio");
    assert_eq!(status, 400, "{head}");
    let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(j["error"]["name"], "undecodable_audio");
    let (status, _, body) =
        server.http("POST", "/v1/classify?format=s16le&sample_rate=0", "application/octet-stream", &[0; 64]);
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("invalid_sample_rate"));
    let (status, _, _) = server.http("POST", "/v1/classify?version=9", "audio/wav", &good);
    assert_eq!(status, 404);

    // multipart/form-data without a part named `file`, or without a boundary: 400 and a name.
    let form =
        b"--XyZ\r\nContent-Disposition: form-data; name=\"audio\"; filename=\"a.wav\"\r\n\r\nRIFF\r\n--XyZ--\r\n";
    let (status, head, body) = server.http("POST", "/v1/classify", "multipart/form-data; boundary=XyZ", form);
    assert_eq!(status, 400, "{head}");
    let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(j["error"]["name"], "missing_file_part", "{j}");
    assert!(j["error"]["message"].as_str().unwrap().contains("`file`"), "{j}");
    let (status, _, body) = server.http("POST", "/v1/classify", "multipart/form-data", form);
    assert_eq!(status, 400);
    assert!(String::from_utf8_lossy(&body).contains("invalid_multipart"));

    // The wrong method on an API route: 405, the allowed method, and the usual JSON error.
    let (status, head, body) = server.http("GET", "/v1/classify", "text/plain", b"");
    assert_eq!(status, 405, "{head}");
    assert!(head.to_ascii_lowercase().contains("allow: post"), "{head}");
    let j: serde_json::Value = serde_json::from_slice(&body).unwrap();
    assert_eq!(j["error"]["name"], "method_not_allowed", "{j}");
    assert!(j["error"]["message"].as_str().unwrap().contains("POST /v1/classify"), "{j}");
    let (status, _, body) = server.http("DELETE", "/v1/models", "text/plain", b"");
    assert_eq!(status, 405);
    assert!(String::from_utf8_lossy(&body).contains("method_not_allowed"));
    // The browser's favicon request finds one.
    let (status, head, _) = server.http("GET", "/favicon.ico", "text/plain", b"");
    assert_eq!(status, 200, "{head}");
    assert!(head.contains("image/svg+xml"), "{head}");

    // A client's bad upload is the client's problem: never logged at ERROR by the server.
    let log = server.log_text();
    assert!(!log.lines().any(|l| l.contains("ERROR")), "bad uploads logged as errors:\n{log}");
    assert!(c.classify(encoded(good)).await.is_ok());
    assert!(server.metric("vericlip_requests_total{rpc=\"Classify\",code=\"INVALID_ARGUMENT\"}") >= 11.0);
}
