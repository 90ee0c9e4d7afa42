//! Probes that cannot be starved, through the real binary: 1,100 connections on each API port
//! that send 33 bytes of a request and stall (more than `limits.max_connections`) while a
//! kubelet-style prober asks `/healthz` on the admin port, `/healthz` on the HTTP port and gRPC
//! health on the gRPC port, each on a fresh connection: every probe answers. And a request body
//! that trickles in steadily but too slowly is closed by the minimum-rate rule.
//!
//! No assertion on speed: each probe has a generous timeout and must not fail; the latencies
//! are printed (docs/BENCHMARKS.md, "Reliability").

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::{Server, http_request, temp_registry};
use tonic::transport::Endpoint;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::{HealthCheckRequest, health_client::HealthClient};

const STALLED_PER_PORT: usize = 1_100;

/// The test opens 2,200 sockets: raise its own open-file limit to the hard limit.
fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit { rlim_cur: 0, rlim_max: 0 };
    // SAFETY: getrlimit/setrlimit read and write the struct we own.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max {
            limit.rlim_cur = limit.rlim_max;
            let _ = libc::setrlimit(libc::RLIMIT_NOFILE, &limit);
        }
    }
    limit.rlim_cur
}

/// 33 bytes of each protocol's first request, then nothing.
fn stall(addr: &str, first: &[u8], out: &mut Vec<TcpStream>) {
    for _ in 0..STALLED_PER_PORT {
        match TcpStream::connect(addr) {
            Ok(mut s) => {
                let _ = s.write_all(first);
                out.push(s);
            }
            Err(e) => panic!("connect {addr}: {e} after {} connections", out.len()),
        }
    }
}

async fn grpc_health(addr: &str) -> Result<i32, String> {
    let ch = Endpoint::from_shared(addr.to_string())
        .unwrap()
        .connect_timeout(Duration::from_secs(10))
        .timeout(Duration::from_secs(10))
        .connect()
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let r = HealthClient::new(ch).check(HealthCheckRequest { service: String::new() }).await;
    r.map(|r| r.into_inner().status).map_err(|e| format!("check: {e}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_connection_floods_do_not_starve_any_probe() {
    let fds = raise_open_file_limit();
    assert!(fds >= 2 * STALLED_PER_PORT as u64 + 200, "this test needs ~2,400 open files; the hard limit is {fds}");
    let reg = temp_registry("probes-flood");
    // The default connection cap (1,024 per API port), fewer than the flood.
    let server = Server::start(&reg, &[]).await;
    assert!(!server.admin.is_empty(), "the admin port is on by default");
    let grpc_addr = server.grpc.trim_start_matches("http://").to_string();
    let http_first: &[u8; 33] = b"POST /v1/classify HTTP/1.1\r\nHost:";
    // The HTTP/2 preface and an empty SETTINGS frame: 24 + 9 bytes.
    let mut h2_first = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n".to_vec();
    h2_first.extend_from_slice(&[0, 0, 0, 4, 0, 0, 0, 0, 0]);
    assert_eq!(h2_first.len(), 33);
    let mut stalled: Vec<TcpStream> = Vec::new();
    stall(&server.http, http_first, &mut stalled);
    stall(&grpc_addr, &h2_first, &mut stalled);

    // Probes as a kubelet sends them: a fresh connection each, for a few seconds.
    let (mut probes, mut failures) = (0, Vec::new());
    let mut worst = [Duration::ZERO; 3];
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(4) || probes < 10 {
        probes += 1;
        let (admin, http) = (server.admin.clone(), server.http.clone());
        let t = Instant::now();
        let admin_ok = tokio::task::spawn_blocking(move || {
            std::panic::catch_unwind(|| http_request(&admin, "GET", "/healthz", "text/plain", b"").0)
        });
        match admin_ok.await.unwrap() {
            Ok(200) => worst[0] = worst[0].max(t.elapsed()),
            other => failures.push(format!("admin /healthz: {other:?}")),
        }
        let t = Instant::now();
        let http_ok = tokio::task::spawn_blocking(move || {
            std::panic::catch_unwind(|| http_request(&http, "GET", "/healthz", "text/plain", b"").0)
        });
        match http_ok.await.unwrap() {
            Ok(200) => worst[1] = worst[1].max(t.elapsed()),
            other => failures.push(format!("http /healthz: {other:?}")),
        }
        let t = Instant::now();
        match grpc_health(&server.grpc).await {
            Ok(s) if s == ServingStatus::Serving as i32 => worst[2] = worst[2].max(t.elapsed()),
            other => failures.push(format!("grpc health: {other:?}")),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // How many of the flood the server still holds: at most its cap per port.
    let open_http = server.metric("vericlip_open_connections{port=\"http\"}");
    let open_grpc = server.metric("vericlip_open_connections{port=\"grpc\"}");
    eprintln!(
        "flood of {STALLED_PER_PORT} stalled connections per port: {probes} probes each; worst admin /healthz {:?}, \
         http /healthz {:?}, grpc health {:?}; open connections http {open_http}, grpc {open_grpc}",
        worst[0], worst[1], worst[2]
    );
    assert!(failures.is_empty(), "{} of {} probes failed: {failures:?}", failures.len(), 3 * probes);
    assert!(open_http <= 1024.0 && open_grpc <= 1024.0, "http {open_http}, grpc {open_grpc}");
    // Evicted flood connections were closed by the server (EOF or a reset; a timeout is open).
    let closed = stalled
        .iter()
        .filter(|s| {
            s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
            let mut s: &TcpStream = s;
            // What the server wrote first (its HTTP/2 SETTINGS) comes before the EOF.
            loop {
                match s.read(&mut [0u8; 256]) {
                    Ok(0) => return true,
                    Ok(_) => continue,
                    Err(e) => {
                        return !matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut);
                    }
                }
            }
        })
        .count();
    assert!(closed >= 2 * (STALLED_PER_PORT - 1024), "only {closed} stalled connections were evicted");
    drop(stalled);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_that_trickles_below_the_minimum_rate_is_closed() {
    let reg = temp_registry("probes-trickle");
    let server = Server::start(
        &reg,
        &[
            ("VERICLIP__LIMITS__BODY_MIN_BYTES_PER_WINDOW", "64"),
            ("VERICLIP__LIMITS__BODY_RATE_WINDOW_SECONDS", "1"),
            // The stall timer alone would wait this long: the rate rule must act first.
            ("VERICLIP__LIMITS__STREAM_IDLE_SECONDS", "60"),
        ],
    )
    .await;
    let mut s = TcpStream::connect(&server.http).unwrap();
    s.write_all(b"POST /v1/classify HTTP/1.1\r\nHost: t\r\nContent-Length: 100000\r\n\r\n").unwrap();
    s.set_read_timeout(Some(Duration::from_millis(300))).unwrap();
    let started = Instant::now();
    let mut answer = Vec::new();
    // One byte every 300 ms: it never stalls, and never reaches 64 bytes a second.
    while started.elapsed() < Duration::from_secs(40) {
        if s.write_all(b"x").is_err() {
            break;
        }
        match s.read_to_end(&mut answer) {
            Ok(_) => break,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock || e.kind() == std::io::ErrorKind::TimedOut => {
                if !answer.is_empty() {
                    break;
                }
            }
            Err(_) => break,
        }
    }
    let answer = String::from_utf8_lossy(&answer);
    eprintln!("trickled body answered after {:?}: {answer}", started.elapsed());
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer}");
    assert!(answer.contains("body_too_slow") && answer.contains("limits.body_min_bytes_per_window"), "{answer}");
    assert!(started.elapsed() < Duration::from_secs(40));
}
