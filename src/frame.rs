//! NDJSON framing: one JSON text per line, with a length cap that is enforced while reading,
//! so an oversized frame is discarded as it streams in instead of being buffered whole.

use std::io;

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncWrite, AsyncWriteExt};

/// Default cap on one frame: 16 MiB.
pub const DEFAULT_MAX_FRAME_BYTES: usize = 16 * 1024 * 1024;

#[derive(Debug, PartialEq, Eq)]
pub enum Frame {
    /// One line, without its terminating newline (or `\r\n`).
    Line(Vec<u8>),
    /// A line went over the cap. Reported as soon as the cap is crossed; the rest of that line
    /// is skipped by the following reads, so the stream stays usable for the next frame.
    TooLarge { limit: usize },
}

#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("the peer closed the connection in the middle of a frame ({0} bytes received)")]
    TruncatedFrame(usize),
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Reads frames from a buffered byte stream. Clean end of stream between frames is `Ok(None)`.
pub struct FrameReader<R> {
    inner: R,
    limit: usize,
    buf: Vec<u8>,
    /// Set after `TooLarge`: skip bytes up to and including the next newline.
    discarding: bool,
}

impl<R: AsyncBufRead + Unpin> FrameReader<R> {
    pub fn new(inner: R, limit: usize) -> Self {
        FrameReader {
            inner,
            limit,
            buf: Vec::new(),
            discarding: false,
        }
    }

    /// Changes the largest frame read from now on (a connection that authenticates is
    /// allowed more than one that has not).
    pub fn set_limit(&mut self, limit: usize) {
        self.limit = limit;
    }

    pub async fn next_frame(&mut self) -> Result<Option<Frame>, FrameError> {
        loop {
            let available = self.inner.fill_buf().await?;
            if available.is_empty() {
                if self.discarding || self.buf.is_empty() {
                    // An oversized frame that was never terminated has been answered already.
                    return Ok(None);
                }
                let partial = self.buf.len();
                self.buf.clear();
                return Err(FrameError::TruncatedFrame(partial));
            }
            let newline = available.iter().position(|&b| b == b'\n');
            if self.discarding {
                match newline {
                    Some(i) => {
                        self.inner.consume(i + 1);
                        self.discarding = false;
                    }
                    None => {
                        let n = available.len();
                        self.inner.consume(n);
                    }
                }
                continue;
            }
            match newline {
                Some(i) => {
                    let fits = self.buf.len() + i <= self.limit + 1; // +1: a trailing '\r'
                    if fits {
                        self.buf.extend_from_slice(&available[..i]);
                    }
                    self.inner.consume(i + 1);
                    let mut line = std::mem::take(&mut self.buf);
                    if line.last() == Some(&b'\r') {
                        line.pop();
                    }
                    if !fits || line.len() > self.limit {
                        return Ok(Some(Frame::TooLarge { limit: self.limit }));
                    }
                    if line.iter().all(u8::is_ascii_whitespace) {
                        continue; // blank lines between frames are harmless
                    }
                    return Ok(Some(Frame::Line(line)));
                }
                None => {
                    let n = available.len();
                    if self.buf.len() + n > self.limit + 1 {
                        self.inner.consume(n);
                        self.buf = Vec::new();
                        self.discarding = true;
                        return Ok(Some(Frame::TooLarge { limit: self.limit }));
                    }
                    self.buf.extend_from_slice(available);
                    self.inner.consume(n);
                }
            }
        }
    }
}

/// Writes one frame: the bytes of a JSON text, then a newline, in a single write.
pub async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, json: &[u8]) -> io::Result<()> {
    let mut out = Vec::with_capacity(json.len() + 1);
    out.extend_from_slice(json);
    out.push(b'\n');
    writer.write_all(&out).await?;
    writer.flush().await
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::BufReader;

    async fn frames(input: &[u8], limit: usize, buf_cap: usize) -> Vec<Result<Frame, String>> {
        let mut reader = FrameReader::new(BufReader::with_capacity(buf_cap, input), limit);
        let mut out = Vec::new();
        loop {
            match reader.next_frame().await {
                Ok(Some(f)) => out.push(Ok(f)),
                Ok(None) => break,
                Err(e) => {
                    out.push(Err(e.to_string()));
                    break;
                }
            }
        }
        out
    }

    fn line(s: &str) -> Result<Frame, String> {
        Ok(Frame::Line(s.as_bytes().to_vec()))
    }

    #[tokio::test]
    async fn splits_lines_and_strips_crlf() {
        for cap in [1, 3, 64] {
            let got = frames(b"{\"a\":1}\n{\"b\":2}\r\n", 100, cap).await;
            assert_eq!(
                got,
                vec![line("{\"a\":1}"), line("{\"b\":2}")],
                "buffer {cap}"
            );
        }
    }

    #[tokio::test]
    async fn clean_eof_between_frames_is_none() {
        assert!(frames(b"", 10, 8).await.is_empty());
        assert_eq!(frames(b"x\n", 10, 8).await, vec![line("x")]);
    }

    #[tokio::test]
    async fn eof_mid_frame_is_an_error_naming_the_bytes() {
        let got = frames(b"ok\n{\"half", 100, 4).await;
        assert_eq!(got[0], line("ok"));
        assert!(got[1].as_ref().unwrap_err().contains("6 bytes"), "{got:?}");
    }

    #[tokio::test]
    async fn oversized_frame_is_reported_and_the_next_frame_still_reads() {
        for cap in [2, 5, 1024] {
            let mut input = vec![b'x'; 50];
            input.extend_from_slice(b"\nsmall\n");
            let got = frames(&input, 10, cap).await;
            assert_eq!(
                got,
                vec![Ok(Frame::TooLarge { limit: 10 }), line("small")],
                "buffer {cap}"
            );
        }
    }

    #[tokio::test]
    async fn frame_exactly_at_the_limit_is_accepted() {
        let input = b"0123456789\n012345678901\n";
        let got = frames(input, 10, 4).await;
        assert_eq!(
            got,
            vec![line("0123456789"), Ok(Frame::TooLarge { limit: 10 })]
        );
    }

    #[tokio::test]
    async fn unterminated_oversized_frame_ends_quietly_after_its_report() {
        let input = vec![b'y'; 100];
        let got = frames(&input, 10, 7).await;
        assert_eq!(got, vec![Ok(Frame::TooLarge { limit: 10 })]);
    }

    #[tokio::test]
    async fn blank_lines_are_skipped() {
        assert_eq!(frames(b"\n\r\n  \na\n", 10, 8).await, vec![line("a")]);
    }
}
