//! The RESP scanners on arbitrary bytes never panic, and on valid streams split anywhere find
//! exactly the frames that were sent.

use proptest::prelude::*;
use vd_proxy::command::{classify, hello_protocol, is_read_only};
use vd_proxy::resp::{
    encode_command, error_code, parse_command, parse_reply, pubsub_event, ReplyKind, HEAD_ARGS,
};

/// A reply to encode: every RESP2 and RESP3 type.
#[derive(Debug, Clone)]
enum Node {
    Simple(String),
    Error(String),
    Integer(i64),
    Bulk(Vec<u8>),
    NullBulk,
    NullArray,
    Null,
    Double(f64),
    Boolean(bool),
    BigNumber(String),
    BlobError(Vec<u8>),
    Verbatim(Vec<u8>),
    Array(Vec<Node>),
    Map(Vec<(Node, Node)>),
    Set(Vec<Node>),
    Push(Vec<Node>),
    /// An attribute and the frame it annotates.
    Attr(Vec<(Node, Node)>, Box<Node>),
}

impl Node {
    /// The kind a scan reports for this frame.
    fn kind(&self) -> ReplyKind {
        match self {
            Node::Simple(_) => ReplyKind::Simple,
            Node::Error(_) => ReplyKind::Error,
            Node::Integer(_) => ReplyKind::Integer,
            Node::Bulk(_) | Node::NullBulk => ReplyKind::Bulk,
            Node::NullArray | Node::Array(_) => ReplyKind::Array,
            Node::Null => ReplyKind::Null,
            Node::Double(_) => ReplyKind::Double,
            Node::Boolean(_) => ReplyKind::Boolean,
            Node::BigNumber(_) => ReplyKind::BigNumber,
            Node::BlobError(_) => ReplyKind::BlobError,
            Node::Verbatim(_) => ReplyKind::Verbatim,
            Node::Map(_) => ReplyKind::Map,
            Node::Set(_) => ReplyKind::Set,
            Node::Push(_) => ReplyKind::Push,
            Node::Attr(_, inner) => inner.kind(),
        }
    }

    fn encode(&self, out: &mut Vec<u8>) {
        let blob = |out: &mut Vec<u8>, t: char, b: &[u8]| {
            out.extend_from_slice(format!("{t}{}\r\n", b.len()).as_bytes());
            out.extend_from_slice(b);
            out.extend_from_slice(b"\r\n");
        };
        let pairs = |out: &mut Vec<u8>, t: char, p: &[(Node, Node)]| {
            out.extend_from_slice(format!("{t}{}\r\n", p.len()).as_bytes());
            for (k, v) in p {
                k.encode(out);
                v.encode(out);
            }
        };
        let list = |out: &mut Vec<u8>, t: char, l: &[Node]| {
            out.extend_from_slice(format!("{t}{}\r\n", l.len()).as_bytes());
            for n in l {
                n.encode(out);
            }
        };
        match self {
            Node::Simple(s) => out.extend_from_slice(format!("+{s}\r\n").as_bytes()),
            Node::Error(s) => out.extend_from_slice(format!("-{s}\r\n").as_bytes()),
            Node::Integer(i) => out.extend_from_slice(format!(":{i}\r\n").as_bytes()),
            Node::Bulk(b) => blob(out, '$', b),
            Node::NullBulk => out.extend_from_slice(b"$-1\r\n"),
            Node::NullArray => out.extend_from_slice(b"*-1\r\n"),
            Node::Null => out.extend_from_slice(b"_\r\n"),
            Node::Double(d) => out.extend_from_slice(format!(",{d}\r\n").as_bytes()),
            Node::Boolean(b) => out.extend_from_slice(if *b { b"#t\r\n" } else { b"#f\r\n" }),
            Node::BigNumber(s) => out.extend_from_slice(format!("({s}\r\n").as_bytes()),
            Node::BlobError(b) => blob(out, '!', b),
            Node::Verbatim(b) => {
                let mut v = b"txt:".to_vec();
                v.extend_from_slice(b);
                blob(out, '=', &v);
            }
            Node::Array(l) => list(out, '*', l),
            Node::Set(l) => list(out, '~', l),
            Node::Push(l) => list(out, '>', l),
            Node::Map(p) => pairs(out, '%', p),
            Node::Attr(p, inner) => {
                pairs(out, '|', p);
                inner.encode(out);
            }
        }
    }
}

fn leaf() -> impl Strategy<Value = Node> {
    let line = "[a-zA-Z0-9 _.:-]{0,12}";
    prop_oneof![
        line.prop_map(Node::Simple),
        line.prop_map(Node::Error),
        any::<i64>().prop_map(Node::Integer),
        prop::collection::vec(any::<u8>(), 0..24).prop_map(Node::Bulk),
        Just(Node::NullBulk),
        Just(Node::NullArray),
        Just(Node::Null),
        any::<f64>().prop_map(Node::Double),
        any::<bool>().prop_map(Node::Boolean),
        "-?[1-9][0-9]{0,40}".prop_map(Node::BigNumber),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(Node::BlobError),
        prop::collection::vec(any::<u8>(), 0..16).prop_map(Node::Verbatim),
    ]
}

fn node() -> impl Strategy<Value = Node> {
    leaf().prop_recursive(5, 48, 5, |inner| {
        let pairs = prop::collection::vec((inner.clone(), inner.clone()), 0..3);
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..5).prop_map(Node::Array),
            prop::collection::vec(inner.clone(), 0..5).prop_map(Node::Set),
            prop::collection::vec(inner.clone(), 0..5).prop_map(Node::Push),
            pairs.clone().prop_map(Node::Map),
            (pairs, inner).prop_map(|(p, n)| Node::Attr(p, Box::new(n))),
        ]
    })
}

/// Runs every scanner and accessor on `buf`; a found frame lies within it.
fn scan_everything(buf: &[u8]) {
    if let Ok(Some(r)) = parse_reply(buf) {
        assert!(r.len > 0 && r.len <= buf.len(), "{r:?}");
        assert!(r.start < r.len, "{r:?}");
        let _ = error_code(buf, &r);
        let _ = pubsub_event(buf, &r);
        // On a buffer the reply did not come from, too.
        let _ = error_code(&buf[..r.len / 2], &r);
        let _ = pubsub_event(&buf[..r.len / 2], &r);
    }
    if let Ok(Some(c)) = parse_command(buf) {
        assert!(c.len > 0 && c.len <= buf.len(), "{c:?}");
        for i in 0..HEAD_ARGS + 1 {
            if let Some(arg) = c.arg(buf, i) {
                assert!(i < c.argc);
                let _ = is_read_only(arg);
            }
        }
        for (start, end) in c.head.iter().take(c.argc) {
            assert!(start <= end && *end <= c.len, "{c:?}");
        }
        let _ = classify(buf, &c);
        let _ = hello_protocol(buf, &c);
        let _ = classify(&buf[..c.len / 2], &c);
    }
}

/// Bytes that look like RESP more often than uniform noise does.
fn resp_ish() -> impl Strategy<Value = Vec<u8>> {
    let token = prop_oneof![
        prop::sample::select(vec![
            &b"*"[..],
            b"$",
            b"+",
            b"-",
            b":",
            b"%",
            b"~",
            b">",
            b"|",
            b"_",
            b",",
            b"#",
            b"(",
            b"!",
            b"=",
            b"\r\n",
            b"\r",
            b"\n",
            b"-1",
            b"0",
            b"1",
            b"2",
            b"3",
            b"?",
            b" ",
            b"BLOCK",
            b"CLIENT",
            b"setname",
            b"HELLO",
            b"XREAD",
        ])
        .prop_map(<[u8]>::to_vec),
        prop::collection::vec(any::<u8>(), 1..4),
    ];
    prop::collection::vec(token, 0..64).prop_map(|t| t.concat())
}

/// Scans `buf` frame by frame with `parse`, returning each frame's length and where it stopped.
fn frames<T>(
    buf: &[u8],
    parse: impl Fn(&[u8]) -> Result<Option<T>, vd_proxy::resp::RespError>,
    len: impl Fn(&T) -> usize,
) -> (Vec<T>, usize) {
    let mut found = Vec::new();
    let mut pos = 0;
    loop {
        match parse(&buf[pos..]) {
            Ok(Some(x)) => {
                let n = len(&x);
                assert!(n > 0);
                pos += n;
                found.push(x);
            }
            Ok(None) => return (found, pos),
            Err(e) => panic!("valid stream refused at {pos}: {e}"),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn arbitrary_bytes_never_panic(buf in prop::collection::vec(any::<u8>(), 0..512)) {
        scan_everything(&buf);
    }

    #[test]
    fn resp_like_bytes_never_panic(buf in resp_ish()) {
        scan_everything(&buf);
    }

    #[test]
    fn mangled_replies_never_panic(
        node in node(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), any::<u8>()), 1..4),
    ) {
        let mut buf = Vec::new();
        node.encode(&mut buf);
        for (at, byte) in edits {
            let at = at.index(buf.len());
            buf[at] = byte;
        }
        scan_everything(&buf);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn replies_split_anywhere(
        nodes in prop::collection::vec(node(), 1..=5),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut stream = Vec::new();
        let mut ends = Vec::new();
        for n in &nodes {
            n.encode(&mut stream);
            ends.push(stream.len());
        }
        let cut = cut.index(stream.len() + 1);
        let whole = ends.iter().filter(|&&e| e <= cut).count();

        let (found, pos) = frames(&stream[..cut], parse_reply, |r| r.len);
        prop_assert_eq!(found.len(), whole);
        prop_assert_eq!(pos, if whole == 0 { 0 } else { ends[whole - 1] });

        let (rest, end) = frames(&stream[pos..], parse_reply, |r| r.len);
        prop_assert_eq!(pos + end, stream.len());
        let mut start = 0;
        for (i, r) in found.iter().chain(&rest).enumerate() {
            prop_assert_eq!(start + r.len, ends[i]);
            prop_assert_eq!(r.kind, nodes[i].kind());
            start = ends[i];
        }
        prop_assert_eq!(found.len() + rest.len(), nodes.len());
    }

    #[test]
    fn commands_split_anywhere(
        commands in prop::collection::vec(
            prop::collection::vec(
                prop_oneof![
                    prop::collection::vec(any::<u8>(), 0..12),
                    prop::sample::select(vec![&b""[..], b"\r\n", b"BLOCK", b"block", b"$1\r\n"])
                        .prop_map(<[u8]>::to_vec),
                ],
                0..8,
            ),
            1..=5,
        ),
        cut in any::<prop::sample::Index>(),
    ) {
        let mut stream = Vec::new();
        let mut ends = Vec::new();
        for args in &commands {
            let args: Vec<&[u8]> = args.iter().map(Vec::as_slice).collect();
            stream.extend_from_slice(&encode_command(&args));
            ends.push(stream.len());
        }
        let cut = cut.index(stream.len() + 1);
        let whole = ends.iter().filter(|&&e| e <= cut).count();

        let (found, pos) = frames(&stream[..cut], parse_command, |c| c.len);
        prop_assert_eq!(found.len(), whole);
        prop_assert_eq!(pos, if whole == 0 { 0 } else { ends[whole - 1] });

        let (rest, end) = frames(&stream[pos..], parse_command, |c| c.len);
        prop_assert_eq!(pos + end, stream.len());
        let mut start = 0;
        for (i, c) in found.iter().chain(&rest).enumerate() {
            let args = &commands[i];
            prop_assert_eq!(start + c.len, ends[i]);
            prop_assert_eq!(c.argc, args.len());
            let frame = &stream[start..ends[i]];
            for (j, arg) in args.iter().enumerate().take(HEAD_ARGS) {
                prop_assert_eq!(c.arg(frame, j), Some(arg.as_slice()));
            }
            let block = args.iter().skip(1).any(|a| a.eq_ignore_ascii_case(b"BLOCK"));
            prop_assert_eq!(c.has_block, block);
            start = ends[i];
        }
        prop_assert_eq!(found.len() + rest.len(), commands.len());
    }
}
