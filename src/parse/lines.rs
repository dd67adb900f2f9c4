//! Input → lines. Reads any byte stream in bounded memory, optionally copying it byte for byte
//! to a "tee" writer as it is read, and strips what terminals and CI systems add to each line.

use std::borrow::Cow;
use std::io::{self, Read, Write};

/// Longest line kept whole. Longer lines (binary junk, minified blobs) are cut to this length and
/// flagged; the rest of the line is skipped without being stored, so memory stays flat.
pub const MAX_LINE: usize = 1 << 20;
const READ_CHUNK: usize = 256 * 1024;

/// One line, without its line end.
#[derive(Debug)]
pub struct Line<'a> {
    /// 1-based.
    pub number: u64,
    /// The line's bytes, without its line end (and without CI or colour prefixes when stripped).
    pub bytes: &'a [u8],
    /// The line was longer than [`MAX_LINE`] and only its start is here.
    pub truncated: bool,
}

/// A bounded line reader: lines longer than the limit are cut and the rest skipped, so memory stays flat whatever the input; with a tee, every byte read is copied out as it is read.
pub struct LineReader<R> {
    inner: R,
    buf: Vec<u8>,
    start: usize,
    end: usize,
    eof: bool,
    /// Inside an over-long line: drop bytes up to the next newline.
    skipping: bool,
    line_number: u64,
    tee: Option<Box<dyn Write + Send>>,
    /// Why the copy stopped early, when it did for another reason than a closed reader.
    tee_error: Option<io::Error>,
}

impl<R: Read> LineReader<R> {
    /// A reader of `inner`.
    pub fn new(inner: R) -> Self {
        LineReader {
            inner,
            buf: vec![0; MAX_LINE + READ_CHUNK],
            start: 0,
            end: 0,
            eof: false,
            skipping: false,
            line_number: 0,
            tee: None,
            tee_error: None,
        }
    }

    /// Copies every byte read to `tee` as soon as it is read (for `--tee`).
    pub fn with_tee(mut self, tee: Box<dyn Write + Send>) -> Self {
        self.tee = Some(tee);
        self
    }

    /// The bytes available without consuming them (at least the first chunk, unless EOF).
    pub fn peek(&mut self) -> io::Result<&[u8]> {
        while self.end == self.start && !self.eof {
            self.fill()?;
        }
        Ok(&self.buf[self.start..self.end])
    }

    /// Why the copy to the tee stopped before the end, if it did for another reason than its
    /// reader going away (a full disk, an I/O error): the caller reports it.
    pub fn take_tee_error(&mut self) -> Option<io::Error> {
        self.tee_error.take()
    }

    /// Reads the rest of the input without looking at it, so that a tee still copies all of
    /// it: after a parse error, the build log must still pass through whole.
    pub fn drain(&mut self) -> io::Result<()> {
        self.start = self.end;
        while !self.eof {
            self.fill()?;
            self.start = self.end;
        }
        Ok(())
    }

    /// Reads the rest of the input, failing once it passes `limit` bytes. `size_hint` (a
    /// file's length) lets the buffer be allocated once rather than doubled.
    pub fn read_rest(&mut self, limit: usize, size_hint: Option<u64>) -> io::Result<Vec<u8>> {
        let hint = size_hint.map_or(0, |h| (h as usize).min(limit + 1));
        let mut out = Vec::with_capacity(hint);
        loop {
            out.extend_from_slice(&self.buf[self.start..self.end]);
            self.start = self.end;
            if out.len() > limit {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("input is larger than {limit} bytes"),
                ));
            }
            if self.eof {
                return Ok(out);
            }
            self.fill()?;
        }
    }

    /// The next line, or `None` at the end of the input.
    pub fn next_line(&mut self) -> io::Result<Option<Line<'_>>> {
        loop {
            let pending = &self.buf[self.start..self.end];
            if let Some(pos) = memchr::memchr(b'\n', pending) {
                let line_start = self.start;
                self.start += pos + 1;
                if self.skipping {
                    self.skipping = false;
                    continue;
                }
                self.line_number += 1;
                return Ok(Some(Line {
                    number: self.line_number,
                    bytes: strip_cr(&self.buf[line_start..line_start + pos]),
                    truncated: false,
                }));
            }
            if self.skipping {
                self.start = self.end;
            } else if pending.len() >= MAX_LINE {
                let line_start = self.start;
                self.start += MAX_LINE;
                self.skipping = true;
                self.line_number += 1;
                return Ok(Some(Line {
                    number: self.line_number,
                    bytes: &self.buf[line_start..line_start + MAX_LINE],
                    truncated: true,
                }));
            }
            if self.eof {
                if self.start == self.end || self.skipping {
                    self.start = self.end;
                    return Ok(None);
                }
                let line_start = self.start;
                self.start = self.end;
                self.line_number += 1;
                return Ok(Some(Line {
                    number: self.line_number,
                    bytes: strip_cr(&self.buf[line_start..self.end]),
                    truncated: false,
                }));
            }
            self.fill()?;
        }
    }

    /// Skips, without looking at them one by one, the whole lines in which `finder` finds
    /// nothing, then returns the next line (which contains a match, or is too long to search
    /// whole). The skipped lines are still counted. This is what lets sigcat read a 1 GiB log
    /// at close to the speed of `grep -c`: most of a build log is provisioner noise.
    pub fn next_line_matching(
        &mut self,
        finder: &aho_corasick::AhoCorasick,
    ) -> io::Result<Option<Line<'_>>> {
        loop {
            if self.skipping {
                return self.next_line();
            }
            let pending = &self.buf[self.start..self.end];
            // Only complete lines may be skipped: a match can still arrive in a partial one.
            let Some(last_newline) = memchr::memrchr(b'\n', pending) else {
                if self.eof || pending.len() >= MAX_LINE {
                    return self.next_line();
                }
                self.fill()?;
                continue;
            };
            let complete = &pending[..=last_newline];
            let skip_to = match finder.find(complete) {
                Some(m) => memchr::memrchr(b'\n', &complete[..m.start()]).map_or(0, |p| p + 1),
                None => complete.len(),
            };
            self.line_number += count_newlines(&complete[..skip_to]);
            self.start += skip_to;
            if skip_to < complete.len() {
                return self.next_line();
            }
            if self.eof {
                return self.next_line();
            }
            self.fill()?;
        }
    }

    /// Moves the unread bytes to the front and reads one more chunk.
    fn fill(&mut self) -> io::Result<()> {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let room = (self.buf.len() - self.end).min(READ_CHUNK);
        let n = loop {
            match self.inner.read(&mut self.buf[self.end..self.end + room]) {
                Ok(n) => break n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
        };
        if n == 0 {
            self.eof = true;
        } else {
            self.tee_bytes(self.end, n);
            self.end += n;
        }
        Ok(())
    }

    fn tee_bytes(&mut self, from: usize, len: usize) {
        if let Some(tee) = self.tee.as_mut() {
            let written = tee
                .write_all(&self.buf[from..from + len])
                .and_then(|()| tee.flush());
            if let Err(e) = written {
                // Whatever went wrong with the copy, parsing goes on; the copy stops. A reader
                // that went away (`| head`) is normal; anything else is reported.
                self.tee = None;
                if e.kind() != io::ErrorKind::BrokenPipe {
                    self.tee_error = Some(e);
                }
            }
        }
    }
}

fn count_newlines(bytes: &[u8]) -> u64 {
    // Byte-wide counters over blocks of 255 let the compiler vectorise this loop fully
    // (a plain `filter().count()` runs at a fraction of the speed).
    let mut total = 0u64;
    for block in bytes.chunks(255) {
        let mut n: u8 = 0;
        for &b in block {
            n += (b == b'\n') as u8;
        }
        total += u64::from(n);
    }
    total
}

fn strip_cr(line: &[u8]) -> &[u8] {
    line.strip_suffix(b"\r").unwrap_or(line)
}

/// Skips what comes before Packer's own text on a console line, in the order it is added:
/// a CI timestamp column, colour escapes, Packer's `-timestamp-ui` stamp, and colour again.
/// Cheap: looks only at the start of the line, so it can run on every line of a huge log.
pub fn skip_line_prefix(mut line: &[u8]) -> &[u8] {
    loop {
        let before = line.len();
        line = skip_escapes(line);
        if let Some(len) = timestamp_len(line) {
            match line.get(len) {
                // CI column (Azure DevOps, GitHub Actions): `2024-03-01T10:00:00.1234567Z text`
                Some(b' ') => line = &line[len + 1..],
                None => line = &line[len..],
                // Packer -timestamp-ui: `2024-07-15T10:21:33Z: text`
                Some(b':') if line.get(len + 1) == Some(&b' ') => line = &line[len + 2..],
                _ => {}
            }
        }
        if line.len() == before {
            return line;
        }
    }
}

/// Removes every ANSI escape sequence (CSI `ESC [ ... final` and two-byte `ESC x`).
pub fn strip_escapes(line: &[u8]) -> Cow<'_, [u8]> {
    let Some(first) = memchr::memchr(0x1b, line) else {
        return Cow::Borrowed(line);
    };
    let mut out = Vec::with_capacity(line.len());
    out.extend_from_slice(&line[..first]);
    let mut i = first;
    while i < line.len() {
        if line[i] == 0x1b {
            i += escape_len(&line[i..]);
        } else {
            out.push(line[i]);
            i += 1;
        }
    }
    Cow::Owned(out)
}

fn skip_escapes(mut line: &[u8]) -> &[u8] {
    while line.first() == Some(&0x1b) {
        line = &line[escape_len(line)..];
    }
    line
}

/// Length of the escape sequence at the start of `s` (which starts with ESC).
fn escape_len(s: &[u8]) -> usize {
    match s.get(1) {
        Some(b'[') => {
            // Parameters and intermediates, then one final byte in 0x40..=0x7e.
            let body = &s[2..];
            match body.iter().position(|b| (0x40..=0x7e).contains(b)) {
                Some(p) => 2 + p + 1,
                None => s.len(),
            }
        }
        Some(_) => 2,
        None => 1,
    }
}

/// Length of an RFC 3339 timestamp at the start of `s`
/// (`2024-07-15T10:21:33Z`, `...33.1234567Z`, `...33+02:00`), if there is one.
pub fn timestamp_len(s: &[u8]) -> Option<usize> {
    let digits =
        |r: std::ops::Range<usize>| s.get(r).is_some_and(|d| d.iter().all(u8::is_ascii_digit));
    let at = |i: usize, c: u8| s.get(i) == Some(&c);
    if !(digits(0..4) && at(4, b'-') && digits(5..7) && at(7, b'-') && digits(8..10)) {
        return None;
    }
    if !(matches!(s.get(10), Some(b'T' | b' '))
        && digits(11..13)
        && at(13, b':')
        && digits(14..16)
        && at(16, b':')
        && digits(17..19))
    {
        return None;
    }
    let mut i = 19;
    if at(i, b'.') {
        i += 1;
        let frac = s[i..].iter().take_while(|b| b.is_ascii_digit()).count();
        if frac == 0 {
            return None;
        }
        i += frac;
    }
    match s.get(i) {
        Some(b'Z' | b'z') => Some(i + 1),
        Some(b'+' | b'-') if digits(i + 1..i + 3) && at(i + 3, b':') && digits(i + 4..i + 6) => {
            Some(i + 6)
        }
        _ => None,
    }
}

/// The printable text of a console line: prefixes skipped, escapes removed, trailing
/// white space trimmed (CI logs and Windows runners add some).
pub fn clean_line(raw: &[u8]) -> Cow<'_, [u8]> {
    let text = skip_line_prefix(raw);
    match strip_escapes(text) {
        Cow::Borrowed(b) => Cow::Borrowed(trim_end(b)),
        Cow::Owned(mut v) => {
            let keep = trim_end(&v).len();
            v.truncate(keep);
            Cow::Owned(v)
        }
    }
}

fn trim_end(b: &[u8]) -> &[u8] {
    let keep = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(0, |p| p + 1);
    &b[..keep]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lines_of(input: &[u8]) -> Vec<(u64, Vec<u8>, bool)> {
        let mut r = LineReader::new(input);
        let mut out = Vec::new();
        while let Some(l) = r.next_line().unwrap() {
            out.push((l.number, l.bytes.to_vec(), l.truncated));
        }
        out
    }

    #[test]
    fn splits_lf_and_crlf_and_a_last_line_without_newline() {
        let got = lines_of(b"a\r\nb\n\nc");
        let want: Vec<(u64, Vec<u8>, bool)> = vec![
            (1, b"a".to_vec(), false),
            (2, b"b".to_vec(), false),
            (3, b"".to_vec(), false),
            (4, b"c".to_vec(), false),
        ];
        assert_eq!(got, want);
        assert!(lines_of(b"").is_empty());
    }

    #[test]
    fn over_long_lines_are_cut_and_the_next_line_survives() {
        let mut input = vec![b'x'; MAX_LINE * 3 + 17];
        input.extend_from_slice(b"\nafter\n");
        let got = lines_of(&input);
        assert_eq!(got.len(), 2);
        assert_eq!(got[0].1.len(), MAX_LINE);
        assert!(got[0].2);
        assert_eq!(got[1], (2, b"after".to_vec(), false));
    }

    #[test]
    fn skipping_unmatched_lines_keeps_line_numbers() {
        let finder = aho_corasick::AhoCorasick::new(["needle"]).unwrap();
        let mut input = Vec::new();
        for i in 0..100_000 {
            if i % 25_000 == 7 {
                input.extend_from_slice(format!("line {i} has a needle\n").as_bytes());
            } else {
                input.extend_from_slice(format!("line {i} is noise\n").as_bytes());
            }
        }
        input.extend_from_slice(b"last needle without newline");
        let mut r = LineReader::new(&input[..]);
        let mut got = Vec::new();
        while let Some(l) = r.next_line_matching(&finder).unwrap() {
            got.push((l.number, String::from_utf8_lossy(l.bytes).into_owned()));
        }
        let want: Vec<(u64, String)> = [7u64, 25_007, 50_007, 75_007]
            .iter()
            .map(|i| (i + 1, format!("line {i} has a needle")))
            .chain([(100_001, "last needle without newline".to_string())])
            .collect();
        assert_eq!(got, want);
    }

    #[test]
    fn tee_copies_every_byte() {
        #[derive(Clone, Default)]
        struct Shared(std::sync::Arc<std::sync::Mutex<Vec<u8>>>);
        impl Write for Shared {
            fn write(&mut self, b: &[u8]) -> io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> io::Result<()> {
                Ok(())
            }
        }
        let input: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        let sink = Shared::default();
        let mut r = LineReader::new(&input[..]).with_tee(Box::new(sink.clone()));
        while r.next_line().unwrap().is_some() {}
        assert_eq!(*sink.0.lock().unwrap(), input);
    }

    #[test]
    fn prefixes_and_colour_are_removed() {
        let cases: [(&[u8], &[u8]); 6] = [
            (b"\x1b[1;32m==> azure-arm.sig-ubuntu-2404: Deleting\x1b[0m", b"==> azure-arm.sig-ubuntu-2404: Deleting"),
            (b"2024-03-01T10:00:00.1234567Z Build 'x' finished.", b"Build 'x' finished."),
            (b"\x1b[1;32m2024-07-15T10:21:33Z: Build 'x' finished after 1 second.\x1b[0m", b"Build 'x' finished after 1 second."),
            (b"2024-03-01T10:00:00.1234567Z \x1b[1;32m2024-07-15T10:21:33+02:00: ==> x: hi\x1b[0m\r", b"==> x: hi"),
            (b"2024-03-01T10:00:00Z", b""),
            (b"OSType: Linux ", b"OSType: Linux"),
        ];
        for (raw, want) in cases {
            assert_eq!(&*clean_line(raw), want, "{}", String::from_utf8_lossy(raw));
        }
    }

    #[test]
    fn timestamps_need_their_whole_shape() {
        assert_eq!(timestamp_len(b"2024-07-15T10:21:33Z"), Some(20));
        assert_eq!(timestamp_len(b"2024-07-15T10:21:33.5-07:00 x"), Some(27));
        assert_eq!(timestamp_len(b"2024-07-15T10:21:33"), None);
        assert_eq!(timestamp_len(b"2024-07-15"), None);
        assert_eq!(timestamp_len(b"12345"), None);
    }
}
