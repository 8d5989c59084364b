//! A bounded, linear-time decoder of `text/event-stream` bodies.
//!
//! Bytes are appended as they arrive; each byte is scanned for a line break once (the scan
//! resumes where the previous one stopped), so one event of `n` bytes costs `O(n)` however it
//! is chunked. A line longer than [`SseLimits::max_line`] or an event whose data exceeds
//! [`SseLimits::max_event`] stops decoding with an error instead of buffering on.
//!
//! Field handling follows the HTML standard: `data` lines are joined with `\n`, comments
//! (`:`) are skipped, an empty line dispatches the event; `event`, `id` and `retry` are
//! read and ignored (the payloads carry their own `type`). At the end of the body, data of
//! complete lines not yet dispatched is delivered; an unterminated last line is dropped.

/// The UTF-8 byte-order mark a body may start with.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// Size caps of one stream.
#[derive(Debug, Clone, Copy)]
pub(crate) struct SseLimits {
    /// Longest line, in bytes, without its line break.
    pub(crate) max_line: usize,
    /// Largest data of one event, in bytes.
    pub(crate) max_event: usize,
}

/// A cap was exceeded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum SseOverflow {
    /// A line grew past [`SseLimits::max_line`].
    Line(usize),
    /// An event's data grew past [`SseLimits::max_event`].
    Event(usize),
}

/// Incremental decoder; feed it with [`SseDecoder::push`], drain it with
/// [`SseDecoder::next_data`].
#[derive(Debug)]
pub(crate) struct SseDecoder {
    limits: SseLimits,
    buf: Vec<u8>,
    /// First byte of the current, not yet terminated line.
    start: usize,
    /// Bytes in `start..scan` are known to hold no line break.
    scan: usize,
    /// The last line ended with CR at the end of the buffer: a leading LF belongs to it.
    skip_lf: bool,
    /// Whether the byte-order mark check at the start of the body is done.
    started: bool,
    data: String,
    has_data: bool,
}

impl SseDecoder {
    pub(crate) fn new(limits: SseLimits) -> Self {
        SseDecoder {
            limits,
            buf: Vec::new(),
            start: 0,
            scan: 0,
            skip_lf: false,
            started: false,
            data: String::new(),
            has_data: false,
        }
    }

    /// Appends received bytes. Already consumed lines are dropped from the buffer first, so
    /// it holds at most one partial line plus the new chunk.
    pub(crate) fn push(&mut self, chunk: &[u8]) {
        if self.start > 0 {
            self.buf.drain(..self.start);
            self.scan -= self.start;
            self.start = 0;
        }
        self.buf.extend_from_slice(chunk);
        if !self.started {
            // The body may start with a byte-order mark, possibly cut across chunks: wait
            // until its bytes are all there (nothing before it is a line), then drop it.
            if self.buf.len() < BOM.len() && BOM.starts_with(&self.buf) {
                return;
            }
            self.started = true;
            if self.buf.starts_with(BOM) {
                self.buf.drain(..BOM.len());
                self.scan = 0;
            }
        }
    }

    /// The data of the next complete event, `None` until more bytes are needed.
    pub(crate) fn next_data(&mut self) -> Result<Option<String>, SseOverflow> {
        while let Some(line_end) = self.next_line_end()? {
            let (from, to) = (self.start, line_end.content_end);
            self.start = line_end.next_start;
            self.scan = self.start;
            if let Some(data) = self.line(from, to)? {
                return Ok(Some(data));
            }
        }
        Ok(None)
    }

    /// The body ended: the data of complete lines not yet dispatched, if any.
    pub(crate) fn finish(&mut self) -> Option<String> {
        self.buf.clear();
        (self.start, self.scan) = (0, 0);
        self.take_data()
    }

    fn next_line_end(&mut self) -> Result<Option<LineEnd>, SseOverflow> {
        if self.skip_lf && self.start < self.buf.len() {
            self.skip_lf = false;
            if self.buf[self.start] == b'\n' {
                self.start += 1;
                self.scan = self.start;
            }
        }
        let Some(offset) = self.buf[self.scan..]
            .iter()
            .position(|&b| b == b'\n' || b == b'\r')
        else {
            self.scan = self.buf.len();
            if self.buf.len() - self.start > self.limits.max_line {
                return Err(SseOverflow::Line(self.limits.max_line));
            }
            return Ok(None);
        };
        let at = self.scan + offset;
        if at - self.start > self.limits.max_line {
            return Err(SseOverflow::Line(self.limits.max_line));
        }
        let next_start = if self.buf[at] == b'\r' {
            match self.buf.get(at + 1) {
                Some(b'\n') => at + 2,
                Some(_) => at + 1,
                None => {
                    self.skip_lf = true;
                    at + 1
                }
            }
        } else {
            at + 1
        };
        Ok(Some(LineEnd {
            content_end: at,
            next_start,
        }))
    }

    /// Handles the line `buf[from..to]`; returns an event's data when it dispatches one.
    fn line(&mut self, from: usize, to: usize) -> Result<Option<String>, SseOverflow> {
        let line = &self.buf[from..to];
        if line.is_empty() {
            return Ok(self.take_data());
        }
        if line[0] == b':' {
            return Ok(None);
        }
        let (field, value) = match line.iter().position(|&b| b == b':') {
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
            None => (line, &line[..0]),
        };
        if field != b"data" {
            return Ok(None);
        }
        let separator = usize::from(self.has_data);
        if self.data.len() + separator + value.len() > self.limits.max_event {
            return Err(SseOverflow::Event(self.limits.max_event));
        }
        if self.has_data {
            self.data.push('\n');
        }
        self.data.push_str(&String::from_utf8_lossy(value));
        self.has_data = true;
        Ok(None)
    }

    fn take_data(&mut self) -> Option<String> {
        if !self.has_data {
            return None;
        }
        self.has_data = false;
        Some(std::mem::take(&mut self.data))
    }
}

struct LineEnd {
    /// End of the line's content (the line break's position).
    content_end: usize,
    /// Start of the next line.
    next_start: usize,
}

#[cfg(test)]
mod tests {
    use super::*;

    const ROOMY: SseLimits = SseLimits {
        max_line: 1 << 20,
        max_event: 1 << 20,
    };

    fn decode(chunks: &[&[u8]], limits: SseLimits) -> Result<Vec<String>, SseOverflow> {
        let mut d = SseDecoder::new(limits);
        let mut out = Vec::new();
        for c in chunks {
            d.push(c);
            while let Some(data) = d.next_data()? {
                out.push(data);
            }
        }
        out.extend(d.finish());
        Ok(out)
    }

    #[test]
    fn fields_comments_and_line_endings() {
        let body =
            b"\xEF\xBB\xBF: comment\nevent: x\ndata: a\ndata:b\r\nid: 7\r\rdata\n\ndata: c\r\n\r\n";
        assert_eq!(decode(&[body], ROOMY).unwrap(), vec!["a\nb", "", "c"]);
    }

    #[test]
    fn any_chunking_gives_the_same_events() {
        let body: &[u8] = b"data: {\"x\":1}\r\n\r\nevent: e\ndata: two\ndata: lines\n\n: ping\r\ndata: last\r\n\r\n";
        let whole = decode(&[body], ROOMY).unwrap();
        assert_eq!(whole, vec!["{\"x\":1}", "two\nlines", "last"]);
        for size in 1..body.len() {
            let chunks: Vec<&[u8]> = body.chunks(size).collect();
            assert_eq!(decode(&chunks, ROOMY).unwrap(), whole, "chunk size {size}");
        }
    }

    #[test]
    fn pending_data_is_delivered_at_the_end_but_a_cut_line_is_not() {
        assert_eq!(decode(&[b"data: [DONE]\n"], ROOMY).unwrap(), vec!["[DONE]"]);
        assert!(decode(&[b"data: {\"cut"], ROOMY).unwrap().is_empty());
    }

    #[test]
    fn an_endless_line_hits_the_line_cap() {
        let limits = SseLimits {
            max_line: 64,
            max_event: 1 << 20,
        };
        let mut d = SseDecoder::new(limits);
        d.push(b"data: ");
        let mut result = Ok(None);
        for _ in 0..100 {
            d.push(b"xxxxxxxx");
            result = d.next_data();
            if result.is_err() {
                break;
            }
        }
        assert_eq!(result, Err(SseOverflow::Line(64)));
        // A long line inside one chunk too.
        let long = format!("data: {}\n\n", "y".repeat(100));
        assert_eq!(
            decode(&[long.as_bytes()], limits),
            Err(SseOverflow::Line(64))
        );
    }

    #[test]
    fn an_event_made_of_many_lines_hits_the_event_cap() {
        let limits = SseLimits {
            max_line: 64,
            max_event: 100,
        };
        let body = "data: 0123456789\n".repeat(20);
        assert_eq!(
            decode(&[body.as_bytes()], limits),
            Err(SseOverflow::Event(100))
        );
    }

    /// Random bodies over the bytes that matter to the format, cut at random places: never a
    /// panic, the same events (or the same overflow) however the body is chunked, and no
    /// event over the cap.
    #[test]
    fn random_bodies_and_chunkings_agree() {
        use rand::{Rng, SeedableRng};
        const ALPHABET: &[u8] = b"data:event \r\n\n\nxy{}\"\xEF\xBB\xBF\xFF";
        let limits = SseLimits {
            max_line: 24,
            max_event: 40,
        };
        let mut rng = rand::rngs::StdRng::seed_from_u64(0x55e);
        for _ in 0..20_000 {
            let len = rng.gen_range(0..120);
            let body: Vec<u8> = (0..len)
                .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())])
                .collect();
            let whole = decode(&[&body], limits);
            let mut chunks = Vec::new();
            let mut rest = body.as_slice();
            while !rest.is_empty() {
                let (head, tail) = rest.split_at(rng.gen_range(1..=rest.len()));
                chunks.push(head);
                rest = tail;
            }
            assert_eq!(decode(&chunks, limits), whole, "{body:?} as {chunks:?}");
            if let Ok(events) = whole {
                assert!(events.iter().all(|e| e.len() <= limits.max_event));
            }
        }
    }

    /// Found by fuzzing: a body cut inside its byte-order mark lost its first event.
    #[test]
    fn a_byte_order_mark_cut_across_chunks_is_still_skipped() {
        let whole = decode(&[b"\xEF\xBB\xBFdata: a\n\n"], ROOMY).unwrap();
        assert_eq!(whole, vec!["a"]);
        for chunks in [
            &[&b"\xEF"[..], b"\xBB\xBFdata: a\n\n"][..],
            &[b"\xEF\xBB", b"", b"\xBF", b"data: a\n\n"],
            &[b"", b"\xEF", b"\xBB", b"\xBFd", b"ata: a\n\n"],
        ] {
            assert_eq!(decode(chunks, ROOMY).unwrap(), whole, "{chunks:?}");
        }
        // Bytes that only start like a mark are data.
        assert_eq!(
            decode(&[b"\xEF", b"data: a\n\n"], ROOMY).unwrap(),
            Vec::<String>::new()
        );
        assert_eq!(decode(&[b"\xEF\xBB"], ROOMY).unwrap(), Vec::<String>::new());
    }

    #[test]
    fn invalid_utf8_is_replaced_not_fatal() {
        assert_eq!(
            decode(&[b"data: a\xFFb\n\n"], ROOMY).unwrap(),
            vec!["a\u{FFFD}b"]
        );
    }
}
