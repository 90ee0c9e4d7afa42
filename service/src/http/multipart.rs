//! `multipart/form-data` uploads to `POST /v1/classify` (what `curl -F file=@clip.flac` and an
//! HTML form send): the audio is the one part named `file`; other parts are ignored. The body is
//! already read (and held against the memory budget) when this runs, so the part is a view of it.
//! A part's header block is at most [`MAX_PART_HEADER_BYTES`] (a clear 400 past it) and is read
//! as bytes: its size never costs more than the body itself.

use crate::error::ServiceError;

/// The form field that carries the audio.
pub const FILE_PART: &str = "file";

/// Largest header block of one part (its `content-disposition`, `content-type`, ...): a few
/// hundred bytes from any browser or curl; 16 KiB leaves room for long file names.
pub const MAX_PART_HEADER_BYTES: usize = 16 << 10;

/// Whether a `content-type` value is `multipart/form-data`.
pub fn is_multipart(content_type: &str) -> bool {
    content_type.split(';').next().is_some_and(|t| t.trim().eq_ignore_ascii_case("multipart/form-data"))
}

fn invalid(message: impl Into<String>) -> ServiceError {
    ServiceError::bad_request("invalid_multipart", message)
}

/// The `boundary` parameter of a multipart content type (RFC 2046: 1 to 70 characters).
fn boundary(content_type: &str) -> Result<&str, ServiceError> {
    let b = content_type
        .split(';')
        .skip(1)
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("boundary"))
        .map(|(_, v)| v.trim().trim_matches('"'))
        .ok_or_else(|| invalid("multipart/form-data needs a `boundary` parameter in its content-type"))?;
    if b.is_empty() || b.len() > 70 || b.bytes().any(|c| c == b'\r' || c == b'\n') {
        return Err(invalid("the multipart boundary must be 1 to 70 characters on one line"));
    }
    Ok(b)
}

/// First position of `needle` in `hay` at or after `from`. `needle` starts with CR LF and holds
/// no other CR LF, so candidate matches cannot overlap: the search is linear in `hay`.
fn find(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    let first = *needle.first()?;
    let mut i = from;
    while i + needle.len() <= hay.len() {
        let at = hay[i..=hay.len() - needle.len()].iter().position(|&c| c == first)? + i;
        if hay[at..at + needle.len()] == *needle {
            return Some(at);
        }
        i = at + 1;
    }
    None
}

/// The `name` parameter of a part's `content-disposition: form-data; name="..."` header. The
/// header block is split as bytes; only the disposition line is read as text.
fn part_name(headers: &[u8]) -> Option<String> {
    let disposition = headers.split(|&b| b == b'\n').find_map(|line| {
        let colon = line.iter().position(|&b| b == b':')?;
        let name = line[..colon].trim_ascii();
        name.eq_ignore_ascii_case(b"content-disposition").then(|| String::from_utf8_lossy(&line[colon + 1..]))
    })?;
    disposition
        .split(';')
        .skip(1)
        .filter_map(|p| p.trim().split_once('='))
        .find(|(k, _)| k.trim().eq_ignore_ascii_case("name"))
        .map(|(_, v)| v.trim().trim_matches('"').to_string())
}

/// The bytes of the part named `file` in a `multipart/form-data` body.
pub fn file_part<'a>(content_type: &str, body: &'a [u8]) -> Result<&'a [u8], ServiceError> {
    let boundary = boundary(content_type)?;
    // Every delimiter but the first follows a CR LF (which belongs to the delimiter, not to the
    // part before it); the first may open the body. `at` is where a `--boundary` line starts.
    let delimiter = format!("\r\n--{boundary}").into_bytes();
    let mut at = if body.starts_with(&delimiter[2..]) {
        0
    } else {
        find(body, &delimiter, 0).map(|p| p + 2).ok_or_else(|| invalid("no multipart boundary found in the body"))?
    };
    let mut found: Option<&[u8]> = None;
    loop {
        let after = at + delimiter.len() - 2;
        let rest = body.get(after..).unwrap_or_default();
        if rest.starts_with(b"--") {
            break;
        }
        if !rest.starts_with(b"\r\n") {
            return Err(invalid("a multipart boundary line is not followed by CR LF"));
        }
        let headers_start = after + 2;
        // The blank line is looked for within the bound only.
        let window = &body[..body.len().min(headers_start + MAX_PART_HEADER_BYTES + 4)];
        let headers_end = find_plain(window, b"\r\n\r\n", headers_start).ok_or_else(|| {
            if window.len() < body.len() {
                ServiceError::bad_request(
                    "multipart_headers_too_large",
                    format!("a multipart part's headers are over {MAX_PART_HEADER_BYTES} bytes"),
                )
            } else {
                invalid("a multipart part's headers do not end (no blank line)")
            }
        })?;
        let content_start = headers_end + 4;
        let next = find(body, &delimiter, content_start)
            .ok_or_else(|| invalid("the multipart body ends before its closing boundary"))?;
        if part_name(&body[headers_start..headers_end]).as_deref() == Some(FILE_PART) {
            if found.is_some() {
                return Err(ServiceError::bad_request(
                    "multiple_file_parts",
                    "send one part named `file` per request (one clip per classification)",
                ));
            }
            found = Some(&body[content_start..next]);
        }
        at = next + 2;
    }
    found.ok_or_else(|| {
        ServiceError::bad_request(
            "missing_file_part",
            "a multipart/form-data upload needs its audio in a part named `file`, e.g. \
             curl -F file=@clip.wav http://HOST:8080/v1/classify",
        )
    })
}

/// First position of `needle` (any bytes) at or after `from`; header blocks are short, so a
/// plain scan is enough there.
fn find_plain(hay: &[u8], needle: &[u8], from: usize) -> Option<usize> {
    hay.get(from..)?.windows(needle.len()).position(|w| w == needle).map(|p| p + from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CT: &str = "multipart/form-data; boundary=------------------------abc123";

    fn body(parts: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = Vec::new();
        for (name, data) in parts {
            b.extend_from_slice(b"--------------------------abc123\r\n");
            b.extend_from_slice(
                format!("Content-Disposition: form-data; name=\"{name}\"; filename=\"x.wav\"\r\n").as_bytes(),
            );
            b.extend_from_slice(b"Content-Type: audio/wav\r\n\r\n");
            b.extend_from_slice(data);
            b.extend_from_slice(b"\r\n");
        }
        b.extend_from_slice(b"--------------------------abc123--\r\n");
        b
    }

    #[test]
    fn the_file_part_is_found_byte_for_byte() {
        // Audio bytes that contain CR LF, dashes and a near-boundary must come back whole.
        let audio: &[u8] = b"RIFF\r\n--------------------------abc12\x00\xff\r\n\r\nend";
        let b = body(&[("model", b"x"), ("file", audio), ("note", b"y")]);
        assert_eq!(file_part(CT, &b).unwrap(), audio);
        assert!(is_multipart(CT) && is_multipart("Multipart/Form-Data;boundary=x") && !is_multipart("audio/wav"));
        // A quoted boundary, and a preamble before the first delimiter.
        let mut pre = b"preamble\r\n".to_vec();
        pre.extend(body(&[("file", b"data")]));
        let quoted = "multipart/form-data; boundary=\"------------------------abc123\"";
        assert_eq!(file_part(quoted, &pre).unwrap(), b"data");
    }

    #[test]
    fn bad_uploads_get_their_own_names() {
        let name = |ct: &str, b: &[u8]| file_part(ct, b).unwrap_err().name();
        assert_eq!(name(CT, &body(&[("audio", b"x")])), "missing_file_part");
        assert_eq!(name(CT, &body(&[("file", b"x"), ("file", b"y")])), "multiple_file_parts");
        assert_eq!(name("multipart/form-data", &body(&[("file", b"x")])), "invalid_multipart");
        assert_eq!(name(CT, b"no boundary here"), "invalid_multipart");
        let mut cut = body(&[("file", b"x")]);
        cut.truncate(cut.len() - 40);
        assert_eq!(name(CT, &cut), "invalid_multipart");
    }

    #[test]
    fn part_headers_are_bounded_and_read_as_bytes() {
        // A header block of 1 MiB (no blank line within the bound): refused by name.
        let mut huge = b"--------------------------abc123\r\nX-Pad: ".to_vec();
        huge.extend(std::iter::repeat_n(b'a', 1 << 20));
        huge.extend_from_slice(b"\r\n\r\ndata\r\n--------------------------abc123--\r\n");
        let e = file_part(CT, &huge).unwrap_err();
        assert_eq!(e.name(), "multipart_headers_too_large");
        assert!(e.to_string().contains(&MAX_PART_HEADER_BYTES.to_string()), "{e}");
        // Just under the bound, with bytes that are not UTF-8 in another header: accepted.
        let mut fits = b"--------------------------abc123\r\nX-Pad: \xff\xfe".to_vec();
        fits.extend(std::iter::repeat_n(b'a', MAX_PART_HEADER_BYTES - 200));
        fits.extend_from_slice(b"\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\ndata\r\n");
        fits.extend_from_slice(b"--------------------------abc123--\r\n");
        assert_eq!(file_part(CT, &fits).unwrap(), b"data");
    }
}
