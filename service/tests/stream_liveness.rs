//! Stream slots expire, through the real binary: streams that send only keep-alive traffic
//! (WebSocket pings, empty binary frames, empty gRPC audio messages) are closed after
//! `limits.stream_idle_seconds` with DEADLINE_EXCEEDED / `stream_idle`, and a new stream is then
//! admitted; a gRPC client whose TCP peer vanishes mid-stream (no FIN, no RST: a frozen proxy)
//! frees its slot once HTTP/2 keepalive notices.

mod common;

use std::time::{Duration, Instant};

use common::{Server, f32_16k, pcm_f32, temp_registry};
use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tokio_tungstenite::tungstenite::Message;
use vericlip_server::api;

use api::classify_stream_request::Message as M;

fn config() -> api::ClassifyStreamRequest {
    api::ClassifyStreamRequest {
        message: Some(M::Config(api::StreamConfig {
            format: Some(api::stream_config::Format::Pcm(f32_16k())),
            ..Default::default()
        })),
    }
}

fn audio(seconds: f64) -> api::ClassifyStreamRequest {
    let n = (seconds * 16_000.0) as usize;
    let samples: Vec<f32> = (0..n).map(|i| 0.1 * (i as f32 * 0.05).sin()).collect();
    api::ClassifyStreamRequest { message: Some(M::Audio(pcm_f32(&samples))) }
}

/// Opens a gRPC stream on `channel` and sends its config and `first`; the sender keeps it open.
async fn open_grpc(
    channel: tonic::transport::Channel,
    first: Vec<api::ClassifyStreamRequest>,
) -> Result<(mpsc::Sender<api::ClassifyStreamRequest>, tonic::Streaming<api::ClassifyStreamResponse>), tonic::Status> {
    let (tx, rx) = mpsc::channel(8);
    tx.send(config()).await.unwrap();
    for m in first {
        tx.send(m).await.unwrap();
    }
    let mut c = api::vericlip_client::VericlipClient::new(channel);
    let r = c.classify_stream(ReceiverStream::new(rx)).await?;
    Ok((tx, r.into_inner()))
}

/// How a keep-alive-only stream ended: the error name it was closed with.
async fn grpc_keepalive_only(channel: tonic::transport::Channel) -> String {
    let (tx, mut responses) = open_grpc(channel, vec![audio(0.2)]).await.expect("admitted");
    let pinger = tokio::spawn(async move {
        // An empty audio message every 300 ms, for longer than the test waits.
        for _ in 0..400 {
            if tx.send(api::ClassifyStreamRequest { message: Some(M::Audio(Vec::new())) }).await.is_err() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(300)).await;
        }
    });
    let outcome = loop {
        match responses.message().await {
            Ok(Some(_)) => continue,
            Ok(None) => break "ended without an error".to_string(),
            Err(s) => {
                let name = s.metadata().get("vericlip-error").map(|v| v.to_str().unwrap().to_string());
                break format!("{:?}/{}", s.code(), name.unwrap_or_default());
            }
        }
    };
    pinger.abort();
    outcome
}

/// A WebSocket stream that, after its config and a little audio, sends only pings (or empty
/// binary frames); returns the error name it was closed with.
async fn ws_keepalive_only(http: String, empty_frames: bool) -> String {
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{http}/v1/stream")).await.unwrap();
    ws.send(Message::text(json!({"format": "f32le", "sample_rate": 16000}).to_string())).await.unwrap();
    ws.send(Message::binary(pcm_f32(&vec![0.01; 3_200]))).await.unwrap();
    loop {
        let keepalive = if empty_frames { Message::binary(Vec::<u8>::new()) } else { Message::Ping(vec![1].into()) };
        if ws.send(keepalive).await.is_err() {
            return "send failed before an answer".into();
        }
        match tokio::time::timeout(Duration::from_millis(300), ws.next()).await {
            Err(_) => continue,
            Ok(Some(Ok(Message::Text(t)))) => {
                let v: Value = serde_json::from_str(&t).unwrap();
                return format!("{}/{}", v["type"].as_str().unwrap_or(""), v["error"]["name"].as_str().unwrap_or(""));
            }
            Ok(Some(Ok(_))) => continue,
            Ok(other) => return format!("closed without an answer: {other:?}"),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keepalive_only_streams_are_closed_after_the_idle_limit_and_a_new_one_is_admitted() {
    let reg = temp_registry("liveness-idle");
    let server =
        Server::start(&reg, &[("VERICLIP__LIMITS__MAX_STREAMS", "64"), ("VERICLIP__LIMITS__STREAM_IDLE_SECONDS", "3")])
            .await;
    let channel = server.channel().await;
    let mut tasks = Vec::new();
    for i in 0..64 {
        let (ch, http) = (channel.clone(), server.http.clone());
        tasks.push(tokio::spawn(async move {
            match i % 3 {
                0 => grpc_keepalive_only(ch).await,
                1 => ws_keepalive_only(http, false).await,
                _ => ws_keepalive_only(http, true).await,
            }
        }));
    }
    // All 64 slots are held: one more stream is refused while they are.
    let started = Instant::now();
    while server.metric("vericlip_active_streams") < 64.0 {
        assert!(started.elapsed() < Duration::from_secs(30), "the 64 streams never all started");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let refused = open_grpc(channel.clone(), vec![]).await.expect_err("a 65th stream is refused");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted, "{refused:?}");
    // Each is closed by the idle limit, whatever keep-alive traffic it sends.
    let mut outcomes = std::collections::BTreeMap::new();
    for t in tasks {
        let outcome =
            tokio::time::timeout(Duration::from_secs(60), t).await.expect("a stream was never closed").unwrap();
        *outcomes.entry(outcome).or_insert(0) += 1;
    }
    eprintln!("keep-alive-only streams closed after {:?}: {outcomes:?}", started.elapsed());
    let grpc_idle = outcomes.get("DeadlineExceeded/stream_idle").copied().unwrap_or(0);
    let ws_idle = outcomes.get("error/stream_idle").copied().unwrap_or(0);
    assert_eq!((grpc_idle, ws_idle), (22, 42), "{outcomes:?}");
    // The slots are free again: a real stream is admitted and classified.
    let (tx, mut responses) = open_grpc(channel, vec![audio(3.0)]).await.expect("a new stream is admitted");
    drop(tx);
    let mut summary = None;
    while let Some(m) = responses.message().await.unwrap() {
        if let Some(api::classify_stream_response::Message::Summary(s)) = m.message {
            summary = Some(s);
        }
    }
    assert!(summary.is_some_and(|s| !s.segments.is_empty()));
}

/// Copies `from` to `to` until `frozen` turns true; then holds both halves open without reading
/// or writing: no FIN, no RST.
async fn pipe(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    mut frozen: tokio::sync::watch::Receiver<bool>,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut buf = vec![0u8; 64 << 10];
    loop {
        let n = tokio::select! {
            r = from.read(&mut buf) => match r { Ok(0) | Err(_) => return, Ok(n) => n },
            _ = frozen.wait_for(|f| *f) => break,
        };
        if to.write_all(&buf[..n]).await.is_err() {
            return;
        }
    }
    tokio::time::sleep(Duration::from_secs(120)).await;
    drop((from, to));
}

/// A proxy for one TCP connection to `target` that forwards both ways until `freeze` is sent:
/// to the server, the client then vanished.
async fn freezing_proxy(target: String) -> (String, tokio::sync::watch::Sender<bool>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let (freeze, frozen) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        let Ok((client, _)) = listener.accept().await else { return };
        let server = TcpStream::connect(&target).await.unwrap();
        let (cr, cw) = client.into_split();
        let (sr, sw) = server.into_split();
        let a = tokio::spawn(pipe(cr, sw, frozen.clone()));
        let b = tokio::spawn(pipe(sr, cw, frozen));
        let _ = tokio::join!(a, b);
    });
    (addr, freeze)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_vanished_grpc_peer_frees_its_stream_slot_within_10_s() {
    let reg = temp_registry("liveness-dead-peer");
    let server = Server::start(
        &reg,
        &[
            ("VERICLIP__LIMITS__MAX_STREAMS", "1"),
            // Only keepalive can notice: the stream idle limit is far away.
            ("VERICLIP__LIMITS__STREAM_IDLE_SECONDS", "120"),
            ("VERICLIP__GRPC__KEEPALIVE_INTERVAL_SECONDS", "1"),
            ("VERICLIP__GRPC__KEEPALIVE_TIMEOUT_SECONDS", "2"),
        ],
    )
    .await;
    let (proxy, freeze) = freezing_proxy(server.grpc.trim_start_matches("http://").to_string()).await;
    let via_proxy =
        tonic::transport::Endpoint::from_shared(format!("http://{proxy}")).unwrap().connect().await.unwrap();
    let (tx, _responses) = open_grpc(via_proxy, vec![audio(0.5)]).await.expect("the first stream is admitted");
    let direct = server.channel().await;
    let refused = open_grpc(direct.clone(), vec![]).await.expect_err("the only slot is taken");
    assert_eq!(refused.code(), tonic::Code::ResourceExhausted);
    // The client vanishes mid-stream.
    freeze.send(true).unwrap();
    let vanished = Instant::now();
    let freed = loop {
        match open_grpc(direct.clone(), vec![]).await {
            Ok(_) => break vanished.elapsed(),
            Err(s) => assert_eq!(s.code(), tonic::Code::ResourceExhausted, "{s:?}"),
        }
        assert!(vanished.elapsed() < Duration::from_secs(30), "the slot was never freed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    eprintln!("a vanished peer's stream slot was freed after {freed:?} (keepalive 1 s + 2 s)");
    assert!(freed < Duration::from_secs(10), "the slot was freed only after {freed:?}");
    drop(tx);
}
