//! Probes always get in on the admin port (the real binary): 40 keep-alive connections, more
//! than `admin.max_connections` (32), each asks `/healthz` once and then stays open doing
//! nothing, as a scraper or a client with a connection pool would. Every connection still gets
//! its answer, and so does every kubelet-style probe on a fresh connection after them: at the cap
//! the quietest connection is evicted for the new one (before, only connections that had never
//! sent a request were evictable, and idle ones lived 300 s).

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::{Server, temp_registry};

/// One keep-alive `GET /healthz` on `s`: its status line, or what went wrong.
fn healthz(s: &mut TcpStream) -> Result<String, String> {
    s.set_read_timeout(Some(Duration::from_secs(10))).map_err(|e| e.to_string())?;
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: probe\r\n\r\n").map_err(|e| format!("write: {e}"))?;
    let mut got = Vec::new();
    let mut chunk = [0u8; 1024];
    // The answer is "ok\n" with its content-length: read until the head and 3 body bytes.
    loop {
        let n = s.read(&mut chunk).map_err(|e| format!("read: {e}"))?;
        if n == 0 {
            return Err(format!("closed after {} bytes", got.len()));
        }
        got.extend_from_slice(&chunk[..n]);
        if let Some(end) = got.windows(4).position(|w| w == b"\r\n\r\n")
            && got.len() >= end + 4 + 3
        {
            let head = String::from_utf8_lossy(&got[..end]).to_string();
            return Ok(head.lines().next().unwrap_or_default().to_string());
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_idle_keep_alive_admin_connections_never_lock_probes_out() {
    let reg = temp_registry("admin-idle");
    let server = Server::start(&reg, &[]).await;
    let mut idle = Vec::new();
    for i in 0..40 {
        let mut s = TcpStream::connect(&server.admin).unwrap();
        let answer = healthz(&mut s).unwrap_or_else(|e| panic!("keep-alive connection {i}: {e}"));
        assert!(answer.contains(" 200 "), "connection {i}: {answer}");
        idle.push(s);
    }
    // The prober: fresh connections while the 40 stay open (fewer than 40 will be, by now).
    for i in 0..20 {
        let mut s = TcpStream::connect(&server.admin).unwrap();
        let answer = healthz(&mut s).unwrap_or_else(|e| panic!("probe {i}: {e}; log:\n{}", server.log_text()));
        assert!(answer.contains(" 200 "), "probe {i}: {answer}");
    }
    // The oldest idle connections made way: the first one was closed by the server.
    let mut first = idle.remove(0);
    assert!(healthz(&mut first).is_err(), "the quietest connection should have been evicted");
    let open = server.metric("vericlip_open_connections{port=\"admin\"}");
    assert!(open <= 32.0, "{open} admin connections open, over the cap of 32");
}
