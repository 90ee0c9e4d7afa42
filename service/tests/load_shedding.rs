//! Overload and deadlines: far more concurrent requests than the queue holds get
//! RESOURCE_EXHAUSTED (and nothing else fails), memory stays flat across bursts, the server
//! recovers; a request whose deadline passes in the queue gets DEADLINE_EXCEEDED and never
//! reaches ONNX Runtime.

mod common;

use std::time::Duration;

use common::{Server, samples, temp_registry, wav_bytes};
use tonic::Code;
use vericlip_core::AudioLimits;
use vericlip_core::audio::load_file;
use vericlip_server::api;

fn request(bytes: &[u8]) -> api::ClassifyRequest {
    api::ClassifyRequest { audio: Some(api::classify_request::Audio::Encoded(bytes.to_vec())), ..Default::default() }
}

/// 30 s of speech (the bundled clips, repeated) as a WAV file.
fn long_wav() -> Vec<u8> {
    let speech: Vec<f32> =
        samples().iter().flat_map(|p| load_file(p, 16_000, &AudioLimits::default()).unwrap().samples).collect();
    let clip: Vec<f32> = speech.iter().cycle().take(30 * 16_000).copied().collect();
    wav_bytes(&clip, 16_000)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn overload_sheds_with_resource_exhausted_and_recovers() {
    let reg = temp_registry("overload");
    let server = Server::start(
        &reg,
        &[
            ("VERICLIP__RUNTIME__MAX_QUEUE", "4"),
            ("VERICLIP__RUNTIME__SESSIONS", "1"),
            ("VERICLIP__RUNTIME__FEATURE_WORKERS", "1"),
        ],
    )
    .await;
    let clip = long_wav();
    let c = server.client().await;
    let mut rss = Vec::new();
    for burst in 0..4 {
        let mut tasks = Vec::new();
        for _ in 0..64 {
            let (mut c, clip) = (c.clone(), clip.clone());
            tasks.push(tokio::spawn(async move { c.classify(request(&clip)).await.map(|r| r.into_inner()) }));
        }
        let (mut ok, mut shed) = (0, 0);
        for t in tasks {
            match t.await.unwrap() {
                Ok(r) => {
                    assert_eq!(r.segments.len(), 15);
                    ok += 1;
                }
                Err(e) => {
                    assert_eq!(e.code(), Code::ResourceExhausted, "burst {burst}: {e:?}");
                    assert_eq!(e.metadata().get("vericlip-error").unwrap(), "queue_full");
                    assert!(e.message().contains("retry"), "{}", e.message());
                    shed += 1;
                }
            }
        }
        assert!(shed > 0, "burst {burst}: 64 concurrent requests and none shed (queue holds 4)");
        assert!(ok >= 4, "burst {burst}: only {ok} served");
        // Recovered: a lone request is served.
        let mut lone = c.clone();
        assert!(lone.classify(request(&clip)).await.is_ok());
        rss.push(server.rss_kib());
    }
    assert_eq!(server.metric("vericlip_queue_depth"), 0.0);
    // Memory does not grow with the number of rejected requests.
    let growth = rss[3].saturating_sub(rss[1]);
    assert!(growth < 64 * 1024, "RSS grew {growth} KiB between bursts 2 and 4: {rss:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deadline_that_passes_in_the_queue_skips_inference() {
    let reg = temp_registry("deadline");
    // The batcher holds a batch open for 400 ms waiting for more segments.
    let server =
        Server::start(&reg, &[("VERICLIP__RUNTIME__MAX_DELAY_MS", "400"), ("VERICLIP__RUNTIME__MAX_BATCH", "1000")])
            .await;
    let mut c = server.client().await;
    let clip = std::fs::read(&samples()[0]).unwrap();
    let runs_before = server.metric("vericlip_batch_size_count");
    let mut req = tonic::Request::new(request(&clip));
    req.set_timeout(Duration::from_millis(150));
    let e = c.classify(req).await.unwrap_err();
    // The server answers DEADLINE_EXCEEDED; tonic's client also enforces the deadline itself and,
    // when its timer wins the race (a loaded machine), reports CANCELLED "Timeout expired".
    let client_timer = e.code() == Code::Cancelled && e.message().contains("Timeout expired");
    assert!(e.code() == Code::DeadlineExceeded || client_timer, "{e:?}");
    // Wait past the batch window: the expired job must not have been run.
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(server.metric("vericlip_batch_size_count"), runs_before, "inference ran for an expired request");
    // The server either answered DEADLINE_EXCEEDED (and counted the expiry) or, when the client
    // gave up first, saw the call cancelled; either way it was counted.
    let answered = server.metric("vericlip_requests_total{rpc=\"Classify\",code=\"DEADLINE_EXCEEDED\"}");
    let cancelled = server.metric("vericlip_requests_total{rpc=\"Classify\",code=\"CANCELLED\"}");
    assert_eq!(answered + cancelled, 1.0, "answered {answered}, cancelled {cancelled}");
    if e.code() == Code::DeadlineExceeded {
        assert_eq!(answered, 1.0);
        assert!(server.metric("vericlip_expired_in_queue_total") >= 1.0);
    }
    // Without a deadline the same request is served (after the batch window).
    assert!(c.classify(request(&clip)).await.is_ok());
    assert!(server.metric("vericlip_batch_size_count") > runs_before);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streams_are_capped_and_vanished_or_idle_clients_free_their_stream() {
    let reg = temp_registry("streams");
    let server =
        Server::start(&reg, &[("VERICLIP__LIMITS__MAX_STREAMS", "1"), ("VERICLIP__LIMITS__STREAM_IDLE_SECONDS", "1")])
            .await;
    let wait_freed = |what: &'static str| {
        let server = &server;
        async move {
            let started = std::time::Instant::now();
            while server.metric("vericlip_active_streams") != 0.0 {
                assert!(started.elapsed() < Duration::from_secs(10), "{what}: stream never freed");
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    };

    // A client process streams in real time and is killed mid-stream: no half-close, the
    // connection just dies.
    let long = reg.with_extension("long.wav");
    std::fs::write(&long, long_wav()).unwrap();
    let mut client = std::process::Command::new(common::cli_binary())
        .args(["--addr", &server.grpc, "stream", "--speed", "1"])
        .arg(&long)
        .stdout(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let started = std::time::Instant::now();
    while server.metric("vericlip_active_streams") != 1.0 {
        assert!(started.elapsed() < Duration::from_secs(20), "the client's stream never opened");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The limit is one stream: a second is refused while the first is open.
    let c = server.client().await;
    let config = api::ClassifyStreamRequest {
        message: Some(api::classify_stream_request::Message::Config(api::StreamConfig {
            format: Some(api::stream_config::Format::Pcm(api::PcmFormat {
                encoding: api::PcmEncoding::S16le as i32,
                sample_rate: 16_000,
                channels: 1,
            })),
            ..Default::default()
        })),
    };
    let e = c.clone().classify_stream(tokio_stream::iter(vec![config.clone()])).await.unwrap_err();
    assert_eq!(e.code(), Code::ResourceExhausted);
    assert_eq!(e.metadata().get("vericlip-error").unwrap(), "too_many_streams");
    client.kill().unwrap();
    client.wait().unwrap();
    wait_freed("killed client").await;

    // A client that opens a stream and then goes quiet (sender open, nothing sent) is closed
    // after the idle limit.
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    tx.send(config).await.unwrap();
    let mut inbound =
        c.clone().classify_stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await.unwrap().into_inner();
    let e = inbound.message().await.expect_err("an idle stream is closed");
    assert_eq!(e.code(), Code::DeadlineExceeded);
    assert_eq!(e.metadata().get("vericlip-error").unwrap(), "stream_idle");
    wait_freed("idle client").await;
    drop(tx);
}
