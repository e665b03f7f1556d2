//! Frame boundaries in RESP2/RESP3 byte streams: where one client command or one server reply
//! ends, plus the few facts the proxy reads from them (argument bytes, error codes, pub/sub
//! events).
//!
//! The scanners never copy, never allocate on the heap, never recurse, and never trust a
//! declared length: they skip over a bulk by arithmetic and say `Ok(None)` until all of it is in
//! the buffer, so a client declaring `$2000000000` costs nothing but the bytes it really sends.
//! Nesting is tracked in a fixed array of [`MAX_DEPTH`] counters, and only for aggregates: a
//! scalar reply (`+OK`, `:1`, `$5`...) is recognised without touching it.
//!
//! Acceptance mirrors Redis's server side (`processMultibulkBuffer`, `processInlineBuffer`) for
//! commands, and is strict on framing but lenient on content for replies: a simple line is
//! anything up to `\r\n`, its content is only read by [`error_code`] and [`pubsub_event`].
//! Every check looks only at bytes already present and proceeds left to right, so a buffer that
//! is rejected stays rejected however many bytes follow, and a prefix of a valid frame is always
//! `Ok(None)`, never an error.

/// Redis's `proto-max-bulk-len` default: the longest bulk string accepted.
pub const MAX_BULK: usize = 512 * 1024 * 1024;
/// Redis refuses inline requests longer than this (`PROTO_INLINE_MAX_SIZE`).
pub const MAX_INLINE: usize = 64 * 1024;
/// Aggregates nested deeper than this are refused.
pub const MAX_DEPTH: usize = 64;
/// The most arguments a multibulk command may declare. Replies' aggregates are capped at
/// `i32::MAX` elements instead (pairs, for maps and attributes).
pub const MAX_ARGS: usize = 1024 * 1024;

/// The most elements (or pairs) a reply's aggregate may declare.
const MAX_REPLY_ELEMENTS: u64 = i32::MAX as u64;

/// Why a buffer does not hold a valid frame. Each is final: more bytes never fix it, the
/// connection is out of step with the protocol.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RespError {
    /// A byte other than the one the protocol requires at this point.
    #[error("expected {expected:?}, got {got:?}")]
    Expected {
        /// The byte the protocol requires here.
        expected: char,
        /// The byte found, as a Latin-1 character.
        got: char,
    },
    /// A reply starting with a byte that is no RESP2/RESP3 type.
    #[error("unknown reply type {0:?}")]
    UnknownType(char),
    /// A bulk length that is not a decimal, is negative (other than `-1` in a reply), has
    /// leading zeros, or exceeds [`MAX_BULK`].
    #[error("invalid bulk length")]
    InvalidBulkLength,
    /// An element count that is not a decimal, is negative (other than `-1` for `*`), or exceeds
    /// [`MAX_ARGS`] (commands) or `i32::MAX` (replies).
    #[error("invalid multibulk length")]
    InvalidMultibulkLength,
    /// An inline command line longer than [`MAX_INLINE`].
    #[error("inline request too long")]
    InlineTooLong,
    /// A simple reply line longer than [`MAX_BULK`].
    #[error("reply line too long")]
    LineTooLong,
    /// More than [`MAX_DEPTH`] aggregates open at once.
    #[error("nesting deeper than {}", MAX_DEPTH)]
    TooDeep,
    /// A `\r` not followed by `\n`, or a bulk not followed by `\r\n`.
    #[error("bad line ending")]
    BadLineEnding,
    /// A streamed RESP3 string or aggregate (`$?`, `*?`...), which Redis never sends.
    #[error("streamed RESP3 frames are not supported")]
    Streamed,
}

/// The number of argument ranges a Command remembers (the rest are only counted).
pub const HEAD_ARGS: usize = 8;

/// One complete client command at the head of a buffer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command {
    /// Bytes the command occupies (including its framing).
    pub len: usize,
    /// Number of arguments (the command name counts as one). 0 for an empty inline line.
    pub argc: usize,
    /// Byte ranges (start, end) into the buffer of the first min(argc, HEAD_ARGS) arguments'
    /// contents; `(0, 0)` past them.
    pub head: [(usize, usize); HEAD_ARGS],
    /// Whether any argument after the first equals `BLOCK` (ASCII case-insensitively), checked
    /// over all arguments, not only the head ones: `XREAD`/`XREADGROUP` block only with it, and
    /// it can sit anywhere (`XREADGROUP GROUP g c COUNT 1 BLOCK 0 STREAMS s >`).
    pub has_block: bool,
}

impl Command {
    /// Argument `i` (< HEAD_ARGS) as bytes of `buf` (the same buffer passed to parse_command),
    /// None past argc or HEAD_ARGS.
    pub fn arg<'a>(&self, buf: &'a [u8], i: usize) -> Option<&'a [u8]> {
        if i >= self.argc {
            return None;
        }
        let &(start, end) = self.head.get(i)?;
        buf.get(start..end)
    }
}

/// Parses the command at the start of `buf`: a multibulk request (`*N\r\n$len\r\n...\r\n`) or
/// an inline one (a line split on whitespace as Redis's `sdssplitargs` does, without its quote
/// handling; a line of only `\r\n` or `\n` is an empty command with argc 0).
///
/// `Ok(None)` when more bytes are needed. Mirrors Redis's server-side acceptance: at most
/// [`MAX_ARGS`] arguments, `*0` and `*-1` are a command with argc 0 (Redis skips them), each
/// bulk is `$len` with `0 <= len <= MAX_BULK`, no leading zeros, followed by its bytes and
/// `\r\n`. Inline lines end at `\n` (a preceding `\r` is stripped) and may be [`MAX_INLINE`]
/// bytes long.
pub fn parse_command(buf: &[u8]) -> Result<Option<Command>, RespError> {
    match buf.first() {
        None => Ok(None),
        Some(b'*') => parse_multibulk(buf),
        Some(_) => parse_inline(buf),
    }
}

const NO_HEAD: [(usize, usize); HEAD_ARGS] = [(0, 0); HEAD_ARGS];

fn is_block(arg: &[u8]) -> bool {
    arg.eq_ignore_ascii_case(b"BLOCK")
}

fn parse_multibulk(buf: &[u8]) -> Result<Option<Command>, RespError> {
    let Some((count, mut pos)) = parse_len(
        buf,
        1,
        MAX_ARGS as u64,
        true,
        RespError::InvalidMultibulkLength,
    )?
    else {
        return Ok(None);
    };
    let mut cmd = Command {
        len: pos,
        argc: 0,
        head: NO_HEAD,
        has_block: false,
    };
    // -1 (and 0) is an empty command, as Redis skips it.
    let Ok(argc) = usize::try_from(count) else {
        return Ok(Some(cmd));
    };
    for i in 0..argc {
        match buf.get(pos) {
            None => return Ok(None),
            Some(b'$') => {}
            Some(&other) => {
                return Err(RespError::Expected {
                    expected: '$',
                    got: char::from(other),
                })
            }
        }
        let Some((n, data)) = parse_len(
            buf,
            pos + 1,
            MAX_BULK as u64,
            false,
            RespError::InvalidBulkLength,
        )?
        else {
            return Ok(None);
        };
        // parse_len refused -1 and anything above MAX_BULK: n fits a usize.
        let n = usize::try_from(n).map_err(|_| RespError::InvalidBulkLength)?;
        let end = data.saturating_add(n);
        match (buf.get(end), buf.get(end.saturating_add(1))) {
            (Some(b'\r'), Some(b'\n')) => {}
            (Some(b'\r'), None) | (None, _) => return Ok(None),
            _ => return Err(RespError::BadLineEnding),
        }
        if let Some(slot) = cmd.head.get_mut(i) {
            *slot = (data, end);
        }
        if i > 0 && n == 5 && !cmd.has_block {
            cmd.has_block = buf.get(data..end).is_some_and(is_block);
        }
        pos = end + 2;
    }
    cmd.argc = argc;
    cmd.len = pos;
    Ok(Some(cmd))
}

/// Redis's `isspace` in the C locale, which `sdssplitargs` splits inline requests on.
fn is_inline_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\r' | b'\n' | 0x0b | 0x0c)
}

fn parse_inline(buf: &[u8]) -> Result<Option<Command>, RespError> {
    let window = buf.get(..MAX_INLINE + 1).unwrap_or(buf);
    let Some(newline) = window.iter().position(|&b| b == b'\n') else {
        return if buf.len() > MAX_INLINE {
            Err(RespError::InlineTooLong)
        } else {
            Ok(None)
        };
    };
    let line = window.get(..newline).unwrap_or_default();
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut cmd = Command {
        len: newline + 1,
        argc: 0,
        head: NO_HEAD,
        has_block: false,
    };
    let mut pos = 0;
    while pos < line.len() {
        let rest = line.get(pos..).unwrap_or_default();
        let Some(skip) = rest.iter().position(|&b| !is_inline_space(b)) else {
            break;
        };
        let start = pos + skip;
        let word = line.get(start..).unwrap_or_default();
        let len = word
            .iter()
            .position(|&b| is_inline_space(b))
            .unwrap_or(word.len());
        let end = start + len;
        if let Some(slot) = cmd.head.get_mut(cmd.argc) {
            *slot = (start, end);
        }
        if cmd.argc > 0 && len == 5 && !cmd.has_block {
            cmd.has_block = word.get(..5).is_some_and(is_block);
        }
        cmd.argc += 1;
        pos = end;
    }
    Ok(Some(cmd))
}

/// Parses `<decimal>\r\n` at `pos` (just after a type byte): `Ok(None)` when incomplete, else
/// the value (`-1` only when `allow_neg1`) and the offset after `\r\n`. Like Redis's
/// `string2ll`: no sign other than the `-` of `-1`, no leading zeros, no empty number. Values
/// above `max` fail as soon as their digits do, so a long run of digits is refused early.
fn parse_len(
    buf: &[u8],
    pos: usize,
    max: u64,
    allow_neg1: bool,
    invalid: RespError,
) -> Result<Option<(i64, usize)>, RespError> {
    let mut pos = pos;
    let negative = match buf.get(pos) {
        None => return Ok(None),
        Some(b'-') if allow_neg1 => {
            pos += 1;
            true
        }
        Some(_) => false,
    };
    let digits = pos;
    let mut value: u64 = 0;
    loop {
        match buf.get(pos) {
            None => return Ok(None),
            Some(&d @ b'0'..=b'9') => {
                if pos > digits && value == 0 {
                    return Err(invalid); // leading zero
                }
                value = value * 10 + u64::from(d - b'0');
                if value > max || (negative && value > 1) {
                    return Err(invalid);
                }
                pos += 1;
            }
            Some(b'\r') => break,
            Some(_) => return Err(invalid),
        }
    }
    if pos == digits || (negative && value != 1) {
        return Err(invalid);
    }
    match buf.get(pos + 1) {
        None => Ok(None),
        Some(b'\n') => {
            // value <= max <= MAX_BULK: it fits an i64.
            let value = i64::try_from(value).map_err(|_| invalid)?;
            Ok(Some((if negative { -1 } else { value }, pos + 2)))
        }
        Some(_) => Err(RespError::BadLineEnding),
    }
}

/// The type of a reply frame, from its first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplyKind {
    /// `+`
    Simple,
    /// `-`
    Error,
    /// `:`
    Integer,
    /// `$` (including the RESP2 null bulk `$-1`)
    Bulk,
    /// `*` (including the RESP2 null array `*-1`)
    Array,
    /// `_`
    Null,
    /// `,`
    Double,
    /// `#`
    Boolean,
    /// `!`
    BlobError,
    /// `=`
    Verbatim,
    /// `(`
    BigNumber,
    /// `%`
    Map,
    /// `~`
    Set,
    /// `>`
    Push,
}

/// One complete reply at the head of a buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Reply {
    /// Bytes it occupies. An RESP3 attribute (`|`) is consumed together with the frame that
    /// follows it, and the Reply describes that following frame.
    pub len: usize,
    /// The type of the described frame.
    pub kind: ReplyKind,
    /// Offset where the described frame starts (after any attribute); 0 without attribute.
    pub start: usize,
}

/// What the header of one frame says.
enum Step {
    /// A complete frame without children, ending at this offset.
    Done(usize),
    /// An aggregate header ending at `next`, with `count` children (2 per pair for maps and
    /// attributes). An attribute's children are followed by the frame it annotates, which
    /// counts as the element, not the attribute.
    Open { count: u64, next: usize, attr: bool },
}

/// Scans the header of the frame at `pos`; a scalar frame is scanned whole.
fn frame(buf: &[u8], pos: usize) -> Result<Option<(ReplyKind, Step)>, RespError> {
    let Some(&t) = buf.get(pos) else {
        return Ok(None);
    };
    let (kind, is_line) = match t {
        b'+' => (ReplyKind::Simple, true),
        b'-' => (ReplyKind::Error, true),
        b':' => (ReplyKind::Integer, true),
        b'_' => (ReplyKind::Null, true),
        b',' => (ReplyKind::Double, true),
        b'#' => (ReplyKind::Boolean, true),
        b'(' => (ReplyKind::BigNumber, true),
        b'$' => (ReplyKind::Bulk, false),
        b'!' => (ReplyKind::BlobError, false),
        b'=' => (ReplyKind::Verbatim, false),
        b'*' => (ReplyKind::Array, false),
        b'%' => (ReplyKind::Map, false),
        b'~' => (ReplyKind::Set, false),
        b'>' => (ReplyKind::Push, false),
        // The annotated frame's kind is reported instead; this one is never seen.
        b'|' => (ReplyKind::Map, false),
        other => return Err(RespError::UnknownType(char::from(other))),
    };
    let pos = pos + 1;
    if is_line {
        return Ok(line_end(buf, pos)?.map(|end| (kind, Step::Done(end))));
    }
    if buf.get(pos) == Some(&b'?') {
        return Err(RespError::Streamed);
    }
    match t {
        b'$' | b'!' | b'=' => {
            let Some((n, data)) = parse_len(
                buf,
                pos,
                MAX_BULK as u64,
                t == b'$',
                RespError::InvalidBulkLength,
            )?
            else {
                return Ok(None);
            };
            let Ok(n) = usize::try_from(n) else {
                return Ok(Some((kind, Step::Done(data)))); // $-1
            };
            let end = data.saturating_add(n);
            match (buf.get(end), buf.get(end.saturating_add(1))) {
                (Some(b'\r'), Some(b'\n')) => Ok(Some((kind, Step::Done(end + 2)))),
                (Some(b'\r'), None) | (None, _) => Ok(None),
                _ => Err(RespError::BadLineEnding),
            }
        }
        _ => {
            let Some((n, next)) = parse_len(
                buf,
                pos,
                MAX_REPLY_ELEMENTS,
                t == b'*',
                RespError::InvalidMultibulkLength,
            )?
            else {
                return Ok(None);
            };
            let Ok(n) = u64::try_from(n) else {
                return Ok(Some((kind, Step::Done(next)))); // *-1
            };
            let pairs = matches!(t, b'%' | b'|');
            Ok(Some((
                kind,
                Step::Open {
                    count: if pairs { n * 2 } else { n },
                    next,
                    attr: t == b'|',
                },
            )))
        }
    }
}

/// The offset after the `\r\n` ending the line that starts at `pos`.
fn line_end(buf: &[u8], pos: usize) -> Result<Option<usize>, RespError> {
    let rest = buf.get(pos..).unwrap_or_default();
    match rest.iter().position(|&b| b == b'\r') {
        Some(i) if i > MAX_BULK => Err(RespError::LineTooLong),
        Some(i) => match rest.get(i + 1) {
            None => Ok(None),
            Some(b'\n') => Ok(Some(pos + i + 2)),
            Some(_) => Err(RespError::BadLineEnding),
        },
        None if rest.len() > MAX_BULK => Err(RespError::LineTooLong),
        None => Ok(None),
    }
}

/// Scans one reply (RESP2 and RESP3: `+ - : $ * _ , # ( ! = % ~ > |`) at the start of `buf`.
/// `Ok(None)` when incomplete. `$-1` is reported as a Bulk and `*-1` as an Array, both complete
/// frames. Streamed RESP3 strings and aggregates (`$?`...) are not sent by Redis: an error.
pub fn parse_reply(buf: &[u8]) -> Result<Option<Reply>, RespError> {
    // Nearly every reply is a scalar: no stack for those.
    match frame(buf, 0)? {
        None => Ok(None),
        Some((kind, Step::Done(len))) => Ok(Some(Reply {
            len,
            kind,
            start: 0,
        })),
        Some((kind, Step::Open { count, next, attr })) => scan_nested(buf, kind, count, next, attr),
    }
}

/// Top bit of a stack entry: the open aggregate is an attribute.
const ATTR: u64 = 1 << 63;

/// The rest of [`parse_reply`] after an aggregate header at offset 0, iteratively: an explicit
/// stack holds how many children each open aggregate still expects.
fn scan_nested(
    buf: &[u8],
    kind: ReplyKind,
    count: u64,
    next: usize,
    attr: bool,
) -> Result<Option<Reply>, RespError> {
    let mut stack = [0u64; MAX_DEPTH];
    let mut depth = 0usize;
    let mut kind = kind;
    let mut start = 0usize;
    let mut step = Step::Open { count, next, attr };
    loop {
        let pos = match step {
            Step::Done(end) => {
                // A frame ended: it is one child of the innermost open aggregate, which may end
                // with it, and so on outwards.
                loop {
                    let Some(d) = depth.checked_sub(1) else {
                        return Ok(Some(Reply {
                            len: end,
                            kind,
                            start,
                        }));
                    };
                    let Some(top) = stack.get_mut(d) else {
                        return Err(RespError::TooDeep);
                    };
                    *top = top.saturating_sub(1);
                    if *top & !ATTR != 0 {
                        break;
                    }
                    depth = d;
                    if *top & ATTR != 0 {
                        // A finished attribute completes nothing: the frame it annotates follows.
                        break;
                    }
                }
                end
            }
            Step::Open { count, next, attr } => {
                if depth >= MAX_DEPTH {
                    return Err(RespError::TooDeep);
                }
                if count > 0 {
                    let Some(slot) = stack.get_mut(depth) else {
                        return Err(RespError::TooDeep);
                    };
                    *slot = count | if attr { ATTR } else { 0 };
                    depth += 1;
                } else if !attr {
                    step = Step::Done(next); // an empty aggregate
                    continue;
                }
                // (An empty attribute: the frame it annotates follows.)
                next
            }
        };
        let Some((k, s)) = frame(buf, pos)? else {
            return Ok(None);
        };
        // At the top level, only the frame after an attribute is read here: the one described.
        if depth == 0 && buf.get(pos) != Some(&b'|') {
            kind = k;
            start = pos;
        }
        step = s;
    }
}

/// For an Error or BlobError reply, its code: the first word of the message (`READONLY`,
/// `UNBLOCKED`, `NOAUTH`, `ERR`, `LOADING`, `MASTERDOWN`...). None for other kinds, or an empty
/// message.
pub fn error_code<'a>(buf: &'a [u8], reply: &Reply) -> Option<&'a [u8]> {
    let frame = buf.get(reply.start..)?;
    let message = match reply.kind {
        ReplyKind::Error => line_content(frame, b'-')?,
        ReplyKind::BlobError => blob_content(frame, b'!')?,
        _ => return None,
    };
    let word = message
        .split(|&b| b == b' ' || b == b'\r' || b == b'\n')
        .next()?;
    (!word.is_empty()).then_some(word)
}

/// The content of a line frame of type `t` at the start of `frame`.
fn line_content(frame: &[u8], t: u8) -> Option<&[u8]> {
    let rest = frame.strip_prefix(&[t])?;
    let end = rest.iter().position(|&b| b == b'\r')?;
    rest.get(..end)
}

/// The content of a blob frame of type `t` at the start of `frame`, and the offset after it.
fn blob_with_end(frame: &[u8], t: u8) -> Option<(&[u8], usize)> {
    let Ok(Some((n, data))) = parse_len(
        frame,
        1,
        MAX_BULK as u64,
        false,
        RespError::InvalidBulkLength,
    ) else {
        return None;
    };
    if frame.first() != Some(&t) {
        return None;
    }
    let end = data.checked_add(usize::try_from(n).ok()?)?;
    Some((frame.get(data..end)?, end.checked_add(2)?))
}

fn blob_content(frame: &[u8], t: u8) -> Option<&[u8]> {
    blob_with_end(frame, t).map(|(content, _)| content)
}

/// For an Array or Push reply whose first element is a bulk or simple string: that string (e.g.
/// `message`, `subscribe`, `unsubscribe`, `pmessage`, `smessage`, `pong`, `invalidate`), and,
/// when the reply has exactly 3 elements and the third is an Integer, that integer (the
/// subscription count of subscribe/unsubscribe confirmations). None otherwise. Case as sent.
pub fn pubsub_event<'a>(buf: &'a [u8], reply: &Reply) -> Option<(&'a [u8], Option<i64>)> {
    let t = match reply.kind {
        ReplyKind::Array => b'*',
        ReplyKind::Push => b'>',
        _ => return None,
    };
    let frame = buf.get(reply.start..)?;
    if frame.first() != Some(&t) {
        return None;
    }
    let Ok(Some((count, first))) = parse_len(
        frame,
        1,
        MAX_REPLY_ELEMENTS,
        false,
        RespError::InvalidMultibulkLength,
    ) else {
        return None;
    };
    if count == 0 {
        return None;
    }
    let rest = frame.get(first..)?;
    let (name, second) = match rest.first()? {
        b'$' => blob_with_end(rest, b'$')?,
        b'+' => {
            let name = line_content(rest, b'+')?;
            (name, name.len() + 3)
        }
        _ => return None,
    };
    if count != 3 {
        return Some((name, None));
    }
    let rest = rest.get(second..)?;
    let Ok(Some(element)) = parse_reply(rest) else {
        return Some((name, None));
    };
    let third = rest.get(element.len..)?;
    let number = line_content(third, b':')
        .and_then(|digits| std::str::from_utf8(digits).ok())
        .and_then(|digits| digits.parse::<i64>().ok());
    Some((name, number))
}

/// The RESP encoding of a command, for tests and for the proxy's own requests:
/// `*N\r\n$len\r\narg\r\n...`.
pub fn encode_command(args: &[&[u8]]) -> Vec<u8> {
    let size = 16 + args.iter().map(|a| a.len() + 16).sum::<usize>();
    let mut out = Vec::with_capacity(size);
    push_header(&mut out, b'*', args.len());
    for arg in args {
        push_header(&mut out, b'$', arg.len());
        out.extend_from_slice(arg);
        out.extend_from_slice(b"\r\n");
    }
    out
}

/// Appends `<t><n>\r\n`.
fn push_header(out: &mut Vec<u8>, t: u8, n: usize) {
    let mut digits = [0u8; 20];
    let mut i = digits.len();
    let mut n = n;
    loop {
        i -= 1;
        if let Some(d) = digits.get_mut(i) {
            // n % 10 < 10: the cast is exact.
            *d = b'0' + (n % 10) as u8;
        }
        n /= 10;
        if n == 0 || i == 0 {
            break;
        }
    }
    out.push(t);
    out.extend_from_slice(digits.get(i..).unwrap_or_default());
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reply(buf: &[u8]) -> Reply {
        match parse_reply(buf) {
            Ok(Some(r)) => r,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    fn command(buf: &[u8]) -> Command {
        match parse_command(buf) {
            Ok(Some(c)) => c,
            other => panic!("{:?}: {other:?}", String::from_utf8_lossy(buf)),
        }
    }

    fn args<'a>(buf: &'a [u8], cmd: &Command) -> Vec<&'a [u8]> {
        (0..HEAD_ARGS).filter_map(|i| cmd.arg(buf, i)).collect()
    }

    /// Every complete reply with its kind, and where the described frame starts.
    const REPLIES: &[(&[u8], ReplyKind, usize)] = &[
        (b"+OK\r\n", ReplyKind::Simple, 0),
        (b"+\r\n", ReplyKind::Simple, 0),
        (b"-ERR unknown command\r\n", ReplyKind::Error, 0),
        (b":0\r\n", ReplyKind::Integer, 0),
        (b":-42\r\n", ReplyKind::Integer, 0),
        (b"$5\r\nhello\r\n", ReplyKind::Bulk, 0),
        (b"$0\r\n\r\n", ReplyKind::Bulk, 0),
        (b"$4\r\na\r\nb\r\n", ReplyKind::Bulk, 0),
        (b"$-1\r\n", ReplyKind::Bulk, 0),
        (b"*-1\r\n", ReplyKind::Array, 0),
        (b"*0\r\n", ReplyKind::Array, 0),
        (b"*2\r\n$1\r\na\r\n:1\r\n", ReplyKind::Array, 0),
        (
            b"*2\r\n*2\r\n+a\r\n*0\r\n*1\r\n$-1\r\n",
            ReplyKind::Array,
            0,
        ),
        (b"*3\r\n*-1\r\n*1\r\n*1\r\n:5\r\n_\r\n", ReplyKind::Array, 0),
        (b"_\r\n", ReplyKind::Null, 0),
        (b",3.14\r\n", ReplyKind::Double, 0),
        (b",-inf\r\n", ReplyKind::Double, 0),
        (b"#t\r\n", ReplyKind::Boolean, 0),
        (
            b"(3492890328409238509324850943850943825024385\r\n",
            ReplyKind::BigNumber,
            0,
        ),
        (b"!21\r\nSYNTAX invalid syntax\r\n", ReplyKind::BlobError, 0),
        (b"=15\r\ntxt:Some string\r\n", ReplyKind::Verbatim, 0),
        (
            b"%2\r\n+first\r\n:1\r\n+second\r\n*1\r\n:2\r\n",
            ReplyKind::Map,
            0,
        ),
        (b"%0\r\n", ReplyKind::Map, 0),
        (b"~3\r\n+a\r\n+b\r\n#f\r\n", ReplyKind::Set, 0),
        (
            b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
            ReplyKind::Push,
            0,
        ),
        (
            b"|1\r\n+key-popularity\r\n%1\r\n$1\r\na\r\n,0.19\r\n*1\r\n:2\r\n",
            ReplyKind::Array,
            39,
        ),
        (b"|1\r\n+ttl\r\n:3\r\n+OK\r\n", ReplyKind::Simple, 14),
        (b"|0\r\n:7\r\n", ReplyKind::Integer, 4),
        (b"|0\r\n|1\r\n+a\r\n+b\r\n$1\r\nx\r\n", ReplyKind::Bulk, 16),
        // An attribute inside an aggregate annotates the next element: still two elements.
        (b"*2\r\n|1\r\n+a\r\n+b\r\n:1\r\n:2\r\n", ReplyKind::Array, 0),
        (b"*1\r\n|0\r\n*0\r\n", ReplyKind::Array, 0),
    ];

    #[test]
    fn every_reply_type() {
        for &(bytes, kind, start) in REPLIES {
            assert_eq!(
                reply(bytes),
                Reply {
                    len: bytes.len(),
                    kind,
                    start
                },
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn every_prefix_of_a_reply_is_incomplete() {
        for &(bytes, _, _) in REPLIES {
            for cut in 0..bytes.len() {
                assert_eq!(
                    parse_reply(&bytes[..cut]),
                    Ok(None),
                    "{:?}",
                    String::from_utf8_lossy(&bytes[..cut])
                );
            }
        }
    }

    #[test]
    fn concatenated_replies_parse_one_at_a_time() {
        let mut stream = Vec::new();
        for &(bytes, _, _) in REPLIES {
            stream.extend_from_slice(bytes);
        }
        let mut pos = 0;
        for &(bytes, kind, start) in REPLIES {
            let r = reply(&stream[pos..]);
            assert_eq!((r.len, r.kind, r.start), (bytes.len(), kind, start));
            pos += r.len;
        }
        assert_eq!(pos, stream.len());
        assert_eq!(parse_reply(&stream[pos..]), Ok(None));
    }

    #[test]
    fn nesting_up_to_the_limit() {
        let nested = |levels: usize| {
            let mut b = b"*1\r\n".repeat(levels);
            b.extend_from_slice(b":1\r\n");
            b
        };
        let ok = nested(MAX_DEPTH);
        assert_eq!(reply(&ok).len, ok.len());
        assert_eq!(parse_reply(&nested(MAX_DEPTH + 1)), Err(RespError::TooDeep));
        // Refused as soon as the 65th header is read, before the rest arrives.
        assert_eq!(
            parse_reply(&b"*1\r\n".repeat(MAX_DEPTH + 1)),
            Err(RespError::TooDeep)
        );
        let mut maps = b"%1\r\n+k\r\n".repeat(MAX_DEPTH + 1);
        maps.extend_from_slice(b"_\r\n");
        assert_eq!(parse_reply(&maps), Err(RespError::TooDeep));
        // Siblings do not add up.
        let wide = b"*3\r\n*1\r\n*1\r\n:1\r\n*1\r\n:2\r\n*0\r\n";
        assert_eq!(reply(wide).len, wide.len());
    }

    #[test]
    fn reply_errors() {
        let cases: &[(&[u8], RespError)] = &[
            (b"$abc\r\n", RespError::InvalidBulkLength),
            (b"$-2\r\n", RespError::InvalidBulkLength),
            (b"$-0\r\n", RespError::InvalidBulkLength),
            (b"$-10\r\n", RespError::InvalidBulkLength),
            (b"$01\r\nx\r\n", RespError::InvalidBulkLength),
            (b"$+1\r\nx\r\n", RespError::InvalidBulkLength),
            (b"$\r\n", RespError::InvalidBulkLength),
            (b"$536870913\r\n", RespError::InvalidBulkLength),
            (
                b"$99999999999999999999999999\r\n",
                RespError::InvalidBulkLength,
            ),
            (b"!-1\r\n", RespError::InvalidBulkLength),
            (b"*-2\r\n", RespError::InvalidMultibulkLength),
            (b"%-1\r\n", RespError::InvalidMultibulkLength),
            (b"*2147483648\r\n", RespError::InvalidMultibulkLength),
            (b"*1x\r\n", RespError::InvalidMultibulkLength),
            (b"$1\r\nab\r\n", RespError::BadLineEnding),
            (b"$1\r\na\n\r", RespError::BadLineEnding),
            (b"$1\rx", RespError::BadLineEnding),
            (b"+OK\rx", RespError::BadLineEnding),
            (b"*2\r\n:1\r\n:2\r:", RespError::BadLineEnding),
            (b"$?\r\n;3\r\nabc\r\n;0\r\n", RespError::Streamed),
            (b"*?\r\n", RespError::Streamed),
            (b"xyz\r\n", RespError::UnknownType('x')),
            (b"*1\r\n@\r\n", RespError::UnknownType('@')),
        ];
        for (bytes, err) in cases {
            assert_eq!(
                parse_reply(bytes).as_ref(),
                Err(err),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        assert_eq!(
            RespError::Expected {
                expected: '$',
                got: 'x'
            }
            .to_string(),
            "expected '$', got 'x'"
        );
        assert_eq!(RespError::TooDeep.to_string(), "nesting deeper than 64");
    }

    #[test]
    fn huge_declared_lengths_wait_without_allocating() {
        assert_eq!(parse_reply(b"$536870912\r\nabc"), Ok(None));
        assert_eq!(parse_reply(b"*2147483647\r\n:1\r\n"), Ok(None));
        assert_eq!(parse_command(b"*1\r\n$536870912\r\nabc"), Ok(None));
        assert_eq!(
            parse_command(b"*1\r\n$2000000000\r\n"),
            Err(RespError::InvalidBulkLength)
        );
    }

    #[test]
    fn error_codes() {
        let cases: &[(&[u8], Option<&[u8]>)] = &[
            (
                b"-READONLY You can't write against a read only replica.\r\n",
                Some(b"READONLY"),
            ),
            (
                b"-UNBLOCKED force unblock from blocking operation, instance state changed (master -> replica?)\r\n",
                Some(b"UNBLOCKED"),
            ),
            (b"-NOAUTH Authentication required.\r\n", Some(b"NOAUTH")),
            (b"-LOADING\r\n", Some(b"LOADING")),
            (b"-\r\n", None),
            (b"!21\r\nSYNTAX invalid syntax\r\n", Some(b"SYNTAX")),
            (b"|1\r\n+a\r\n+b\r\n-MASTERDOWN Link down\r\n", Some(b"MASTERDOWN")),
            (b"+READONLY\r\n", None),
            (b"$8\r\nREADONLY\r\n", None),
        ];
        for &(bytes, code) in cases {
            assert_eq!(
                error_code(bytes, &reply(bytes)),
                code,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
    }

    #[test]
    fn pubsub_events() {
        type Case<'a> = (&'a [u8], Option<(&'a [u8], Option<i64>)>);
        let cases: &[Case] = &[
            (
                b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n",
                Some((b"subscribe", Some(1))),
            ),
            (
                b">3\r\n$7\r\nmessage\r\n$2\r\nch\r\n$2\r\nhi\r\n",
                Some((b"message", None)),
            ),
            (
                b"*3\r\n$11\r\nunsubscribe\r\n$-1\r\n:0\r\n",
                Some((b"unsubscribe", Some(0))),
            ),
            (
                b"*4\r\n$8\r\npmessage\r\n$2\r\nc*\r\n$2\r\nch\r\n$1\r\nx\r\n",
                Some((b"pmessage", None)),
            ),
            (b"*2\r\n$4\r\npong\r\n$0\r\n\r\n", Some((b"pong", None))),
            (
                b"*3\r\n+SUBSCRIBE\r\n+ch\r\n:12\r\n",
                Some((b"SUBSCRIBE", Some(12))),
            ),
            (
                b">2\r\n$10\r\ninvalidate\r\n*1\r\n$1\r\nk\r\n",
                Some((b"invalidate", None)),
            ),
            (b"*3\r\n:1\r\n:2\r\n:3\r\n", None),
            (b"*0\r\n", None),
            (b"*-1\r\n", None),
            (b"$9\r\nsubscribe\r\n", None),
            (b"+message\r\n", None),
        ];
        for &(bytes, event) in cases {
            assert_eq!(
                pubsub_event(bytes, &reply(bytes)),
                event,
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        // A following frame is not taken for the empty array's elements.
        let two = b"*0\r\n*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n";
        assert_eq!(pubsub_event(two, &reply(two)), None);
    }

    #[test]
    fn inline_commands() {
        let c = command(b"PING\r\n");
        assert_eq!((c.len, c.argc), (6, 1));
        assert_eq!(args(b"PING\r\n", &c), [b"PING"]);

        let buf = b"set a b\nGET a\n";
        let c = command(buf);
        assert_eq!((c.len, c.argc), (8, 3));
        assert_eq!(args(buf, &c), [&b"set"[..], b"a", b"b"]);

        for empty in [&b"\r\n"[..], b"\n", b"  \t \r\n"] {
            let c = command(empty);
            assert_eq!((c.len, c.argc), (empty.len(), 0));
            assert_eq!(c.arg(empty, 0), None);
        }

        let buf = b"  mset\t k1 v1  k2 v2 k3 v3 k4 v4 \r\n";
        let c = command(buf);
        assert_eq!((c.len, c.argc), (buf.len(), 9));
        assert_eq!(
            args(buf, &c),
            [
                &b"mset"[..],
                b"k1",
                b"v1",
                b"k2",
                b"v2",
                b"k3",
                b"v3",
                b"k4"
            ]
        );
        assert_eq!(c.arg(buf, HEAD_ARGS), None);

        assert!(command(b"XREAD block 0 STREAMS s $\n").has_block);
        assert!(!command(b"BLOCK x\n").has_block);
        assert!(command(b"XREADGROUP GROUP g c COUNT 1 BLOCK 0 STREAMS s >\n").has_block);

        for prefix in [&b""[..], b"PING", b"PING\r", b"set a b"] {
            assert_eq!(parse_command(prefix), Ok(None));
        }
    }

    #[test]
    fn inline_length_limit() {
        let mut line = vec![b'a'; MAX_INLINE];
        assert_eq!(parse_command(&line), Ok(None));
        line.push(b'\n');
        assert_eq!(command(&line).len, MAX_INLINE + 1);
        let mut long = vec![b'a'; MAX_INLINE + 1];
        assert_eq!(parse_command(&long), Err(RespError::InlineTooLong));
        long.push(b'\n');
        assert_eq!(parse_command(&long), Err(RespError::InlineTooLong));
    }

    #[test]
    fn multibulk_commands() {
        let buf = b"*3\r\n$3\r\nSET\r\n$1\r\nk\r\n$5\r\nva\r\nl\r\n";
        let c = command(buf);
        assert_eq!((c.len, c.argc), (buf.len(), 3));
        assert_eq!(args(buf, &c), [&b"SET"[..], b"k", b"va\r\nl"]);
        assert!(!c.has_block);

        for empty in [&b"*0\r\n"[..], b"*-1\r\n"] {
            let c = command(empty);
            assert_eq!((c.len, c.argc), (empty.len(), 0));
        }

        let buf = encode_command(&[b"GET", b""]);
        assert_eq!(buf, b"*2\r\n$3\r\nGET\r\n$0\r\n\r\n");
        assert_eq!(args(&buf, &command(&buf)), [&b"GET"[..], b""]);

        let many: Vec<&[u8]> = vec![b"x"; 10];
        let buf = encode_command(&many);
        let c = command(&buf);
        assert_eq!((c.len, c.argc), (buf.len(), 10));
        assert_eq!(c.arg(&buf, HEAD_ARGS - 1), Some(&b"x"[..]));
        assert_eq!(c.arg(&buf, HEAD_ARGS), None);

        // BLOCK found past the remembered head, but never as the command name.
        let buf = encode_command(&[
            b"XREADGROUP",
            b"GROUP",
            b"g",
            b"c",
            b"COUNT",
            b"1",
            b"block",
            b"0",
        ]);
        assert!(command(&buf).has_block);
        assert!(!command(&encode_command(&[b"BLOCK", b"x"])).has_block);

        for cut in 0..buf.len() {
            assert_eq!(parse_command(&buf[..cut]), Ok(None), "{cut}");
        }
        let mut two = buf.clone();
        two.extend_from_slice(b"PING\r\n");
        let first = command(&two);
        assert_eq!(first.len, buf.len());
        assert_eq!(command(&two[first.len..]).len, 6);
    }

    #[test]
    fn multibulk_errors() {
        let cases: &[(&[u8], RespError)] = &[
            (b"*2\r\n$1\r\nab\r\n", RespError::BadLineEnding),
            (b"*1\r\n$1\r\na\n\n", RespError::BadLineEnding),
            (
                b"*1\r\n:1\r\n",
                RespError::Expected {
                    expected: '$',
                    got: ':',
                },
            ),
            (b"*1\r\n$abc\r\n", RespError::InvalidBulkLength),
            (b"*1\r\n$-1\r\n", RespError::InvalidBulkLength),
            (b"*1\r\n$-2\r\n", RespError::InvalidBulkLength),
            (b"*1\r\n$536870913\r\n", RespError::InvalidBulkLength),
            (b"*-2\r\n", RespError::InvalidMultibulkLength),
            (b"*abc\r\n", RespError::InvalidMultibulkLength),
            (b"*1048577\r\n", RespError::InvalidMultibulkLength),
            (b"*\r\n", RespError::InvalidMultibulkLength),
            (b"*1\r\r", RespError::BadLineEnding),
        ];
        for (bytes, err) in cases {
            assert_eq!(
                parse_command(bytes).as_ref(),
                Err(err),
                "{:?}",
                String::from_utf8_lossy(bytes)
            );
        }
        assert_eq!(parse_command(b"*1048576\r\n"), Ok(None));
        assert_eq!(
            parse_command(b"*1\r\nx").map_err(|e| e.to_string()),
            Err("expected '$', got 'x'".to_string())
        );
    }

    #[test]
    fn arg_is_safe_on_another_buffer() {
        let buf = encode_command(&[b"GET", b"key"]);
        let c = command(&buf);
        assert_eq!(c.arg(b"short", 1), None);
        assert_eq!(c.arg(&buf, HEAD_ARGS + 1), None);
        let r = reply(b"-ERR x\r\n");
        assert_eq!(error_code(b"", &r), None);
        let r = reply(b"*3\r\n$9\r\nsubscribe\r\n$2\r\nch\r\n:1\r\n");
        assert_eq!(pubsub_event(b"*3\r\n$9\r\nsub", &r), None);
    }
}
