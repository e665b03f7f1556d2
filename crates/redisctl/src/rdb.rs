//! An RDB snapshot taken over the replication protocol, as `redis-cli --rdb` takes it, and the
//! checks that tell a whole RDB from a damaged one.
//!
//! The exchange ([`fetch`]): `AUTH`, `REPLCONF capa eof` (the source may stream the RDB
//! straight from its fork, without writing `dump.rdb` on its own disk), `REPLCONF rdb-only 1`
//! (Redis 7: send the RDB and close, no replication stream after it), then `SYNC`. The source
//! answers with newlines (keepalives while it prepares), then either `$<len>\r\n` and exactly
//! that many bytes, or `$EOF:<40-byte mark>\r\n`, the RDB, and the mark again ([`Header`]).
//!
//! An RDB is `REDIS`, a 4-digit version, the data, the end-of-file opcode `0xFF`, and (from
//! version 5) the CRC64 (Jones, as Redis's `crc64.c`) of everything before it, little-endian;
//! a stored checksum of 0 means the writer ran with `rdbchecksum no`. [`Verifier`] checks that
//! while the bytes stream by, [`verify`] checks a file already read.

use crate::conn::Access;
use crc::{Crc, Table, CRC_64_REDIS};
use std::time::Duration;
use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// Redis's CRC64 (the `crc64.c` variant: Jones polynomial, reflected, init 0), slice-by-16.
static CRC64: Crc<u64, Table<16>> = Crc::<u64, Table<16>>::new(&CRC_64_REDIS);

/// Length of the diskless end-of-transfer mark (`RDB_EOF_MARK_SIZE`).
pub const EOF_MARK_LEN: usize = 40;
/// `REDIS` and four version digits.
const HEADER_LEN: usize = 9;
/// RDB_OPCODE_EOF.
const OPCODE_EOF: u8 = 0xFF;
/// The end-of-file opcode and the 8-byte checksum.
const TRAILER_LEN: usize = 9;
/// The first RDB version with a checksum trailer.
const FIRST_CHECKSUMMED: u16 = 5;
/// The longest header or reply line accepted before the payload.
const MAX_LINE: u64 = 4096;

/// Why a snapshot could not be taken or is not a whole RDB.
#[derive(Debug, thiserror::Error)]
pub enum RdbError {
    /// Could not connect in time.
    #[error("cannot reach redis at {addr}: {reason}")]
    Unreachable {
        /// host:port.
        addr: String,
        /// Cause.
        reason: String,
    },
    /// The source answered a command with an error (`-NOAUTH …`, `-NOMASTERLINK …`).
    #[error("the source refused {command}: {reply}")]
    Refused {
        /// The command (never its arguments: AUTH carries the password).
        command: &'static str,
        /// The error it sent.
        reply: String,
    },
    /// The line before the payload is neither `$<len>` nor `$EOF:<mark>`.
    #[error("the source sent `{0}` where the RDB's length (`$<bytes>` or `$EOF:<40-byte mark>`) belongs")]
    BadHeader(String),
    /// A `$<len>` transfer ended early.
    #[error("the stream ended after {got} of {want} bytes")]
    Truncated {
        /// Bytes received.
        got: u64,
        /// Bytes announced.
        want: u64,
    },
    /// A diskless transfer ended before its end-of-transfer mark.
    #[error("the stream ended after {got} bytes, before the end-of-transfer mark")]
    Unterminated {
        /// Bytes received.
        got: u64,
    },
    /// Nothing arrived for too long.
    #[error("the source sent nothing for {secs} s after {got} bytes")]
    Stalled {
        /// The idle limit.
        secs: u64,
        /// Bytes received.
        got: u64,
    },
    /// Reading from the source failed.
    #[error("reading from the source after {got} bytes: {source}")]
    Read {
        /// Bytes received.
        got: u64,
        /// Cause.
        #[source]
        source: std::io::Error,
    },
    /// Writing the RDB out failed.
    #[error("writing the RDB: {0}")]
    Write(#[source] std::io::Error),
    /// Not `REDIS` and four digits.
    #[error("not an RDB: it does not start with `REDIS` and a 4-digit version (found `{found}`)")]
    BadMagic {
        /// The first bytes, escaped.
        found: String,
    },
    /// Too short to be an RDB.
    #[error("the RDB is {bytes} bytes, too short for a header and a checksum: it is truncated")]
    TooShort {
        /// Its length.
        bytes: u64,
    },
    /// The end-of-file opcode is not where the trailer begins.
    #[error(
        "the RDB does not end with its end-of-file opcode and checksum: it is truncated or damaged"
    )]
    NoEnd,
    /// The data does not match the stored checksum.
    #[error(
        "the RDB's CRC64 checksum does not match: stored {stored:016x}, computed {computed:016x}"
    )]
    ChecksumMismatch {
        /// The trailer's value.
        stored: u64,
        /// Over the bytes received.
        computed: u64,
    },
}

/// How the source announced the payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Header {
    /// `$<len>`: exactly this many bytes follow (the source saved to disk first).
    Len(u64),
    /// `$EOF:<mark>`: the RDB follows, then this mark (diskless: streamed from the fork).
    Eof([u8; EOF_MARK_LEN]),
}

/// Parses the line that announces the payload, without its `\r\n`; an error reply
/// (`-NOMASTERLINK …`) is [`RdbError::Refused`].
pub fn parse_header(line: &[u8]) -> Result<Header, RdbError> {
    if let Some(err) = line.strip_prefix(b"-") {
        return Err(RdbError::Refused {
            command: "SYNC",
            reply: String::from_utf8_lossy(err).into_owned(),
        });
    }
    let bad = || RdbError::BadHeader(escape(&line[..line.len().min(80)]));
    let rest = line.strip_prefix(b"$").ok_or_else(bad)?;
    if let Some(mark) = rest.strip_prefix(b"EOF:") {
        return mark.try_into().map(Header::Eof).map_err(|_| bad());
    }
    if rest.is_empty() || rest.len() > 20 || !rest.iter().all(u8::is_ascii_digit) {
        return Err(bad());
    }
    std::str::from_utf8(rest)
        .ok()
        .and_then(|s| s.parse().ok())
        .map(Header::Len)
        .ok_or_else(bad)
}

/// What the checksum trailer said.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Checksum {
    /// It matched the data.
    Matched(u64),
    /// Stored as 0: the source runs with `rdbchecksum no`, so only the framing was checked.
    Disabled,
    /// An RDB older than version 5 has no checksum.
    Absent,
}

/// A whole RDB.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Verified {
    /// Its format version (`REDIS0010` is 10).
    pub version: u16,
    /// Its length.
    pub bytes: u64,
    /// The trailer.
    pub checksum: Checksum,
}

/// Checks an RDB as it streams by: the magic from the first bytes, the checksum over all but
/// the last eight. Holds back only the trailer, so memory stays constant.
pub struct Verifier {
    digest: crc::Digest<'static, u64, Table<16>>,
    head: [u8; HEADER_LEN],
    head_len: usize,
    /// The last (up to) [`TRAILER_LEN`] bytes seen, not yet in the digest.
    tail: Vec<u8>,
    total: u64,
}

impl Default for Verifier {
    fn default() -> Self {
        Self::new()
    }
}

impl Verifier {
    /// Nothing seen yet.
    pub fn new() -> Self {
        Verifier {
            digest: CRC64.digest(),
            head: [0; HEADER_LEN],
            head_len: 0,
            tail: Vec::with_capacity(2 * TRAILER_LEN),
            total: 0,
        }
    }

    /// The next bytes of the RDB.
    pub fn update(&mut self, data: &[u8]) {
        self.total += data.len() as u64;
        if self.head_len < HEADER_LEN {
            let n = (HEADER_LEN - self.head_len).min(data.len());
            self.head[self.head_len..self.head_len + n].copy_from_slice(&data[..n]);
            self.head_len += n;
        }
        if data.len() >= TRAILER_LEN {
            self.digest.update(&self.tail);
            let (body, tail) = data.split_at(data.len() - TRAILER_LEN);
            self.digest.update(body);
            self.tail.clear();
            self.tail.extend_from_slice(tail);
        } else {
            self.tail.extend_from_slice(data);
            let n = self.tail.len().saturating_sub(TRAILER_LEN);
            self.digest.update(&self.tail[..n]);
            self.tail.drain(..n);
        }
    }

    /// Bytes seen so far.
    pub fn bytes(&self) -> u64 {
        self.total
    }

    /// Whether what was seen is a whole RDB.
    pub fn finish(mut self) -> Result<Verified, RdbError> {
        if self.head_len < HEADER_LEN {
            return Err(RdbError::TooShort { bytes: self.total });
        }
        let version = (&self.head[..5] == b"REDIS")
            .then(|| std::str::from_utf8(&self.head[5..]).ok())
            .flatten()
            .filter(|v| v.bytes().all(|b| b.is_ascii_digit()))
            .and_then(|v| v.parse::<u16>().ok())
            .ok_or_else(|| RdbError::BadMagic {
                found: escape(&self.head),
            })?;
        let done = |checksum| Verified {
            version,
            bytes: self.total,
            checksum,
        };
        if version < FIRST_CHECKSUMMED {
            return match self.tail.last() {
                Some(&OPCODE_EOF) if self.total > HEADER_LEN as u64 => Ok(done(Checksum::Absent)),
                _ => Err(RdbError::NoEnd),
            };
        }
        if self.total < (HEADER_LEN + TRAILER_LEN) as u64 {
            return Err(RdbError::TooShort { bytes: self.total });
        }
        // The length check above leaves exactly TRAILER_LEN bytes here: the EOF opcode, then
        // the little-endian CRC64.
        let Ok([OPCODE_EOF, crc @ ..]) = <[u8; TRAILER_LEN]>::try_from(self.tail.as_slice()) else {
            return Err(RdbError::NoEnd);
        };
        self.digest.update(&[OPCODE_EOF]);
        let stored = u64::from_le_bytes(crc);
        let computed = self.digest.finalize();
        match stored {
            0 => Ok(done(Checksum::Disabled)),
            s if s == computed => Ok(done(Checksum::Matched(s))),
            _ => Err(RdbError::ChecksumMismatch { stored, computed }),
        }
    }
}

/// Whether `bytes` are a whole RDB: the `REDIS` magic and version, the end-of-file opcode, and
/// the CRC64 trailer.
pub fn verify(bytes: &[u8]) -> Result<Verified, RdbError> {
    let mut v = Verifier::new();
    v.update(bytes);
    v.finish()
}

/// A snapshot written out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Payload {
    /// The RDB, checked.
    pub verified: Verified,
    /// Streamed from the source's fork (`$EOF:` form) rather than from a file it saved.
    pub diskless: bool,
}

/// Reads one announced payload after `SYNC` (keepalive newlines, the header, the RDB) from
/// `reader` into `out`, checking it on the way; the diskless mark is not written. `idle`
/// bounds every wait for data. Nothing after the payload is read.
pub async fn read_payload<R, W>(
    reader: &mut R,
    out: &mut W,
    idle: Duration,
) -> Result<Payload, RdbError>
where
    R: AsyncBufRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // Keepalives: the source sends `\n` while it prepares the snapshot.
    loop {
        let buf = fill(reader, idle, 0).await?;
        match buf.first() {
            None => return Err(RdbError::Unterminated { got: 0 }),
            Some(b'\n') => {
                let n = buf.iter().take_while(|b| **b == b'\n').count();
                reader.consume(n);
            }
            Some(_) => break,
        }
    }
    let line = read_line(reader, idle).await?;
    let header = parse_header(&line)?;
    let mut v = Verifier::new();
    let diskless = matches!(header, Header::Eof(_));
    match header {
        Header::Len(want) => {
            let mut got = 0u64;
            while got < want {
                let buf = fill(reader, idle, got).await?;
                if buf.is_empty() {
                    return Err(RdbError::Truncated { got, want });
                }
                let n = (buf.len() as u64).min(want - got) as usize;
                v.update(&buf[..n]);
                out.write_all(&buf[..n]).await.map_err(RdbError::Write)?;
                reader.consume(n);
                got += n as u64;
            }
        }
        Header::Eof(mark) => {
            // The last EOF_MARK_LEN bytes are held back until more data shows they are not
            // the mark.
            let mut held: Vec<u8> = Vec::with_capacity(2 * EOF_MARK_LEN);
            loop {
                let buf = fill(reader, idle, v.bytes() + held.len() as u64).await?;
                if buf.is_empty() {
                    return Err(RdbError::Unterminated {
                        got: v.bytes() + held.len() as u64,
                    });
                }
                let n = buf.len();
                let release = (held.len() + n).saturating_sub(EOF_MARK_LEN);
                let from_held = release.min(held.len());
                let from_buf = release - from_held;
                if from_held > 0 {
                    v.update(&held[..from_held]);
                    out.write_all(&held[..from_held])
                        .await
                        .map_err(RdbError::Write)?;
                    held.drain(..from_held);
                }
                if from_buf > 0 {
                    v.update(&buf[..from_buf]);
                    out.write_all(&buf[..from_buf])
                        .await
                        .map_err(RdbError::Write)?;
                }
                held.extend_from_slice(&buf[from_buf..]);
                reader.consume(n);
                if held[..] == mark[..] {
                    break;
                }
            }
        }
    }
    out.flush().await.map_err(RdbError::Write)?;
    Ok(Payload {
        verified: v.finish()?,
        diskless,
    })
}

async fn fill<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    idle: Duration,
    got: u64,
) -> Result<&[u8], RdbError> {
    match tokio::time::timeout(idle, reader.fill_buf()).await {
        Ok(Ok(buf)) => Ok(buf),
        Ok(Err(source)) => Err(RdbError::Read { got, source }),
        Err(_) => Err(RdbError::Stalled {
            secs: idle.as_secs(),
            got,
        }),
    }
}

/// One line without its `\r\n`; at most [`MAX_LINE`] bytes.
async fn read_line<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    idle: Duration,
) -> Result<Vec<u8>, RdbError> {
    let mut line = Vec::new();
    let mut limited = (&mut *reader).take(MAX_LINE);
    match tokio::time::timeout(idle, limited.read_until(b'\n', &mut line)).await {
        Ok(Ok(_)) => {}
        Ok(Err(source)) => return Err(RdbError::Read { got: 0, source }),
        Err(_) => {
            return Err(RdbError::Stalled {
                secs: idle.as_secs(),
                got: 0,
            })
        }
    }
    if line.last() != Some(&b'\n') {
        return Err(if line.is_empty() {
            RdbError::Unterminated { got: 0 }
        } else {
            RdbError::BadHeader(escape(&line[..line.len().min(80)]))
        });
    }
    line.pop();
    if line.last() == Some(&b'\r') {
        line.pop();
    }
    Ok(line)
}

/// A command as a RESP array.
fn command(args: &[&[u8]]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len()).into_bytes();
    for a in args {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Takes an RDB snapshot of the instance at `host:port` into `out` over the replication
/// protocol, as `redis-cli --rdb` does (see the module's docs), and checks it. `out` gets the
/// RDB only; whoever owns it discards it when this fails. `connect` bounds connecting and each
/// reply before `SYNC`; `idle` bounds every wait for data after it.
pub async fn fetch<W: AsyncWrite + Unpin>(
    host: &str,
    port: u16,
    access: Access<'_>,
    out: &mut W,
    connect: Duration,
    idle: Duration,
) -> Result<Payload, RdbError> {
    let addr = format!("{host}:{port}");
    let unreachable = |reason: String| RdbError::Unreachable {
        addr: addr.clone(),
        reason,
    };
    match access.tls {
        Some(trust) => {
            let stream = crate::conn::tls_stream(host, port, trust, connect)
                .await
                .map_err(unreachable)?;
            let (read, write) = tokio::io::split(stream);
            exchange(&addr, read, write, access.password, out, connect, idle).await
        }
        None => {
            let stream =
                tokio::time::timeout(connect, tokio::net::TcpStream::connect((host, port)))
                    .await
                    .map_err(|_| {
                        unreachable(format!("no answer within {} ms", connect.as_millis()))
                    })?
                    .map_err(|e| unreachable(e.to_string()))?;
            let _ = stream.set_nodelay(true);
            let (read, write) = stream.into_split();
            exchange(&addr, read, write, access.password, out, connect, idle).await
        }
    }
}

/// [`fetch`]'s exchange on an open stream, plain or TLS.
async fn exchange<R, S, W>(
    addr: &str,
    read: R,
    mut write: S,
    password: Option<&str>,
    out: &mut W,
    connect: Duration,
    idle: Duration,
) -> Result<Payload, RdbError>
where
    R: tokio::io::AsyncRead + Unpin,
    S: AsyncWrite + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut reader = tokio::io::BufReader::with_capacity(256 * 1024, read);
    if let Some(pw) = password {
        send(&mut write, "AUTH", command(&[b"AUTH", pw.as_bytes()])).await?;
        if let Some(err) = reply(&mut reader, connect, "AUTH").await? {
            return Err(RdbError::Refused {
                command: "AUTH",
                reply: err,
            });
        }
    }
    // Both are optional for the source, as for redis-cli: without `capa eof` it saves to its
    // disk first; without `rdb-only` (Redis < 7) it would go on streaming commands after the
    // RDB, which this reads no further.
    for (what, arg, value) in [
        ("REPLCONF capa", &b"capa"[..], &b"eof"[..]),
        ("REPLCONF rdb-only", b"rdb-only", b"1"),
    ] {
        send(&mut write, what, command(&[b"REPLCONF", arg, value])).await?;
        if let Some(err) = reply(&mut reader, connect, what).await? {
            tracing::warn!(source = %addr, "{what} refused ({err}); going on as redis-cli does");
        }
    }
    send(&mut write, "SYNC", b"SYNC\r\n".to_vec()).await?;
    // The write half stays open until the payload is read: closing it would end a TLS session.
    let r = read_payload(&mut reader, out, idle).await;
    drop(write);
    r
}

async fn send<W: AsyncWrite + Unpin>(
    w: &mut W,
    what: &'static str,
    cmd: Vec<u8>,
) -> Result<(), RdbError> {
    w.write_all(&cmd).await.map_err(|e| RdbError::Refused {
        command: what,
        reply: format!("the connection failed: {e}"),
    })
}

/// A simple reply: `None` for `+…`, `Some(error)` for `-…`.
async fn reply<R: AsyncBufRead + Unpin>(
    reader: &mut R,
    timeout: Duration,
    command: &'static str,
) -> Result<Option<String>, RdbError> {
    let line = read_line(reader, timeout).await.map_err(|e| match e {
        RdbError::Unterminated { .. } => RdbError::Refused {
            command,
            reply: "the source closed the connection".into(),
        },
        e => e,
    })?;
    match line.first() {
        Some(b'+') => Ok(None),
        Some(b'-') => Ok(Some(String::from_utf8_lossy(&line[1..]).into_owned())),
        _ => Err(RdbError::Refused {
            command,
            reply: format!("unexpected reply `{}`", escape(&line)),
        }),
    }
}

/// Bytes as printable ASCII, the rest escaped.
fn escape(b: &[u8]) -> String {
    b.iter()
        .flat_map(|c| std::ascii::escape_default(*c))
        .map(char::from)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An RDB as Redis writes it, checksummed by an independent CRC instance (table-less).
    fn rdb(body: &[u8]) -> Vec<u8> {
        let mut out = b"REDIS0010".to_vec();
        out.extend_from_slice(body);
        out.push(OPCODE_EOF);
        let crc = Crc::<u64, crc::NoTable>::new(&CRC_64_REDIS).checksum(&out);
        out.extend_from_slice(&crc.to_le_bytes());
        out
    }

    /// SELECTDB 0, RESIZEDB 1 0, and `k` = `v` as a string.
    const BODY: &[u8] = b"\xfe\x00\xfb\x01\x00\x00\x01k\x01v";

    #[test]
    fn the_crc_is_redis_crc64_jones() {
        // The test vector of Redis's src/crc64.c.
        assert_eq!(CRC64.checksum(b"123456789"), 0xe9c6d914c4b8d9ca);
    }

    #[test]
    fn headers() {
        assert_eq!(parse_header(b"$12345").unwrap(), Header::Len(12345));
        assert_eq!(parse_header(b"$0").unwrap(), Header::Len(0));
        let mark = [b'a'; EOF_MARK_LEN];
        let mut line = b"$EOF:".to_vec();
        line.extend_from_slice(&mark);
        assert_eq!(parse_header(&line).unwrap(), Header::Eof(mark));
        for bad in [
            &b"$EOF:short"[..],
            b"$",
            b"$12a",
            b"$-1",
            b"+OK",
            b"REDIS0010",
            b"$99999999999999999999999",
        ] {
            assert!(
                matches!(parse_header(bad), Err(RdbError::BadHeader(_))),
                "{}",
                escape(bad)
            );
        }
        match parse_header(b"-NOMASTERLINK Can't SYNC while not connected with my master") {
            Err(RdbError::Refused { command, reply }) => {
                assert_eq!(command, "SYNC");
                assert!(reply.starts_with("NOMASTERLINK"), "{reply}");
            }
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn verify_accepts_a_whole_rdb_in_any_chunking() {
        let r = rdb(BODY);
        let whole = verify(&r).unwrap();
        assert_eq!(whole.version, 10);
        assert_eq!(whole.bytes, r.len() as u64);
        assert!(matches!(whole.checksum, Checksum::Matched(c) if c != 0));
        for chunk in 1..=r.len() {
            let mut v = Verifier::new();
            for c in r.chunks(chunk) {
                v.update(c);
            }
            assert_eq!(v.finish().unwrap(), whole, "chunks of {chunk}");
        }
    }

    #[test]
    fn verify_refuses_damage() {
        let r = rdb(BODY);
        for i in 0..r.len() {
            let mut bad = r.clone();
            bad[i] ^= 0x20;
            assert!(verify(&bad).is_err(), "byte {i} flipped");
        }
        let mut bad = r.clone();
        bad[12] ^= 1;
        assert!(matches!(
            verify(&bad),
            Err(RdbError::ChecksumMismatch { .. })
        ));
        for len in 0..r.len() {
            assert!(verify(&r[..len]).is_err(), "truncated to {len}");
        }
        assert!(matches!(
            verify(&r[..5]),
            Err(RdbError::TooShort { bytes: 5 })
        ));
        assert!(matches!(verify(&r[..r.len() - 3]), Err(RdbError::NoEnd)));
        let mut magic = r.clone();
        magic[..5].copy_from_slice(b"REDIZ");
        assert!(matches!(verify(&magic), Err(RdbError::BadMagic { .. })));
        let mut version = r.clone();
        version[8] = b'x';
        let e = verify(&version).unwrap_err();
        assert!(e.to_string().contains("REDIS001x"), "{e}");
    }

    #[test]
    fn a_zero_checksum_means_checksums_were_off() {
        let mut r = rdb(BODY);
        let n = r.len();
        r[n - 8..].fill(0);
        assert_eq!(verify(&r).unwrap().checksum, Checksum::Disabled);
    }

    fn stream(prefix: &[u8], payload: &[u8], suffix: &[u8]) -> Vec<u8> {
        [prefix, payload, suffix].concat()
    }

    async fn read(input: &[u8]) -> (Result<Payload, RdbError>, Vec<u8>) {
        let mut reader = tokio::io::BufReader::with_capacity(7, input);
        let mut out = Vec::new();
        let r = read_payload(&mut reader, &mut out, Duration::from_secs(5)).await;
        (r, out)
    }

    #[tokio::test]
    async fn a_sized_payload_after_keepalives() {
        let r = rdb(BODY);
        let header = format!("\n\n\n${}\r\n", r.len());
        let (got, out) = read(&stream(header.as_bytes(), &r, b"")).await;
        let got = got.unwrap();
        assert!(!got.diskless);
        assert_eq!(got.verified.bytes, r.len() as u64);
        assert_eq!(out, r);
        // Whatever follows the announced length is not part of the RDB.
        let (got, out) = read(&stream(header.as_bytes(), &r, b"*1\r\n$4\r\nPING\r\n")).await;
        assert!(got.is_ok());
        assert_eq!(out, r);
    }

    #[tokio::test]
    async fn a_diskless_payload_ends_at_its_mark() {
        let r = rdb(BODY);
        let mark = b"0123456789abcdef0123456789abcdef01234567";
        let header = [&b"\n$EOF:"[..], mark, b"\r\n"].concat();
        let (got, out) = read(&stream(&header, &r, mark)).await;
        let got = got.unwrap();
        assert!(got.diskless);
        assert_eq!(out, r, "the mark is not written");
    }

    #[tokio::test]
    async fn truncated_streams_say_how_far_they_got() {
        let r = rdb(BODY);
        let header = format!("${}\r\n", r.len());
        let (got, _) = read(&stream(header.as_bytes(), &r[..10], b"")).await;
        let e = got.unwrap_err();
        assert_eq!(
            e.to_string(),
            format!("the stream ended after 10 of {} bytes", r.len())
        );
        let mark = [b'm'; EOF_MARK_LEN];
        let header = [&b"$EOF:"[..], &mark, b"\r\n"].concat();
        let (got, _) = read(&stream(&header, &r, &mark[..39])).await;
        assert!(
            matches!(got, Err(RdbError::Unterminated { got }) if got == (r.len() + 39) as u64),
            "{got:?}"
        );
        let (got, _) = read(b"\n\n").await;
        assert!(matches!(got, Err(RdbError::Unterminated { got: 0 })));
    }

    #[tokio::test]
    async fn a_damaged_stream_is_refused_after_transfer() {
        let mut r = rdb(BODY);
        r[11] ^= 0xff;
        let header = format!("${}\r\n", r.len());
        let (got, _) = read(&stream(header.as_bytes(), &r, b"")).await;
        assert!(matches!(got, Err(RdbError::ChecksumMismatch { .. })));
        let (got, _) = read(b"-NOAUTH Authentication required.\r\n").await;
        assert!(matches!(got, Err(RdbError::Refused { .. })));
        let (got, _) = read(b"$5\r\nhello").await;
        assert!(matches!(got, Err(RdbError::TooShort { bytes: 5 })));
    }

    #[test]
    fn commands_are_resp_arrays() {
        assert_eq!(
            command(&[b"REPLCONF", b"rdb-only", b"1"]),
            b"*3\r\n$8\r\nREPLCONF\r\n$8\r\nrdb-only\r\n$1\r\n1\r\n"
        );
    }
}
