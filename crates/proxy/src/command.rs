//! Which commands change what a connection is bound to: authentication, protocol, database,
//! name, transactions, subscriptions and blocking calls. The proxy forwards everything else as
//! is; these few it records so it can replay them on a new master or hold a switch until they
//! are done. Also the read-only commands the read port may send to a replica.
//!
//! Names are compared ASCII case-insensitively by upper-casing into a small array on the stack:
//! no allocation, one `match` on a byte string.

use crate::resp::Command;

/// What a command means for the connection it is sent on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Class {
    /// AUTH
    Auth,
    /// HELLO (may carry AUTH and SETNAME and the protocol version)
    Hello,
    /// SELECT
    Select,
    /// CLIENT SETNAME (also CLIENT SETINFO: both are replayed)
    ClientSetName,
    /// Other CLIENT subcommands (ID, KILL, LIST, INFO, TRACKING, REPLY, PAUSE...), forwarded as
    /// is
    ClientOther,
    /// MULTI
    Multi,
    /// EXEC
    Exec,
    /// DISCARD
    Discard,
    /// WATCH
    Watch,
    /// UNWATCH
    Unwatch,
    /// SUBSCRIBE PSUBSCRIBE SSUBSCRIBE
    Subscribe,
    /// UNSUBSCRIBE PUNSUBSCRIBE SUNSUBSCRIBE
    Unsubscribe,
    /// BLPOP BRPOP BRPOPLPUSH BLMOVE BLMPOP BZPOPMIN BZPOPMAX BZMPOP, XREAD/XREADGROUP with a
    /// BLOCK argument ([`Command::has_block`]), WAIT, WAITAOF
    Blocking,
    /// QUIT
    Quit,
    /// RESET
    Reset,
    /// MONITOR (the proxy refuses it)
    Monitor,
    /// Everything else
    Other,
}

/// The longest name compared (`GEORADIUSBYMEMBER_RO` has 20 bytes); longer ones match nothing.
const NAME_MAX: usize = 24;

/// `name` upper-cased into `out`, or None when it is longer than [`NAME_MAX`].
fn upper<'a>(name: &[u8], out: &'a mut [u8; NAME_MAX]) -> Option<&'a [u8]> {
    let out = out.get_mut(..name.len())?;
    for (o, b) in out.iter_mut().zip(name) {
        *o = b.to_ascii_uppercase();
    }
    Some(out)
}

/// Classifies a parsed command from `buf`, case-insensitively, without allocating.
pub fn classify(buf: &[u8], cmd: &Command) -> Class {
    let Some(name) = cmd.arg(buf, 0) else {
        return Class::Other;
    };
    let mut up = [0u8; NAME_MAX];
    let Some(name) = upper(name, &mut up) else {
        return Class::Other;
    };
    match name {
        b"AUTH" => Class::Auth,
        b"HELLO" => Class::Hello,
        b"SELECT" => Class::Select,
        b"CLIENT" => {
            let sub = cmd.arg(buf, 1).unwrap_or_default();
            if sub.eq_ignore_ascii_case(b"SETNAME") || sub.eq_ignore_ascii_case(b"SETINFO") {
                Class::ClientSetName
            } else {
                Class::ClientOther
            }
        }
        b"MULTI" => Class::Multi,
        b"EXEC" => Class::Exec,
        b"DISCARD" => Class::Discard,
        b"WATCH" => Class::Watch,
        b"UNWATCH" => Class::Unwatch,
        b"SUBSCRIBE" | b"PSUBSCRIBE" | b"SSUBSCRIBE" => Class::Subscribe,
        b"UNSUBSCRIBE" | b"PUNSUBSCRIBE" | b"SUNSUBSCRIBE" => Class::Unsubscribe,
        b"BLPOP" | b"BRPOP" | b"BRPOPLPUSH" | b"BLMOVE" | b"BLMPOP" | b"BZPOPMIN" | b"BZPOPMAX"
        | b"BZMPOP" | b"WAIT" | b"WAITAOF" => Class::Blocking,
        b"XREAD" | b"XREADGROUP" if cmd.has_block => Class::Blocking,
        b"QUIT" => Class::Quit,
        b"RESET" => Class::Reset,
        b"MONITOR" => Class::Monitor,
        _ => Class::Other,
    }
}

/// For `WAIT` and `WAITAOF`, the reply that confirms nothing (no replica, no fsync): what the
/// proxy answers when the writes such a call asks about went to a master that is no longer
/// the one it would be sent to. None for every other command.
pub fn confirms_nothing(buf: &[u8], cmd: &Command) -> Option<&'static [u8]> {
    let name = cmd.arg(buf, 0)?;
    if name.eq_ignore_ascii_case(b"WAIT") {
        Some(b":0\r\n")
    } else if name.eq_ignore_ascii_case(b"WAITAOF") {
        Some(b"*2\r\n:0\r\n:0\r\n")
    } else {
        None
    }
}

/// Whether the command name (case-insensitive) is a read-only command that the read port may
/// send to a replica. TOUCH is included: it only updates access times, which replicas allow.
pub fn is_read_only(name: &[u8]) -> bool {
    let mut up = [0u8; NAME_MAX];
    let Some(name) = upper(name, &mut up) else {
        return false;
    };
    matches!(
        name,
        // strings
        b"GET" | b"MGET" | b"STRLEN" | b"GETRANGE" | b"SUBSTR" | b"LCS"
        // keyspace
        | b"EXISTS" | b"TTL" | b"PTTL" | b"EXPIRETIME" | b"PEXPIRETIME" | b"TYPE" | b"SCAN"
        | b"KEYS" | b"DBSIZE" | b"RANDOMKEY" | b"OBJECT" | b"MEMORY" | b"DUMP" | b"TOUCH"
        // hashes
        | b"HGET" | b"HMGET" | b"HGETALL" | b"HKEYS" | b"HVALS" | b"HLEN" | b"HEXISTS"
        | b"HSTRLEN" | b"HSCAN" | b"HRANDFIELD"
        // lists
        | b"LRANGE" | b"LLEN" | b"LINDEX" | b"LPOS"
        // sets
        | b"SCARD" | b"SISMEMBER" | b"SMISMEMBER" | b"SMEMBERS" | b"SRANDMEMBER" | b"SSCAN"
        | b"SINTER" | b"SUNION" | b"SDIFF" | b"SINTERCARD"
        // sorted sets
        | b"ZCARD" | b"ZCOUNT" | b"ZRANGE" | b"ZRANGEBYSCORE" | b"ZREVRANGE"
        | b"ZREVRANGEBYSCORE" | b"ZRANK" | b"ZREVRANK" | b"ZSCORE" | b"ZMSCORE" | b"ZSCAN"
        | b"ZLEXCOUNT" | b"ZRANGEBYLEX" | b"ZREVRANGEBYLEX" | b"ZRANDMEMBER" | b"ZINTER"
        | b"ZUNION" | b"ZDIFF" | b"ZINTERCARD"
        // streams
        | b"XRANGE" | b"XREVRANGE" | b"XLEN" | b"XINFO" | b"XPENDING"
        // bitmaps, hyperloglogs, geo
        | b"BITCOUNT" | b"BITPOS" | b"GETBIT" | b"BITFIELD_RO" | b"PFCOUNT" | b"GEOPOS"
        | b"GEODIST" | b"GEOHASH" | b"GEOSEARCH" | b"GEORADIUS_RO" | b"GEORADIUSBYMEMBER_RO"
        // scripting, sorting
        | b"EVAL_RO" | b"EVALSHA_RO" | b"FCALL_RO" | b"SORT_RO"
        // server
        | b"PING" | b"ECHO" | b"TIME" | b"INFO" | b"COMMAND" | b"ROLE"
    )
}

/// For HELLO: the protocol version argument if present and it is `2` or `3`, e.g.
/// `HELLO 3 AUTH u p` -> Some(3). None for other commands, a bare `HELLO`, `HELLO AUTH ...`
/// or another version (which Redis refuses with NOPROTO).
pub fn hello_protocol(buf: &[u8], cmd: &Command) -> Option<u8> {
    if !cmd.arg(buf, 0)?.eq_ignore_ascii_case(b"HELLO") {
        return None;
    }
    match cmd.arg(buf, 1)? {
        b"2" => Some(2),
        b"3" => Some(3),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::resp::{encode_command, parse_command};

    fn class_of(args: &[&[u8]]) -> Class {
        let buf = encode_command(args);
        let cmd = parse_command(&buf)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("{args:?}"));
        let inline = [args.join(&b' '), b"\r\n".to_vec()].concat();
        let inline_cmd = parse_command(&inline)
            .ok()
            .flatten()
            .unwrap_or_else(|| panic!("{args:?}"));
        let class = classify(&buf, &cmd);
        assert_eq!(class, classify(&inline, &inline_cmd), "inline {args:?}");
        class
    }

    #[test]
    fn classes() {
        let cases: &[(&[&[u8]], Class)] = &[
            (&[b"AUTH", b"pw"], Class::Auth),
            (&[b"auth", b"user", b"pw"], Class::Auth),
            (&[b"HELLO", b"3", b"AUTH", b"u", b"p"], Class::Hello),
            (&[b"hello"], Class::Hello),
            (&[b"Select", b"2"], Class::Select),
            (&[b"CLIENT", b"SETNAME", b"app"], Class::ClientSetName),
            (&[b"CLIENT", b"setname", b"x"], Class::ClientSetName),
            (
                &[b"client", b"SetInfo", b"LIB-NAME", b"redis-rs"],
                Class::ClientSetName,
            ),
            (&[b"CLIENT", b"ID"], Class::ClientOther),
            (&[b"client", b"kill", b"ID", b"3"], Class::ClientOther),
            (&[b"CLIENT", b"TRACKING", b"on"], Class::ClientOther),
            (&[b"CLIENT"], Class::ClientOther),
            (&[b"MULTI"], Class::Multi),
            (&[b"exec"], Class::Exec),
            (&[b"discard"], Class::Discard),
            (&[b"WATCH", b"a", b"b"], Class::Watch),
            (&[b"unwatch"], Class::Unwatch),
            (&[b"SUBSCRIBE", b"a"], Class::Subscribe),
            (&[b"psubscribe", b"a*"], Class::Subscribe),
            (&[b"SSUBSCRIBE", b"s"], Class::Subscribe),
            (&[b"UNSUBSCRIBE"], Class::Unsubscribe),
            (&[b"punsubscribe", b"a*"], Class::Unsubscribe),
            (&[b"sunsubscribe"], Class::Unsubscribe),
            (&[b"BLPOP", b"q", b"0"], Class::Blocking),
            (&[b"brpop", b"q", b"1.5"], Class::Blocking),
            (&[b"BRPOPLPUSH", b"a", b"b", b"0"], Class::Blocking),
            (
                &[b"blmove", b"a", b"b", b"LEFT", b"RIGHT", b"0"],
                Class::Blocking,
            ),
            (&[b"BLMPOP", b"0", b"1", b"a", b"LEFT"], Class::Blocking),
            (&[b"bzpopmin", b"z", b"0"], Class::Blocking),
            (&[b"BZPOPMAX", b"z", b"0"], Class::Blocking),
            (&[b"BZMPOP", b"0", b"1", b"z", b"MIN"], Class::Blocking),
            (&[b"WAIT", b"1", b"0"], Class::Blocking),
            (&[b"waitaof", b"1", b"0", b"0"], Class::Blocking),
            (
                &[b"XREAD", b"BLOCK", b"0", b"STREAMS", b"s", b"$"],
                Class::Blocking,
            ),
            (
                &[
                    b"XREADGROUP",
                    b"GROUP",
                    b"g",
                    b"c",
                    b"COUNT",
                    b"1",
                    b"BLOCK",
                    b"0",
                    b"STREAMS",
                    b"s",
                    b">",
                ],
                Class::Blocking,
            ),
            (
                &[
                    b"xread", b"count", b"1", b"block", b"10", b"streams", b"s", b"0",
                ],
                Class::Blocking,
            ),
            (
                &[b"XREAD", b"COUNT", b"1", b"STREAMS", b"s", b"0"],
                Class::Other,
            ),
            (
                &[b"XREADGROUP", b"GROUP", b"g", b"c", b"STREAMS", b"s", b">"],
                Class::Other,
            ),
            // BLOCK is not special to other commands.
            (&[b"SET", b"BLOCK", b"1"], Class::Other),
            (&[b"QUIT"], Class::Quit),
            (&[b"reset"], Class::Reset),
            (&[b"monitor"], Class::Monitor),
            (&[b"GET", b"k"], Class::Other),
            (&[b"AUTHX"], Class::Other),
            (&[b"SELECTSELECTSELECTSELECTSELECT"], Class::Other),
        ];
        for &(args, class) in cases {
            assert_eq!(class_of(args), class, "{args:?}");
        }
        // An empty command has no class.
        let cmd = parse_command(b"\r\n").ok().flatten();
        assert_eq!(cmd.map(|c| classify(b"\r\n", &c)), Some(Class::Other));
    }

    #[test]
    fn read_only() {
        for name in [
            &b"GET"[..],
            b"get",
            b"MGet",
            b"hgetall",
            b"ZRANGEBYSCORE",
            b"GEORADIUSBYMEMBER_RO",
            b"eval_ro",
            b"TOUCH",
            b"PING",
            b"INFO",
            b"SCAN",
        ] {
            assert!(is_read_only(name), "{}", String::from_utf8_lossy(name));
        }
        for name in [
            &b"SET"[..],
            b"del",
            b"EVAL",
            b"GEORADIUS",
            b"FLUSHALL",
            b"GETDEL",
            b"GETEX",
            b"",
            b"GEORADIUSBYMEMBER_RO_TOO_LONG_NAME",
            b"G\xffT",
        ] {
            assert!(!is_read_only(name), "{}", String::from_utf8_lossy(name));
        }
    }

    #[test]
    fn hello_versions() {
        let version = |args: &[&[u8]]| {
            let buf = encode_command(args);
            let cmd = parse_command(&buf).ok().flatten();
            cmd.and_then(|c| hello_protocol(&buf, &c))
        };
        assert_eq!(version(&[b"HELLO", b"3", b"AUTH", b"u", b"p"]), Some(3));
        assert_eq!(version(&[b"hello", b"2"]), Some(2));
        assert_eq!(version(&[b"HELLO"]), None);
        assert_eq!(version(&[b"HELLO", b"AUTH", b"u", b"p"]), None);
        assert_eq!(version(&[b"HELLO", b"4"]), None);
        assert_eq!(version(&[b"HELLO", b"03"]), None);
        assert_eq!(version(&[b"ECHO", b"3"]), None);
    }
}
