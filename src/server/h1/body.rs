//! Message bodies on the fast path, relayed verbatim as they arrive: never
//! buffered whole, never re-framed. Only the framing is parsed, to know where
//! a message ends (RFC 9112 §6).

use bytes::{Buf, BytesMut};
use std::io;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Bytes asked of the kernel per read (16 KiB).
pub const READ_SIZE: usize = 16 * 1024;
/// Largest trailer section accepted after a chunked body (64 KiB).
const MAX_TRAILERS: usize = 64 * 1024;

/// How a message's body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Framing {
    /// No body (HEAD, 1xx, 204, 304, or `Content-Length: 0`).
    Empty,
    Length(u64),
    Chunked,
    /// The body runs until the sender closes the connection.
    UntilClose,
}

/// Sends `head` followed by a body framed by `framing`, read from `buf`
/// (bytes already read) and then `src`, to `dst`. A body already in `buf` goes
/// out with the head in one write. Bytes after the body stay in `buf`.
pub async fn relay<R, W>(
    framing: Framing,
    head: &mut Vec<u8>,
    src: &mut R,
    buf: &mut BytesMut,
    dst: &mut W,
) -> io::Result<()>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    match framing {
        Framing::Empty => put(dst, head).await,
        Framing::Length(mut left) => {
            let now = take(buf, left);
            head.extend_from_slice(head_of(buf, now));
            buf.advance(now);
            left -= now as u64;
            put(dst, head).await?;
            while left > 0 {
                fill(src, buf).await?;
                let now = take(buf, left);
                put(dst, head_of(buf, now)).await?;
                buf.advance(now);
                left -= now as u64;
            }
            Ok(())
        }
        Framing::Chunked => {
            let mut chunks = Chunked::default();
            let now = chunks.feed(buf)?;
            head.extend_from_slice(head_of(buf, now));
            buf.advance(now);
            put(dst, head).await?;
            while !chunks.done() {
                fill(src, buf).await?;
                let now = chunks.feed(buf)?;
                put(dst, head_of(buf, now)).await?;
                buf.advance(now);
            }
            Ok(())
        }
        Framing::UntilClose => {
            head.extend_from_slice(buf);
            buf.clear();
            put(dst, head).await?;
            loop {
                buf.reserve(READ_SIZE);
                if src.read_buf(buf).await? == 0 {
                    return Ok(());
                }
                put(dst, buf).await?;
                buf.clear();
            }
        }
    }
}

/// Writes `bytes` and flushes them: a TLS stream may hold records back
/// when the socket is full, and nothing written may wait for the next read.
pub async fn put<W: AsyncWrite + Unpin>(dst: &mut W, bytes: &[u8]) -> io::Result<()> {
    dst.write_all(bytes).await?;
    dst.flush().await
}

/// The first `n` bytes of `buf` (all of it when shorter).
fn head_of(buf: &BytesMut, n: usize) -> &[u8] {
    buf.get(..n).unwrap_or(buf)
}

/// How many of the bytes in `buf` belong to a body with `left` bytes to go.
pub fn take(buf: &BytesMut, left: u64) -> usize {
    usize::try_from(left).map_or(buf.len(), |l| l.min(buf.len()))
}

/// Reads more into `buf`; the peer closing mid-body is an error.
async fn fill<R: AsyncRead + Unpin>(src: &mut R, buf: &mut BytesMut) -> io::Result<()> {
    buf.reserve(READ_SIZE);
    if src.read_buf(buf).await? == 0 {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(())
}

/// Follows chunked framing byte by byte (sizes, extensions, data, trailers)
/// to find where the body ends; the bytes themselves pass through untouched.
#[derive(Default)]
pub struct Chunked {
    state: State,
    size: u64,
    digits: usize,
    trailers: usize,
}

#[derive(Default, Clone, Copy, PartialEq, Eq)]
enum State {
    #[default]
    Size,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    TrailerStart,
    Trailer,
    TrailerLf,
    EndLf,
    Done,
}

fn bad(what: &'static str) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

impl Chunked {
    pub fn done(&self) -> bool {
        self.state == State::Done
    }

    /// Consumes the start of `bytes`; returns how many belong to this body.
    pub fn feed(&mut self, bytes: &[u8]) -> io::Result<usize> {
        let mut i = 0;
        while i < bytes.len() && self.state != State::Done {
            if self.state == State::Data {
                let n = take_u64(bytes.len() - i, self.size);
                i += n;
                self.size -= n as u64;
                if self.size == 0 {
                    self.state = State::DataCr;
                }
                continue;
            }
            let Some(&b) = bytes.get(i) else { break };
            i += 1;
            self.state = match (self.state, b) {
                (State::Size, b) if b.is_ascii_hexdigit() => {
                    let digit = u64::from((b as char).to_digit(16).unwrap_or(0));
                    if self.size > (u64::MAX >> 4) {
                        return Err(bad("chunk size too large"));
                    }
                    self.size = self.size << 4 | digit;
                    self.digits += 1;
                    State::Size
                }
                (State::Size, b';' | b' ' | b'\t') if self.digits > 0 => State::Extension,
                (State::Size, b'\r') if self.digits > 0 => State::SizeLf,
                (State::Extension, b'\r') => State::SizeLf,
                (State::Extension, b'\n') => return Err(bad("bare LF in chunk extension")),
                (State::Extension, _) => State::Extension,
                (State::SizeLf, b'\n') if self.size == 0 => State::TrailerStart,
                (State::SizeLf, b'\n') => State::Data,
                (State::DataCr, b'\r') => State::DataLf,
                (State::DataLf, b'\n') => {
                    self.digits = 0;
                    State::Size
                }
                (State::TrailerStart, b'\r') => State::EndLf,
                (State::Trailer, b'\r') => State::TrailerLf,
                (State::TrailerStart | State::Trailer, b'\n') => {
                    return Err(bad("bare LF in trailers"))
                }
                (State::TrailerStart | State::Trailer, _) => {
                    self.trailers += 1;
                    if self.trailers > MAX_TRAILERS {
                        return Err(bad("trailers too large"));
                    }
                    State::Trailer
                }
                (State::TrailerLf, b'\n') => State::TrailerStart,
                (State::EndLf, b'\n') => State::Done,
                _ => return Err(bad("invalid chunked framing")),
            };
        }
        Ok(i)
    }
}

fn take_u64(available: usize, wanted: u64) -> usize {
    usize::try_from(wanted).map_or(available, |w| w.min(available))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_end_is_found_across_any_split() {
        let body = b"4\r\nWiki\r\n5;ext=1\r\npedia\r\n0\r\nX-Sum: 1\r\n\r\nNEXT";
        let end = body.len() - 4;
        for split in 0..body.len() {
            let mut c = Chunked::default();
            let a = c.feed(&body[..split]).unwrap();
            assert_eq!(a, split.min(end));
            let b = c.feed(&body[split..]).unwrap();
            assert_eq!(a + b, end, "split at {split}");
            assert!(c.done());
        }
    }

    #[test]
    fn broken_chunked_framing_is_an_error() {
        for bad in [
            &b"zz\r\n"[..],
            b"4\r\nWikiXX",
            b"\r\n",
            b"4\n",
            b"ffffffffffffffffff\r\n",
        ] {
            assert!(Chunked::default().feed(bad).is_err(), "{bad:?}");
        }
    }

    #[tokio::test]
    async fn length_bodies_stop_at_their_end_and_keep_what_follows() {
        let mut buf = BytesMut::from(&b"abc"[..]);
        let mut src: &[u8] = b"defgNEXT";
        let mut out = Vec::new();
        let mut head = b"H|".to_vec();
        relay(Framing::Length(7), &mut head, &mut src, &mut buf, &mut out)
            .await
            .unwrap();
        assert_eq!(out, b"H|abcdefg");
        assert_eq!(&buf[..], b"NEXT");
    }

    #[tokio::test]
    async fn a_body_cut_short_is_an_error() {
        let mut buf = BytesMut::new();
        let mut src: &[u8] = b"ab";
        let mut out = Vec::new();
        let r = relay(
            Framing::Length(5),
            &mut Vec::new(),
            &mut src,
            &mut buf,
            &mut out,
        )
        .await;
        assert_eq!(r.unwrap_err().kind(), io::ErrorKind::UnexpectedEof);
    }

    #[tokio::test]
    async fn until_close_bodies_run_to_the_end() {
        let mut buf = BytesMut::from(&b"ab"[..]);
        let mut src: &[u8] = b"cd";
        let mut out = Vec::new();
        relay(
            Framing::UntilClose,
            &mut Vec::new(),
            &mut src,
            &mut buf,
            &mut out,
        )
        .await
        .unwrap();
        assert_eq!(out, b"abcd");
    }
}
