//! Correlation and error semantics against the real server binary: the request id on every
//! answer (gRPC initial metadata and trailers, HTTP `x-request-id`, WebSocket messages), an
//! incoming id kept and a bad one replaced, `google.rpc.Status` details on gRPC errors, error
//! answers in the log at the default level with their id, and the HTTP statuses and headers of
//! docs/API.md (413, Retry-After, WWW-Authenticate, JSON 404).

mod common;

use std::io::{Read, Write};
use std::time::Duration;

use common::{Server, samples, temp_registry};
use tonic::Code;
use tonic::metadata::MetadataValue;
use tonic_types::StatusExt;
use vericlip_server::api;

fn encoded(bytes: Vec<u8>) -> api::ClassifyRequest {
    api::ClassifyRequest { audio: Some(api::classify_request::Audio::Encoded(bytes)), ..Default::default() }
}

/// A raw HTTP/1.1 request with extra header lines; returns (status, head, body).
fn http(addr: &str, method: &str, path: &str, headers: &[(&str, &str)], body: &[u8]) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let mut head =
        format!("{method} {path} HTTP/1.1\r\nHost: test\r\nContent-Length: {}\r\nConnection: close\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    s.write_all(head.as_bytes()).unwrap();
    s.write_all(body).unwrap();
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).unwrap();
    let split = raw.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
    let head = String::from_utf8_lossy(&raw[..split]).to_lowercase();
    let status = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (status, head, String::from_utf8_lossy(&raw[split + 4..]).to_string())
}

fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| l.strip_prefix(&format!("{name}: "))).map(str::trim)
}

fn is_generated_id(id: &str) -> bool {
    id.len() == 17 && id.as_bytes()[8] == b'-' && id.bytes().filter(|b| *b != b'-').all(|b| b.is_ascii_hexdigit())
}

#[tokio::test]
async fn grpc_answers_carry_the_request_id_and_errors_carry_status_details() {
    let registry = temp_registry("correlation-grpc");
    let server = Server::start(&registry, &[]).await;
    let mut c = server.client().await;
    let clip = std::fs::read(&samples()[0]).unwrap();

    // Success, no id sent: a new one, the same in headers, trailers and the answer.
    let r = c.classify(encoded(clip.clone())).await.unwrap();
    let id = r.metadata().get("x-request-id").expect("x-request-id").to_str().unwrap().to_string();
    assert!(is_generated_id(&id), "{id}");
    assert_eq!(r.get_ref().request_id, id);

    // The client's id is kept, and answered in the summary too.
    let mut request = tonic::Request::new(encoded(clip.clone()));
    request.metadata_mut().insert("x-request-id", MetadataValue::from_static("order-42.retry:1"));
    let r = c.classify(request).await.unwrap();
    assert_eq!(r.metadata().get("x-request-id").unwrap(), "order-42.retry:1");
    assert_eq!(r.get_ref().request_id, "order-42.retry:1");

    // One that could forge a log line or bloat one is replaced.
    let mut request = tonic::Request::new(encoded(clip.clone()));
    request.metadata_mut().insert("x-request-id", MetadataValue::try_from("a".repeat(129)).unwrap());
    let r = c.classify(request).await.unwrap();
    assert!(is_generated_id(r.metadata().get("x-request-id").unwrap().to_str().unwrap()));

    // An error: the id, the name, and the google.rpc.Status details.
    let mut request = tonic::Request::new(encoded(b"not audio at all, just text".to_vec()));
    request.metadata_mut().insert("x-request-id", MetadataValue::from_static("bad-upload-7"));
    request
        .metadata_mut()
        .insert("traceparent", MetadataValue::from_static("00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"));
    let e = c.classify(request).await.expect_err("garbage is refused");
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(e.metadata().get("x-request-id").unwrap(), "bad-upload-7");
    let details = e.get_error_details();
    let info = details.error_info().expect("ErrorInfo in the status details");
    assert_eq!((info.reason.as_str(), info.domain.as_str()), ("undecodable_audio", "vericlip"));
    assert!(details.retry_info().is_none(), "a bad request is not worth a retry");

    // Another RPC, another error.
    let e = c.get_model(api::GetModelRequest { name: "nope".into(), version: 0 }).await.unwrap_err();
    assert_eq!(e.get_error_details().error_info().unwrap().reason, "model_not_found");
    assert!(e.metadata().get("x-request-id").is_some());

    // A stream: the id in the initial metadata; an error in the trailers carries it too.
    let config = api::ClassifyStreamRequest {
        message: Some(api::classify_stream_request::Message::Config(api::StreamConfig {
            step_seconds: 9.0,
            format: Some(api::stream_config::Format::Encoded(true)),
            ..Default::default()
        })),
    };
    let mut request = tonic::Request::new(tokio_stream::iter(vec![config]));
    request.metadata_mut().insert("x-request-id", MetadataValue::from_static("stream-1"));
    let e = c.classify_stream(request).await.expect_err("step 9 s is refused");
    assert_eq!(e.metadata().get("x-request-id").unwrap(), "stream-1");
    assert_eq!(e.get_error_details().error_info().unwrap().reason, "invalid_step");

    // Each error answer is in the log at the default level, once, with its id and trace.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = server.log_text();
    let lines: Vec<&str> = log.lines().filter(|l| l.contains("bad-upload-7") && l.contains("error answer")).collect();
    assert_eq!(lines.len(), 1, "one log line for the failed call:\n{log}");
    assert!(
        lines[0].contains("undecodable_audio") && lines[0].contains("4bf92f3577b34da6a3ce929d0e0e4736"),
        "{}",
        lines[0]
    );
    assert!(log.lines().any(|l| l.contains("stream-1") && l.contains("invalid_step")), "{log}");
}

#[tokio::test]
async fn http_answers_carry_the_request_id_and_the_documented_statuses() {
    let registry = temp_registry("correlation-http");
    let keys = registry.with_extension("keys");
    std::fs::write(&keys, "test-key-0123456789\n").unwrap();
    let keys_path = keys.to_str().unwrap().to_string();
    let server = Server::start(
        &registry,
        &[("VERICLIP__AUTH__API_KEY_FILE", &keys_path), ("VERICLIP__GRPC__MAX_MESSAGE_BYTES", "2000000")],
    )
    .await;
    let addr = server.http.clone();
    let auth = ("authorization", "Bearer test-key-0123456789");
    let clip = std::fs::read(&samples()[0]).unwrap();

    // Success with the client's id.
    let (status, head, body) = http(&addr, "POST", "/v1/classify", &[auth, ("x-request-id", "web-1")], &clip);
    assert_eq!(status, 200, "{body}");
    assert_eq!(header(&head, "x-request-id"), Some("web-1"));
    assert!(body.contains("\"request_id\":\"web-1\""), "{body}");

    // 401 says how to authenticate, and has an id.
    let (status, head, body) = http(&addr, "POST", "/v1/classify", &[], &clip);
    assert_eq!(status, 401, "{body}");
    assert_eq!(header(&head, "www-authenticate"), Some("bearer realm=\"vericlip\""));
    assert!(is_generated_id(header(&head, "x-request-id").unwrap()));

    // Too large: 413, not a retryable 429.
    let (status, head, body) = http(&addr, "POST", "/v1/classify", &[auth], &vec![0; 2_100_000]);
    assert_eq!(status, 413, "{body}");
    assert_eq!(header(&head, "vericlip-error"), Some("message_too_large"));
    assert!(header(&head, "retry-after").is_none());

    // Unknown routes and methods: the JSON error body.
    let (status, head, body) = http(&addr, "GET", "/v2/nothing-here", &[], b"");
    assert_eq!(status, 404);
    let json: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
    assert_eq!(json["error"]["name"], "not_found");
    assert!(header(&head, "x-request-id").is_some());
    let (status, _, body) = http(&addr, "POST", "/healthz", &[], b"");
    assert_eq!(status, 405);
    let json: serde_json::Value = serde_json::from_str(&body).expect("a JSON body");
    assert_eq!(json["error"]["name"], "method_not_allowed");

    // A failed request is logged once with its id.
    let (status, _, _) = http(&addr, "POST", "/v1/classify", &[auth, ("x-request-id", "web-bad-2")], b"garbage!");
    assert_eq!(status, 400);
    tokio::time::sleep(Duration::from_millis(200)).await;
    let log = server.log_text();
    let n = log.lines().filter(|l| l.contains("web-bad-2") && l.contains("error answer")).count();
    assert_eq!(n, 1, "{log}");
}

#[tokio::test]
async fn a_server_without_a_model_says_when_to_retry() {
    let registry = std::env::temp_dir().join(format!("vericlip-correlation-empty-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&registry);
    std::fs::create_dir_all(&registry).unwrap();
    let server = Server::spawn(&registry, &[]);
    let clip = std::fs::read(&samples()[0]).unwrap();
    let (status, head, body) = http(&server.http, "POST", "/v1/classify", &[], &clip);
    assert_eq!(status, 503, "{body}");
    assert_eq!(header(&head, "retry-after"), Some("1"));
    let mut c = server.client().await;
    let e = c.classify(encoded(clip)).await.unwrap_err();
    assert_eq!(e.code(), Code::Unavailable);
    let details = e.get_error_details();
    assert_eq!(details.error_info().unwrap().reason, "unavailable");
    assert_eq!(details.retry_info().and_then(|r| r.retry_delay), Some(Duration::from_secs(1)));
}
