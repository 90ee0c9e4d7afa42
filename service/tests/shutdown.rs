//! SIGTERM during load: readiness and health flip, the stream and requests in flight complete,
//! nothing fails before the signal, after it new work is only refused (UNAVAILABLE from the
//! server, or the connection closing under a request it never accepted), the drain completes
//! (it did not time out) and the process exits 0.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::{Server, samples, temp_registry};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Code;
use vericlip_core::AudioLimits;
use vericlip_core::audio::load_file;
use vericlip_server::api;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_in_flight_work_and_exits_zero() {
    let reg = temp_registry("shutdown");
    let mut server = Server::start(&reg, &[]).await;
    let clips: Arc<Vec<Vec<u8>>> = Arc::new(samples().iter().map(|p| std::fs::read(p).unwrap()).collect());

    // A stream that is still sending when SIGTERM arrives: 6 s of audio in 0.25 s chunks,
    // paced so it lasts about 3 s.
    let audio: Vec<f32> = samples()
        .iter()
        .flat_map(|p| load_file(p, 16_000, &AudioLimits::default()).unwrap().samples)
        .take(6 * 16_000)
        .collect();
    let mut sc = server.client().await;
    let (tx, rx) = mpsc::channel(4);
    let config = api::StreamConfig {
        format: Some(api::stream_config::Format::Pcm(api::PcmFormat {
            encoding: api::PcmEncoding::F32le as i32,
            sample_rate: 16_000,
            channels: 1,
        })),
        step_seconds: 1.0,
        ..Default::default()
    };
    tx.send(api::ClassifyStreamRequest { message: Some(api::classify_stream_request::Message::Config(config)) })
        .await
        .unwrap();
    let mut inbound = sc.classify_stream(ReceiverStream::new(rx)).await.unwrap().into_inner();
    let sender = tokio::spawn(async move {
        for chunk in audio.chunks(4_000) {
            let bytes = chunk.iter().flat_map(|s| s.to_le_bytes()).collect();
            tx.send(api::ClassifyStreamRequest { message: Some(api::classify_stream_request::Message::Audio(bytes)) })
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(120)).await;
        }
    });
    let receiver = tokio::spawn(async move {
        let mut windows = 0;
        let mut summary = None;
        while let Some(m) = inbound.message().await.expect("the stream completes during the drain") {
            match m.message.unwrap() {
                api::classify_stream_response::Message::Segment(_) => windows += 1,
                api::classify_stream_response::Message::Summary(s) => summary = Some(s),
            }
        }
        (windows, summary)
    });

    // Unary load from two clients on their own connections.
    let stop = Arc::new(AtomicBool::new(false));
    let signalled = Arc::new(AtomicBool::new(false));
    let mut load = Vec::new();
    for w in 0..2 {
        let (mut c, clips, stop) = (server.client().await, Arc::clone(&clips), Arc::clone(&stop));
        let signalled = Arc::clone(&signalled);
        load.push(tokio::spawn(async move {
            let (mut ok, mut refused, mut other) = (0, 0, Vec::new());
            let mut i = w;
            while !stop.load(Ordering::Relaxed) {
                let audio = Some(api::classify_request::Audio::Encoded(clips[i % clips.len()].clone()));
                i += 1;
                match c.classify(api::ClassifyRequest { audio, ..Default::default() }).await {
                    Ok(_) => ok += 1,
                    // Refused: by the server while draining, or by the connection closing under
                    // a request the server had not accepted (GOAWAY race; safe to retry).
                    Err(e)
                        if signalled.load(Ordering::SeqCst)
                            && (e.code() == Code::Unavailable
                                || (e.code() == Code::Cancelled && format!("{e:?}").contains("connection closed"))) =>
                    {
                        refused += 1;
                        tokio::time::sleep(Duration::from_millis(20)).await;
                    }
                    Err(e) => other.push(format!("{e:?}")),
                }
            }
            (ok, refused, other)
        }));
    }

    tokio::time::sleep(Duration::from_millis(800)).await;
    let pid = server.child.id().to_string();
    signalled.store(true, Ordering::SeqCst);
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    // While the stream drains, readiness says no.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (status, _, body) = server.http("GET", "/readyz", "text/plain", b"");
    assert_eq!(status, 503, "{}", String::from_utf8_lossy(&body));
    assert!(String::from_utf8_lossy(&body).contains("shutting down"));

    sender.await.unwrap();
    let (windows, summary) = receiver.await.unwrap();
    assert_eq!(windows, 5, "6 s with 1 s steps: windows at 0..=4 s");
    assert_eq!(summary.expect("summary delivered during the drain").segments.len(), 5);
    let status = server.terminate_wait();
    stop.store(true, Ordering::Relaxed);
    let mut served = 0;
    for t in load {
        let (ok, _refused, other) = t.await.unwrap();
        assert!(other.is_empty(), "requests failed other than by being refused after SIGTERM: {other:?}");
        served += ok;
    }
    assert!(served > 0);
    assert!(status.success(), "exit status {status:?}; log:\n{}", server.log_text());
    let log = server.log_text();
    assert!(log.contains("shutdown requested") && log.contains("gRPC drained") && log.contains("stopped"), "{log}");
}
