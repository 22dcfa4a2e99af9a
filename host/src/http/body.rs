//! Reading a request body under a size limit, without cutting the client off.
//!
//! A client that streams a body over the limit is still writing when we know the
//! answer is 413. If we answered and dropped the connection at once, the unread bytes
//! would make the kernel reset it and the client would see a broken connection instead
//! of our JSON error. So, like a server's "lingering close", the rest of the body is
//! read and thrown away — at most [`DRAIN_MAX_BYTES`] and for at most [`DRAIN_TIMEOUT`],
//! so a client cannot keep us busy — before the 413 goes out.

use std::time::Duration;

use axum::body::{Body, Bytes};
use axum::http::HeaderMap;

use super::error::ApiError;

/// How much of an oversized body is read and discarded before answering 413.
pub const DRAIN_MAX_BYTES: usize = 1 << 20;
/// How long an oversized body is drained before answering 413.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(1);

/// Reads the whole body if it is at most `limit` bytes; otherwise drains what is left
/// (bounded) and returns [`ApiError::PayloadTooLarge`].
pub async fn read_limited(headers: &HeaderMap, body: Body, limit: usize) -> Result<Bytes, ApiError> {
    let declared = headers
        .get(axum::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    let mut body = body.into_data_stream();
    if declared.is_some_and(|len| len > limit as u64) {
        drain(&mut body).await;
        return Err(ApiError::PayloadTooLarge { limit });
    }
    let mut buf = Vec::with_capacity(declared.map_or(0, |len| len as usize));
    while let Some(chunk) = futures::StreamExt::next(&mut body).await {
        let chunk = chunk.map_err(|e| ApiError::BadRequest {
            code: "bad_body",
            message: format!("could not read the request body: {e}"),
        })?;
        if buf.len() + chunk.len() > limit {
            drain(&mut body).await;
            return Err(ApiError::PayloadTooLarge { limit });
        }
        buf.extend_from_slice(&chunk);
    }
    Ok(Bytes::from(buf))
}

/// Reads and discards a body the answer does not need (e.g. before a 401), within the
/// same bounds, so the client gets the answer rather than a reset connection.
pub async fn discard(body: Body) {
    drain(&mut body.into_data_stream()).await;
}

/// Reads and discards the rest of a body, within [`DRAIN_MAX_BYTES`] and
/// [`DRAIN_TIMEOUT`]. Errors end the draining quietly: the answer is 413 either way.
async fn drain(body: &mut axum::body::BodyDataStream) {
    let read_rest = async {
        let mut drained = 0usize;
        while let Some(Ok(chunk)) = futures::StreamExt::next(body).await {
            drained += chunk.len();
            if drained > DRAIN_MAX_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIMEOUT, read_rest).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chunked(chunks: usize, size: usize) -> Body {
        let parts: Vec<Result<Vec<u8>, std::io::Error>> = (0..chunks).map(|_| Ok(vec![b'x'; size])).collect();
        Body::from_stream(futures::stream::iter(parts))
    }

    #[tokio::test]
    async fn a_body_at_the_limit_is_read_whole() {
        let bytes = read_limited(&HeaderMap::new(), chunked(10, 100), 1000)
            .await
            .unwrap();
        assert_eq!(bytes.len(), 1000);
    }

    #[tokio::test]
    async fn a_body_over_the_limit_is_413() {
        let err = read_limited(&HeaderMap::new(), chunked(11, 100), 1000)
            .await
            .unwrap_err();
        assert!(
            matches!(err, ApiError::PayloadTooLarge { limit: 1000 }),
            "{err:?}"
        );
    }

    #[tokio::test]
    async fn a_declared_length_over_the_limit_is_413_before_reading() {
        let mut headers = HeaderMap::new();
        headers.insert(axum::http::header::CONTENT_LENGTH, "5000".parse().unwrap());
        let err = read_limited(&headers, chunked(1, 10), 1000).await.unwrap_err();
        assert!(
            matches!(err, ApiError::PayloadTooLarge { limit: 1000 }),
            "{err:?}"
        );
    }
}
