//! Connection age never cuts an open call: with `grpc.max_connection_age_seconds = 1` the server
//! sends GOAWAY after a second, while a `ClassifyStream` that started before it sends audio in
//! real time for 10 s on that connection and still gets every window's verdict and its summary;
//! then the server closes the connection (it was aged) and the client's next call opens a new one.
//! (A call a tonic client starts on the old connection between the GOAWAY and its close fails
//! with CANCELLED "connection closed", a client-side race that grpcio retries transparently:
//! security.rs's max-age test; so this test makes no such call.)

mod common;

use std::time::{Duration, Instant};

use common::{Server, f32_16k, long_clip, pcm_f32, pcm_request, temp_registry};
use vericlip_server::api;
use vericlip_server::api::classify_stream_request::Message as M;
use vericlip_server::api::classify_stream_response::Message as R;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_outlives_the_connection_age() {
    let reg = temp_registry("conn-age-stream");
    let server = Server::start(&reg, &[("VERICLIP__GRPC__MAX_CONNECTION_AGE_SECONDS", "1")]).await;
    let accepted = || server.metric("vericlip_accepted_connections_total{port=\"grpc\"}");
    let mut client = server.client().await;
    let before = accepted();

    // 10 s of audio, sent in 0.5 s chunks at the pace of real time.
    let clip = long_clip();
    let rate = 16_000usize;
    let audio: Vec<f32> = clip.iter().copied().cycle().take(10 * rate).collect();
    let chunk = rate / 2;
    let (tx, rx) = tokio::sync::mpsc::channel(4);
    let config = api::StreamConfig {
        format: Some(api::stream_config::Format::Pcm(f32_16k())),
        step_seconds: 1.0,
        model: String::new(),
        version: 0,
    };
    tx.send(api::ClassifyStreamRequest { message: Some(M::Config(config)) }).await.unwrap();
    let started = Instant::now();
    let sender = tokio::spawn(async move {
        for (i, part) in audio.chunks(chunk).enumerate() {
            tokio::time::sleep_until((started + Duration::from_millis(500) * i as u32).into()).await;
            if tx.send(api::ClassifyStreamRequest { message: Some(M::Audio(pcm_f32(part))) }).await.is_err() {
                return false;
            }
        }
        true // dropping tx half-closes the stream
    });
    let mut responses =
        client.classify_stream(tokio_stream::wrappers::ReceiverStream::new(rx)).await.unwrap().into_inner();

    let (mut segments, mut summary) = (0usize, None);
    loop {
        match responses.message().await {
            Ok(Some(r)) => match r.message {
                Some(R::Segment(_)) => segments += 1,
                Some(R::Summary(s)) => summary = Some(s),
                None => {}
            },
            Ok(None) => break,
            Err(e) => panic!(
                "the stream failed after {:.1} s ({segments} windows): {e:?}; log:\n{}",
                started.elapsed().as_secs_f64(),
                server.log_text()
            ),
        }
    }
    let lasted = started.elapsed();
    assert!(sender.await.unwrap(), "the server stopped reading the stream");
    assert!(lasted >= Duration::from_secs(9), "the stream ended after {lasted:?}, before its audio was sent");
    // 10 s of audio, 2 s windows every 1 s: 9 full windows (plus possibly the tail's).
    assert!(segments >= 9, "{segments} window verdicts for 10 s of audio");
    let summary = summary.expect("the stream's summary arrived");
    assert!(summary.segments.len() >= 9, "summary over {} windows", summary.segments.len());
    // The GOAWAY was sent: with the stream done, the server closes the aged connection although
    // the client still holds it (a connection without GOAWAY would stay open, idle, for
    // limits.connection_idle_seconds); the client's next call goes over a new connection.
    let open = || server.metric("vericlip_open_connections{port=\"grpc\"}");
    let waited = Instant::now();
    while open() > 0.0 {
        assert!(
            waited.elapsed() < Duration::from_secs(20),
            "the aged connection stayed open after its last stream: no GOAWAY was sent"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let again = client.classify(pcm_request(&clip[..3 * rate])).await;
    assert!(again.is_ok(), "a call after the connection closed: {again:?}");
    assert!(accepted() - before >= 1.0, "the call after the close did not open a new connection");
}
