//! Recorded WebSocket captures: read frames (and decoded events) from files.
//!
//! Two text formats, gzip-compressed or not (detected by content, not by file name):
//! - **hftbacktest captures** (`*.gz` in `shared/data/binance`): one message a line,
//!   `<local_receive_ts_ns> <frame>`.
//! - **cryptofeed raw captures** (`*.ws.1.0`): a first line `<ws_url> <-> <unix_ts_seconds>`,
//!   then `<unix_ts_seconds>: <frame>` for every received frame; lines with `<-` (frames the
//!   client sent, reconnect headers) are skipped.
//!
//! [`FrameReader`] yields `(local_ts, frame bytes)` from one reusable line buffer;
//! [`CaptureReader`] adds a [`Decoder`] and yields [`MarketEvent`]s. File reading and gzip
//! (flate2, pure-Rust backend) live here, never on the live hot path.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use flate2::bufread::MultiGzDecoder;
use rt_core::{MarketEvent, Nanos};

use crate::binance::{DecodeCounters, Decoder};
use crate::checksummed::ChecksumDecoder;
use crate::verify::Venue;
use crate::Error;

const READ_BUFFER: usize = 1 << 18;

/// The line format of a text capture.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CaptureFormat {
    /// `<local_ts_ns> <frame>` (hftbacktest's recorder).
    TimestampNs,
    /// `<unix_seconds.fraction>: <frame>` after a `<url> <-> <ts>` header (cryptofeed).
    Cryptofeed,
}

/// One received frame; `bytes` borrows the reader's line buffer.
#[derive(Clone, Copy, Debug)]
pub struct Frame<'a> {
    pub local_ns: Nanos,
    pub bytes: &'a [u8],
    /// 1-based line number in the (decompressed) file.
    pub line: u64,
}

/// Frames from one capture file, through one reusable buffer.
pub struct FrameReader {
    input: Box<dyn BufRead + Send>,
    /// Bytes of the file read so far (compressed bytes for a gzip file): progress reporting.
    consumed: Arc<AtomicU64>,
    path: PathBuf,
    format: CaptureFormat,
    line: Vec<u8>,
    line_no: u64,
    /// The first line was read to detect the format and is still to be yielded.
    held: bool,
    done: bool,
    skipped: u64,
}

impl std::fmt::Debug for FrameReader {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FrameReader")
            .field("path", &self.path)
            .field("format", &self.format)
            .field("line_no", &self.line_no)
            .finish_non_exhaustive()
    }
}

/// What a line holds: a frame (timestamp and byte range), nothing to yield, or garbage.
enum Line {
    Frame(Nanos, usize, usize),
    Skip,
    Bad(&'static str),
}

impl FrameReader {
    /// Opens a capture, gzip-compressed or plain, and detects its line format.
    pub fn open(path: &Path) -> Result<FrameReader, Error> {
        let io = |source| Error::Io {
            path: path.to_owned(),
            source,
        };
        let file = File::open(path).map_err(io)?;
        let consumed = Arc::new(AtomicU64::new(0));
        let counted = Counting {
            inner: file,
            consumed: Arc::clone(&consumed),
        };
        let mut raw = BufReader::with_capacity(READ_BUFFER, counted);
        let gzip = raw.fill_buf().map_err(io)?.starts_with(&[0x1f, 0x8b]);
        let input: Box<dyn BufRead + Send> = if gzip {
            Box::new(BufReader::with_capacity(
                READ_BUFFER,
                MultiGzDecoder::new(raw),
            ))
        } else {
            Box::new(raw)
        };
        let mut reader = FrameReader::from_reader(input, path)?;
        reader.consumed = consumed;
        Ok(reader)
    }

    /// Bytes of the underlying file read so far (for progress bars).
    pub fn bytes_read(&self) -> u64 {
        self.consumed.load(Ordering::Relaxed)
    }

    /// Reads a capture from any buffered reader (already decompressed); `path` names it in
    /// errors.
    pub fn from_reader(input: Box<dyn BufRead + Send>, path: &Path) -> Result<FrameReader, Error> {
        let mut reader = FrameReader {
            input,
            consumed: Arc::new(AtomicU64::new(0)),
            path: path.to_owned(),
            format: CaptureFormat::TimestampNs,
            line: Vec::with_capacity(1 << 16),
            line_no: 0,
            held: false,
            done: false,
            skipped: 0,
        };
        // The first non-blank line tells the format.
        loop {
            if !reader.read_line()? {
                break;
            }
            if trim_line(&reader.line).is_empty() {
                continue;
            }
            if contains(&reader.line, b" <-> ") {
                reader.format = CaptureFormat::Cryptofeed;
            } else {
                reader.held = true;
            }
            break;
        }
        Ok(reader)
    }

    pub fn format(&self) -> CaptureFormat {
        self.format
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Lines that held no received frame (blank lines, headers, frames the client sent).
    pub fn skipped_lines(&self) -> u64 {
        self.skipped
    }

    /// Lines read so far.
    pub fn line_number(&self) -> u64 {
        self.line_no
    }

    fn read_line(&mut self) -> Result<bool, Error> {
        self.line.clear();
        match self.input.read_until(b'\n', &mut self.line) {
            Ok(0) => {
                self.done = true;
                Ok(false)
            }
            Ok(_) => {
                self.line_no += 1;
                Ok(true)
            }
            Err(source) => {
                self.done = true;
                Err(Error::Io {
                    path: self.path.clone(),
                    source,
                })
            }
        }
    }

    /// The next received frame; `None` at the end (or after an I/O error was returned).
    pub fn next_frame(&mut self) -> Option<Result<Frame<'_>, Error>> {
        loop {
            if self.held {
                self.held = false;
            } else {
                if self.done {
                    return None;
                }
                match self.read_line() {
                    Ok(true) => {}
                    Ok(false) => return None,
                    Err(e) => return Some(Err(e)),
                }
            }
            match split_line(self.format, &self.line) {
                Line::Frame(local_ns, start, end) => {
                    return Some(Ok(Frame {
                        local_ns,
                        bytes: self.line.get(start..end).unwrap_or_default(),
                        line: self.line_no,
                    }))
                }
                Line::Skip => self.skipped += 1,
                Line::Bad(reason) => {
                    return Some(Err(Error::Capture {
                        path: self.path.clone(),
                        line: self.line_no,
                        reason,
                    }))
                }
            }
        }
    }
}

fn trim_line(line: &[u8]) -> &[u8] {
    let mut end = line.len();
    while end > 0 && matches!(line[end - 1], b'\n' | b'\r' | b' ' | b'\t') {
        end -= 1;
    }
    &line[..end]
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    haystack.windows(needle.len()).any(|w| w == needle)
}

fn split_line(format: CaptureFormat, line: &[u8]) -> Line {
    let line = trim_line(line);
    if line.is_empty() {
        return Line::Skip;
    }
    match format {
        CaptureFormat::TimestampNs => {
            let Some(space) = line.iter().position(|&c| c == b' ') else {
                return Line::Bad("no space between the timestamp and the frame");
            };
            match parse_int(&line[..space]) {
                Some(ts) => Line::Frame(ts, space + 1, line.len()),
                None => Line::Bad("the timestamp is not an integer of nanoseconds"),
            }
        }
        CaptureFormat::Cryptofeed => {
            let Some(colon) = line.iter().position(|&c| c == b':') else {
                return Line::Bad("no ':' after the timestamp");
            };
            let head = &line[..colon];
            // Headers (`wss://.. <-> ts`) and sent frames (`.. <- ..`) are not received data.
            if contains(head, b"<-") || !line.get(colon + 1).is_some_and(|&c| c == b' ') {
                return Line::Skip;
            }
            match parse_seconds(head) {
                Some(ts) => Line::Frame(ts, colon + 2, line.len()),
                None => Line::Bad("the timestamp is not a number of seconds"),
            }
        }
    }
}

fn parse_int(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() {
        return None;
    }
    bytes.iter().try_fold(0i64, |acc, &c| {
        let d = c.wrapping_sub(b'0');
        (d <= 9).then_some(())?;
        acc.checked_mul(10)?.checked_add(i64::from(d))
    })
}

/// `1633998512.0633569` seconds to nanoseconds, exactly (digits beyond 9 are dropped).
fn parse_seconds(bytes: &[u8]) -> Option<Nanos> {
    let (int, frac) = match bytes.iter().position(|&c| c == b'.') {
        Some(dot) => (&bytes[..dot], &bytes[dot + 1..]),
        None => (bytes, &b""[..]),
    };
    let mut ns = parse_int(int)?.checked_mul(1_000_000_000)?;
    let mut scale = 100_000_000;
    for &c in frac {
        let d = c.wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        ns = ns.checked_add(i64::from(d) * scale)?;
        scale /= 10;
    }
    Some(ns)
}

/// What a [`CaptureReader`] has seen.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct CaptureStats {
    pub decode: DecodeCounters,
    /// Lines that were not received frames (headers, blanks, sent frames).
    pub skipped_lines: u64,
    /// Lines that could not be split into a timestamp and a frame.
    pub bad_lines: u64,
}

/// Decoded market events from one capture, or several read as one stream (one decoder, so
/// symbol ids stay the same across files).
#[derive(Debug)]
pub struct CaptureReader {
    frames: FrameReader,
    next_paths: VecDeque<PathBuf>,
    /// Sizes of all files, and the bytes of the files already finished: progress reporting.
    total_bytes: u64,
    finished_bytes: u64,
    decoder: FrameDecoder,
    skipped_before: u64,
    bad_lines: u64,
}

/// The codec of the capture's venue.
#[derive(Debug)]
enum FrameDecoder {
    Binance(Decoder),
    /// OKX or Kraken: books checked against the venue's checksums.
    Checksummed(Box<ChecksumDecoder>),
}

impl CaptureReader {
    pub fn open(path: &Path) -> Result<CaptureReader, Error> {
        CaptureReader::open_many(&[path])
    }

    /// Reads several captures one after another as one stream (e.g. two consecutive days).
    pub fn open_many<P: AsRef<Path>>(paths: &[P]) -> Result<CaptureReader, Error> {
        let mut next_paths: VecDeque<PathBuf> =
            paths.iter().map(|p| p.as_ref().to_owned()).collect();
        let first = next_paths.pop_front().ok_or_else(|| Error::Capture {
            path: PathBuf::new(),
            line: 0,
            reason: "no capture file given",
        })?;
        let total_bytes = std::iter::once(&first)
            .chain(next_paths.iter())
            .filter_map(|p| std::fs::metadata(p).ok())
            .map(|m| m.len())
            .sum();
        let decoder = match crate::verify::detect_venue(&first)? {
            Venue::Binance => FrameDecoder::Binance(Decoder::new()),
            venue => FrameDecoder::Checksummed(Box::new(ChecksumDecoder::new(venue))),
        };
        Ok(CaptureReader {
            frames: FrameReader::open(&first)?,
            next_paths,
            total_bytes,
            finished_bytes: 0,
            decoder,
            skipped_before: 0,
            bad_lines: 0,
        })
    }

    /// Uses a prepared Binance decoder (e.g. one with the manifest's symbols); a capture of
    /// another venue keeps its own.
    pub fn with_decoder(mut self, decoder: Decoder) -> CaptureReader {
        if let FrameDecoder::Binance(d) = &mut self.decoder {
            *d = decoder;
        }
        self
    }

    /// The symbol table so far (it grows as new symbols are met).
    pub fn symbols(&self) -> &[String] {
        match &self.decoder {
            FrameDecoder::Binance(d) => d.symbols(),
            FrameDecoder::Checksummed(d) => d.symbols(),
        }
    }

    /// The venue whose protocol the capture holds.
    pub fn venue(&self) -> Venue {
        match &self.decoder {
            FrameDecoder::Binance(_) => Venue::Binance,
            FrameDecoder::Checksummed(d) => d.venue(),
        }
    }

    pub fn stats(&self) -> CaptureStats {
        let decode = match &self.decoder {
            FrameDecoder::Binance(d) => d.counters(),
            FrameDecoder::Checksummed(d) => d.counters(),
        };
        CaptureStats {
            decode,
            skipped_lines: self.skipped_before + self.frames.skipped_lines(),
            bad_lines: self.bad_lines,
        }
    }

    /// The file being read.
    pub fn path(&self) -> &Path {
        self.frames.path()
    }

    /// The line format of the file being read.
    pub fn format(&self) -> CaptureFormat {
        self.frames.format()
    }

    /// (bytes read, total bytes) over all the files of this reader.
    pub fn progress(&self) -> (u64, u64) {
        (
            (self.finished_bytes + self.frames.bytes_read()).min(self.total_bytes),
            self.total_bytes,
        )
    }

    /// The next market event. A malformed frame or line is returned as an error (and counted);
    /// reading may go on after it. Messages that are not market events are skipped.
    pub fn next_event(&mut self) -> Option<Result<MarketEvent<'_>, Error>> {
        // A frame may hold several events (an OKX or Kraken message of trades).
        let pending = match &mut self.decoder {
            FrameDecoder::Checksummed(d) => d.next_pending(),
            FrameDecoder::Binance(_) => false,
        };
        if !pending {
            loop {
                let frame = match self.frames.next_frame() {
                    Some(Ok(frame)) => frame,
                    Some(Err(e)) => {
                        if matches!(e, Error::Capture { .. }) {
                            self.bad_lines += 1;
                        }
                        return Some(Err(e));
                    }
                    None => {
                        let next = self.next_paths.pop_front()?;
                        self.skipped_before += self.frames.skipped_lines();
                        self.finished_bytes += self.frames.bytes_read();
                        match FrameReader::open(&next) {
                            Ok(frames) => self.frames = frames,
                            Err(e) => return Some(Err(e)),
                        }
                        continue;
                    }
                };
                let line = frame.line;
                let decoded = match &mut self.decoder {
                    FrameDecoder::Binance(d) => d.decode_in_place(frame.bytes, frame.local_ns),
                    FrameDecoder::Checksummed(d) => d.decode_in_place(frame.bytes, frame.local_ns),
                };
                match decoded {
                    Ok(true) => break,
                    Ok(false) => continue,
                    Err(source) => {
                        return Some(Err(Error::Decode {
                            path: self.frames.path().to_owned(),
                            line,
                            source,
                        }))
                    }
                }
            }
        }
        match &self.decoder {
            FrameDecoder::Binance(d) => d.event().map(Ok),
            FrameDecoder::Checksummed(d) => d.event().map(Ok),
        }
    }
}

/// A reader that counts the bytes it hands out.
struct Counting<R> {
    inner: R,
    consumed: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.consumed.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn splits_both_line_formats() {
        let Line::Frame(ts, s, e) = split_line(CaptureFormat::TimestampNs, b"123 {\"a\":1}\r\n")
        else {
            panic!("not a frame");
        };
        assert_eq!((ts, s, e), (123, 4, 11));
        let Line::Frame(ts, s, _) = split_line(
            CaptureFormat::Cryptofeed,
            b"1633998512.0633569: {\"a\":1}\n",
        ) else {
            panic!("not a frame");
        };
        assert_eq!((ts, s), (1_633_998_512_063_356_900, 20));
        assert!(matches!(
            split_line(CaptureFormat::Cryptofeed, b"wss://x <-> 1633998511.1\n"),
            Line::Skip
        ));
        assert!(matches!(
            split_line(CaptureFormat::TimestampNs, b"\n"),
            Line::Skip
        ));
        assert!(matches!(
            split_line(CaptureFormat::TimestampNs, b"12x {}\n"),
            Line::Bad(_)
        ));
        assert!(matches!(
            split_line(CaptureFormat::TimestampNs, b"99999999999999999999 {}\n"),
            Line::Bad(_)
        ));
        assert!(matches!(
            split_line(CaptureFormat::Cryptofeed, b"1.x: {}\n"),
            Line::Bad(_)
        ));
    }

    #[test]
    fn parses_seconds_exactly() {
        assert_eq!(parse_seconds(b"1"), Some(1_000_000_000));
        assert_eq!(parse_seconds(b"1.5"), Some(1_500_000_000));
        assert_eq!(parse_seconds(b"0.0000000019"), Some(1));
        assert_eq!(parse_seconds(b""), None);
    }
}
