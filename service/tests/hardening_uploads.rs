//! HTTP uploads whose parsing used to cost memory outside the budget (the real binary): a
//! multipart part with a 1 MiB header block is a 400 that names the bound, and a JSON upload is
//! counted in the memory budget with what its parse allocates (the base64 text and the decoded
//! audio) before it is parsed: one the budget cannot hold is refused (429), not parsed outside
//! it. Uploads that fit still classify, and the budget returns to zero after them.

mod common;

use base64::Engine as _;
use common::{Server, temp_registry};

const BOUNDARY: &str = "----vericlip-upload-test";

fn multipart(headers: &[u8], data: &[u8]) -> Vec<u8> {
    let mut b = format!("--{BOUNDARY}\r\n").into_bytes();
    b.extend_from_slice(headers);
    b.extend_from_slice(b"\r\n\r\n");
    b.extend_from_slice(data);
    b.extend_from_slice(format!("\r\n--{BOUNDARY}--\r\n").as_bytes());
    b
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_part_headers_are_a_400_and_json_parsing_is_counted_in_the_budget() {
    let reg = temp_registry("uploads");
    let server = Server::start(&reg, &[("VERICLIP__LIMITS__MEMORY_BUDGET_MB", "64")]).await;
    let wav = common::wav_bytes(&common::long_clip()[..32_000], 16_000);
    let form = format!("multipart/form-data; boundary={BOUNDARY}");

    // A part whose header block is 1 MiB: refused by name, whatever the part holds.
    let mut huge = b"Content-Disposition: form-data; name=\"file\"; filename=\"clip.wav\"\r\nX-Pad: ".to_vec();
    huge.extend(std::iter::repeat_n(b'a', 1 << 20));
    let (status, _, body) = server.http("POST", "/v1/classify", &form, &multipart(&huge, &wav));
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "{body}");
    assert!(body.contains("multipart_headers_too_large"), "{body}");
    // A normal form upload still classifies.
    let ok = b"Content-Disposition: form-data; name=\"file\"; filename=\"clip.wav\"\r\nContent-Type: audio/wav";
    let (status, _, body) = server.http("POST", "/v1/classify", &form, &multipart(ok, &wav));
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));

    // JSON of 30 MB: the body (30 MB) and its parse (the base64 text, 30 MB, and the decoded
    // 22.5 MB) do not fit a 64 MiB budget together: refused before it is parsed.
    let noise: Vec<u8> = (0..22_500_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 24) as u8).collect();
    let b64 = base64::engine::general_purpose::STANDARD.encode(&noise);
    let json = format!(r#"{{"audio_base64": "{b64}"}}"#);
    let (status, _, body) = server.http("POST", "/v1/classify", "application/json", json.as_bytes());
    let body = String::from_utf8_lossy(&body);
    assert_eq!(status, 429, "{body}");
    assert!(body.contains("memory_budget_exhausted"), "{body}");
    // A JSON upload that fits classifies.
    let small = format!(r#"{{"audio_base64": "{}"}}"#, base64::engine::general_purpose::STANDARD.encode(&wav));
    let (status, _, body) = server.http("POST", "/v1/classify", "application/json", small.as_bytes());
    assert_eq!(status, 200, "{}", String::from_utf8_lossy(&body));
    let started = std::time::Instant::now();
    while server.metric("vericlip_memory_budget_used_bytes") != 0.0 {
        assert!(started.elapsed() < std::time::Duration::from_secs(10), "the uploads' budget was not returned");
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
}
