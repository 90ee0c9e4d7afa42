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

/// One HTTP POST of `body` sent in two halves: the first before SIGTERM, the second when `go`
/// fires; returns the answer.
fn post_in_halves(addr: String, body: Vec<u8>, go: std::sync::mpsc::Receiver<()>) -> String {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let head = format!(
        "POST /v1/classify HTTP/1.1\r\nHost: t\r\nContent-Type: audio/wav\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        body.len()
    );
    s.write_all(head.as_bytes()).unwrap();
    let half = body.len() / 2;
    s.write_all(&body[..half]).unwrap();
    let _ = go.recv();
    if s.write_all(&body[half..]).is_err() {
        return "write failed".into();
    }
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    String::from_utf8_lossy(&raw).to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_drains_http_requests_and_websockets_and_cuts_the_rest_with_a_reason() {
    use futures_util::{SinkExt, StreamExt};
    use tokio_tungstenite::tungstenite::Message;
    let reg = temp_registry("shutdown-http");
    let mut server = Server::start(&reg, &[("VERICLIP__SHUTDOWN__DRAIN_SECONDS", "4")]).await;
    let clip = std::fs::read(&samples()[0]).unwrap();
    let audio: Vec<f32> = load_file(&samples()[0], 16_000, &AudioLimits::default()).unwrap().samples;
    let pcm = |s: &[f32]| -> Vec<u8> { s.iter().flat_map(|x| x.to_le_bytes()).collect() };

    // 16 POSTs, half their body sent.
    let mut posts = Vec::new();
    let mut gos = Vec::new();
    for _ in 0..16 {
        let (go_tx, go_rx) = std::sync::mpsc::channel();
        let (addr, body) = (server.http.clone(), clip.clone());
        posts.push(std::thread::spawn(move || post_in_halves(addr, body, go_rx)));
        gos.push(go_tx);
    }
    // 4 WebSocket streams with 1 s of audio sent: two finish during the drain, two keep
    // streaming in real time past the drain limit and are cut.
    let mut streams = Vec::new();
    for i in 0..4 {
        let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/v1/stream", server.http)).await.unwrap();
        ws.send(Message::text(r#"{"format":"f32le","sample_rate":16000}"#)).await.unwrap();
        ws.send(Message::binary(pcm(&audio[..16_000]))).await.unwrap();
        let (audio, finishes) = (audio.clone(), i < 2);
        let (go_tx, go_rx) = tokio::sync::oneshot::channel::<()>();
        gos_ws_push(
            &mut streams,
            tokio::spawn(async move {
                let _ = go_rx.await;
                let (mut sink, mut source) = ws.split();
                let sender = tokio::spawn(async move {
                    if finishes {
                        let _ = sink.send(Message::binary(pcm(&audio[16_000..32_000]))).await;
                        let _ = sink.send(Message::text(r#"{"type":"end"}"#)).await;
                    } else {
                        // 0.1 s of audio every 100 ms, for longer than the drain.
                        for k in 0..200 {
                            let chunk: Vec<f32> =
                                audio.iter().cycle().skip(16_000 + k * 1_600).take(1_600).copied().collect();
                            if sink.send(Message::binary(pcm(&chunk))).await.is_err() {
                                break;
                            }
                            tokio::time::sleep(Duration::from_millis(100)).await;
                        }
                    }
                    sink
                });
                let mut summary = None;
                let mut close = None;
                while let Some(Ok(m)) = source.next().await {
                    match m {
                        Message::Text(t) => {
                            let v: serde_json::Value = serde_json::from_str(&t).unwrap();
                            if v["type"] == "summary" {
                                summary = Some(v);
                            }
                        }
                        Message::Close(f) => {
                            close = Some(f.map(|f| (u16::from(f.code), f.reason.to_string())));
                            break;
                        }
                        _ => {}
                    }
                }
                sender.abort();
                (finishes, summary, close)
            }),
            go_tx,
        );
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let pid = server.child.id().to_string();
    assert!(std::process::Command::new("kill").args(["-TERM", &pid]).status().unwrap().success());
    // Readiness says no on both ports, with an answer (the ports stay open through the drain).
    let started = std::time::Instant::now();
    loop {
        let admin = common::http_request(&server.admin, "GET", "/readyz", "text/plain", b"").0;
        let http = server.http("GET", "/readyz", "text/plain", b"").0;
        if (admin, http) == (503, 503) {
            break;
        }
        assert!(started.elapsed() < Duration::from_secs(3), "readyz admin {admin}, http {http} after SIGTERM");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // The in-flight work goes on.
    for go in gos {
        go.send(()).unwrap();
    }
    for (_, go) in &mut streams {
        if let Some(go) = go.take() {
            go.send(()).unwrap();
        }
    }
    for p in posts {
        let answer = p.join().unwrap();
        assert!(answer.starts_with("HTTP/1.1 200") && answer.contains("\"verdict\""), "{answer}");
    }
    for (task, _) in streams {
        let (finishes, summary, close) = task.await.unwrap();
        let summary = summary.unwrap_or_else(|| panic!("a stream (finishes: {finishes}) got no summary; {close:?}"));
        assert!(!summary["segments"].as_array().unwrap().is_empty(), "{summary}");
        if !finishes {
            let (code, reason) = close.flatten().expect("a cut stream gets a close frame with a reason");
            assert_eq!(code, 1001);
            assert!(reason.contains("drain"), "{reason}");
        }
    }
    let status = server.terminate_wait();
    assert_eq!(status.code(), Some(0), "log:\n{}", server.log_text());
    let log = server.log_text();
    assert!(log.contains("drain limit reached; cutting open streams"), "{log}");
}

type WsTask = tokio::task::JoinHandle<(bool, Option<serde_json::Value>, Option<Option<(u16, String)>>)>;

fn gos_ws_push(
    streams: &mut Vec<(WsTask, Option<tokio::sync::oneshot::Sender<()>>)>,
    task: WsTask,
    go: tokio::sync::oneshot::Sender<()>,
) {
    streams.push((task, Some(go)));
}
