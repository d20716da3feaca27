//! A minimal blocking HTTP/1.1 client for the store's API: one request per connection
//! (`Connection: close`), the answer read to its end within a deadline.
//!
//! Whether a request may have reached the server matters to the history: a connection that
//! was never made sent nothing ([`HttpError::Connect`], a definite failure); an error after the
//! request was written ([`HttpError::Exchange`]) leaves the outcome unknown.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use thiserror::Error;

/// Largest answer read (the store's answers are a value or a small JSON body).
const RESPONSE_BYTES_MAX: usize = 1 << 20;

/// A request that got no usable answer.
#[derive(Debug, Error)]
pub(crate) enum HttpError {
    /// No connection: nothing was sent.
    #[error("cannot connect: {0}")]
    Connect(std::io::Error),
    /// The request may have been sent; no complete answer came in time.
    #[error("no answer: {0}")]
    Exchange(std::io::Error),
    /// An answer came but cannot be read.
    #[error("unreadable answer: {0}")]
    Malformed(String),
}

/// An answer: its status, headers (names in lower case) and body.
#[derive(Debug)]
pub(crate) struct HttpResponse {
    pub(crate) status: u16,
    headers: Vec<(String, String)>,
    pub(crate) body: Vec<u8>,
}

impl HttpResponse {
    /// The first header named `name` (lower case).
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(header, _)| header == name)
            .map(|(_, value)| value.as_str())
    }
}

/// Sends `method path` with `body` to `address` and reads the answer, all within `timeout`.
///
/// # Errors
///
/// [`HttpError`] as described there.
pub(crate) fn request(
    address: SocketAddr,
    method: &str,
    path: &str,
    body: &[u8],
    operation_id: u64,
    timeout: Duration,
) -> Result<HttpResponse, HttpError> {
    let deadline = Instant::now() + timeout;
    let mut stream = TcpStream::connect_timeout(&address, timeout).map_err(HttpError::Connect)?;
    let head = format!(
        "{method} {path} HTTP/1.1\r\nHost: {address}\r\nConnection: close\r\n\
         Content-Length: {}\r\nx-kv-op-id: {operation_id}\r\n\r\n",
        body.len()
    );
    let mut request = head.into_bytes();
    request.extend_from_slice(body);
    let remaining = |deadline: Instant| {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            Err(HttpError::Exchange(std::io::ErrorKind::TimedOut.into()))
        } else {
            Ok(left)
        }
    };
    stream
        .set_write_timeout(Some(remaining(deadline)?))
        .map_err(HttpError::Exchange)?;
    stream.write_all(&request).map_err(HttpError::Exchange)?;
    let mut answer = Vec::new();
    let mut buffer = [0_u8; 8192];
    loop {
        stream
            .set_read_timeout(Some(remaining(deadline)?))
            .map_err(HttpError::Exchange)?;
        match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => {
                answer.extend_from_slice(&buffer[..read]);
                if answer.len() > RESPONSE_BYTES_MAX {
                    return Err(HttpError::Malformed(format!(
                        "longer than {RESPONSE_BYTES_MAX} bytes"
                    )));
                }
                if let Some(response) = complete(&answer)? {
                    return Ok(response);
                }
            }
            Err(error) if error.kind() == std::io::ErrorKind::Interrupted => {}
            Err(error) => return Err(HttpError::Exchange(error)),
        }
    }
    complete(&answer)?.ok_or_else(|| {
        HttpError::Exchange(std::io::Error::new(
            std::io::ErrorKind::UnexpectedEof,
            "the connection closed before the whole answer",
        ))
    })
}

/// The answer in `bytes` once its head and `Content-Length` bytes of body are there.
fn complete(bytes: &[u8]) -> Result<Option<HttpResponse>, HttpError> {
    let Some(head_end) = bytes.windows(4).position(|window| window == b"\r\n\r\n") else {
        return Ok(None);
    };
    let head = std::str::from_utf8(&bytes[..head_end])
        .map_err(|_| HttpError::Malformed("a head that is not UTF-8".to_owned()))?;
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|status| status.parse::<u16>().ok())
        .ok_or_else(|| HttpError::Malformed(format!("status line {status_line:?}")))?;
    let mut headers = Vec::new();
    for line in lines {
        let (name, value) = line
            .split_once(':')
            .ok_or_else(|| HttpError::Malformed(format!("header line {line:?}")))?;
        headers.push((name.trim().to_ascii_lowercase(), value.trim().to_owned()));
    }
    let response = HttpResponse {
        status,
        headers,
        body: Vec::new(),
    };
    if response.header("transfer-encoding").is_some() {
        return Err(HttpError::Malformed(
            "a chunked body (the store sends Content-Length)".to_owned(),
        ));
    }
    let length = match response.header("content-length") {
        None => 0,
        Some(length) => length
            .parse::<usize>()
            .map_err(|_| HttpError::Malformed(format!("Content-Length {length:?}")))?,
    };
    let body = &bytes[head_end + 4..];
    if body.len() < length {
        return Ok(None);
    }
    Ok(Some(HttpResponse {
        body: body[..length].to_vec(),
        ..response
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_answer_is_complete_once_its_body_is_there() {
        let head = b"HTTP/1.1 307 Temporary Redirect\r\nLocation: http://10.0.0.1:8000/kv/r1\r\n\
                     X-KV-Outcome: failed\r\ncontent-length: 4\r\n\r\n";
        let mut bytes = head.to_vec();
        bytes.extend_from_slice(b"ab");
        assert!(complete(&bytes).expect("a good head").is_none());
        bytes.extend_from_slice(b"cd");
        let response = complete(&bytes).expect("a good head").expect("complete");
        assert_eq!(response.status, 307);
        assert_eq!(response.header("x-kv-outcome"), Some("failed"));
        assert_eq!(
            response.header("location"),
            Some("http://10.0.0.1:8000/kv/r1")
        );
        assert_eq!(response.body, b"abcd");
    }

    #[test]
    fn a_bad_status_line_is_malformed() {
        assert!(matches!(
            complete(b"garbage\r\n\r\n"),
            Err(HttpError::Malformed(_))
        ));
    }
}
