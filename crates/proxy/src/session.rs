//! One client connection's state as the proxy must know it: how many replies are owed, what
//! a new upstream must be told again (HELLO/AUTH, SELECT, CLIENT SETNAME) and whether the
//! connection may move to another upstream between two commands. Pure: the engine feeds it
//! the commands it sends and the replies it forwards.

use crate::command::Class;
use std::collections::VecDeque;

/// A command sent upstream whose reply has not come back yet.
#[derive(Debug, Clone)]
struct Sent {
    class: Class,
    /// The command's bytes, kept where its reply may change what is replayed, or where the
    /// proxy may send it again (a blocking command the old master unblocked, a write it
    /// refused as a replica).
    bytes: Option<Vec<u8>>,
    /// For a WAIT: the oldest master lineage of the commands it asks about, given back should
    /// it fail.
    covers: Option<u64>,
}

/// What to do with a reply.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Pass it to the client.
    Forward,
    /// Swallow it and send these bytes again once the connection is on the current master:
    /// the upstream refused or abandoned the command without running it.
    Retry(Vec<u8>),
    /// Swallow it and send these bytes again to the same master a moment later: it refused
    /// the write until a replica is attached (`min-replicas-to-write`), as right after a
    /// promotion.
    RetryLater(Vec<u8>),
    /// Pass it, then close the connection (the reply to QUIT).
    ForwardAndClose,
}

/// The connection-level state.
#[derive(Debug, Default)]
pub struct Session {
    hello: Option<Vec<u8>>,
    auth: Option<Vec<u8>>,
    select: Option<Vec<u8>>,
    setname: Option<Vec<u8>>,
    in_multi: bool,
    watching: bool,
    subscribed: bool,
    /// [`Session::key`], computed once per change of state.
    key: Option<Vec<u8>>,
    sent: VecDeque<Sent>,
    /// The oldest master lineage (see [`crate::discovery::Target::lineage`]) a command that
    /// may write was sent under since the last WAIT.
    unconfirmed: Option<u64>,
}

impl Session {
    /// Records a command about to be written upstream. `retryable`: the engine may send it
    /// again if the upstream refuses it as a replica (it is the only command in flight).
    pub fn on_send(&mut self, class: Class, bytes: &[u8], retryable: bool) {
        let keep = matches!(
            class,
            Class::Auth | Class::Hello | Class::Select | Class::ClientSetName | Class::Blocking
        ) || (retryable && !self.in_multi);
        match class {
            Class::Multi => self.in_multi = true,
            Class::Subscribe => self.subscribed = true,
            _ => {}
        }
        if self.subscribed {
            // Replies no longer pair with commands (one confirmation per channel, messages in
            // between); a subscribed connection stays on its upstream for good.
            return;
        }
        self.sent.push_back(Sent {
            class,
            bytes: keep.then(|| bytes.to_vec()),
            covers: None,
        });
    }

    /// Records the master lineage the command just passed to [`Session::on_send`] went out
    /// under; `wait`: it is a WAIT or WAITAOF, which asks about the commands before it.
    pub fn on_sent_under(&mut self, lineage: u64, class: Class, wait: bool) {
        if self.subscribed {
            return;
        }
        if wait {
            let covers = self.unconfirmed.take();
            if let Some(last) = self.sent.back_mut() {
                last.covers = covers;
            }
        } else if matches!(class, Class::Other | Class::Exec | Class::Blocking) {
            self.unconfirmed = Some(self.unconfirmed.map_or(lineage, |l| l.min(lineage)));
        }
    }

    /// Whether a WAIT sent now, under `lineage`, would ask a master about writes another
    /// master took (before an unplanned switch): it must then be answered "none confirmed".
    pub fn wait_confirms_nothing(&self, lineage: u64) -> bool {
        self.unconfirmed.is_some_and(|l| l != lineage)
    }

    /// The proxy answered a WAIT itself: the client has been told that nothing before it is
    /// confirmed.
    pub fn wait_answered_here(&mut self) {
        self.unconfirmed = None;
    }

    /// Records a reply (not an out-of-band push) and says what to do with it.
    /// `error`: the reply's error code when it is an error (`READONLY`, `UNBLOCKED`, ...).
    pub fn on_reply(&mut self, error: Option<&[u8]>) -> Verdict {
        if self.subscribed {
            return Verdict::Forward;
        }
        let Some(sent) = self.sent.pop_front() else {
            return Verdict::Forward;
        };
        let ok = error.is_none();
        if let (false, Some(l)) = (ok, sent.covers) {
            // A WAIT that failed (or will be sent again) confirmed nothing.
            self.unconfirmed = Some(self.unconfirmed.map_or(l, |u| u.min(l)));
        }
        let slot = match sent.class {
            Class::Auth => Some(&mut self.auth),
            Class::Hello => Some(&mut self.hello),
            Class::Select => Some(&mut self.select),
            Class::ClientSetName => Some(&mut self.setname),
            _ => None,
        };
        if let Some(slot) = slot {
            if ok {
                // HELLO's AUTH outlives a later HELLO without one, as on the connection.
                let auth = (sent.class == Class::Hello)
                    .then(|| sent.bytes.as_deref().and_then(hello_auth))
                    .flatten();
                *slot = sent.bytes;
                if let Some(auth) = auth {
                    self.auth = Some(auth);
                }
                self.key = None;
            }
            return Verdict::Forward;
        }
        match sent.class {
            Class::Multi if !ok => self.in_multi = false,
            Class::Watch if ok => self.watching = true,
            Class::Unwatch => self.watching = false,
            Class::Exec | Class::Discard => {
                self.in_multi = false;
                self.watching = false;
            }
            Class::Reset => {
                let sent = std::mem::take(&mut self.sent);
                *self = Session {
                    sent,
                    ..Session::default()
                };
            }
            Class::Quit => return Verdict::ForwardAndClose,
            _ => {}
        }
        let alone = self.sent.is_empty();
        match (error, sent.bytes) {
            // Redis unblocks clients of a master that turns replica; the command did not run.
            (Some(b"UNBLOCKED"), Some(bytes)) if sent.class == Class::Blocking && alone => {
                Verdict::Retry(bytes)
            }
            // A replica refused a write: it did not run, and the new master will take it.
            (Some(b"READONLY"), Some(bytes))
                if alone && !self.in_multi && !self.watching && is_plain(sent.class) =>
            {
                Verdict::Retry(bytes)
            }
            (Some(b"NOREPLICAS"), Some(bytes))
                if alone && !self.in_multi && !self.watching && is_plain(sent.class) =>
            {
                Verdict::RetryLater(bytes)
            }
            _ => Verdict::Forward,
        }
    }

    /// Replies still owed by the upstream.
    pub fn outstanding(&self) -> usize {
        self.sent.len()
    }

    /// Nothing in flight but blocking commands: what a hold waits for. A blocked command may
    /// wait forever; the demotion unblocks it and [`Verdict::Retry`] moves it.
    pub fn quiescent(&self) -> bool {
        self.sent.iter().all(|s| s.class == Class::Blocking)
    }

    /// The connection carries state a new upstream cannot be given (a transaction, watched
    /// keys, subscriptions): it cannot move, only be closed between two commands.
    pub fn pinned(&self) -> bool {
        self.in_multi || self.watching || self.subscribed
    }

    /// Whether the connection is in pub/sub mode (replies are not counted).
    pub fn subscribed(&self) -> bool {
        self.subscribed
    }

    /// The connection state as one byte string (the replayed commands back to back, each a
    /// whole RESP frame, so different states never collide): clients with equal keys can
    /// share an upstream connection.
    pub fn key(&mut self) -> &[u8] {
        if self.key.is_none() {
            self.key = Some(self.replay().concat());
        }
        self.key.as_deref().unwrap_or_default()
    }

    /// The key this session would have once `bytes` (a state command of `class`) succeeded.
    pub fn key_after(&self, class: Class, bytes: &[u8]) -> Vec<u8> {
        let mut s = Session {
            hello: self.hello.clone(),
            auth: self.auth.clone(),
            select: self.select.clone(),
            setname: self.setname.clone(),
            ..Session::default()
        };
        s.on_send(class, bytes, false);
        s.on_reply(None);
        s.replay().concat()
    }

    /// What a new upstream must be sent before the client's next command, in order: AUTH
    /// (also the one a HELLO carried), HELLO, SELECT, CLIENT SETNAME.
    pub fn replay(&self) -> Vec<&[u8]> {
        [
            self.auth.as_deref(),
            self.hello.as_deref(),
            self.select.as_deref(),
            self.setname.as_deref(),
        ]
        .into_iter()
        .flatten()
        .collect()
    }
}

/// `AUTH user pass` as a command frame, when `hello` (a whole HELLO command) carries it.
fn hello_auth(hello: &[u8]) -> Option<Vec<u8>> {
    let cmd = crate::resp::parse_command(hello).ok()??;
    let at = (2..cmd.argc).find(|&i| {
        cmd.arg(hello, i)
            .is_some_and(|a| a.eq_ignore_ascii_case(b"AUTH"))
    })?;
    let (user, pass) = (cmd.arg(hello, at + 1)?, cmd.arg(hello, at + 2)?);
    let mut out = Vec::with_capacity(32 + user.len() + pass.len());
    out.extend_from_slice(b"*3\r\n$4\r\nAUTH\r\n");
    for a in [user, pass] {
        out.extend_from_slice(format!("${}\r\n", a.len()).as_bytes());
        out.extend_from_slice(a);
        out.extend_from_slice(b"\r\n");
    }
    Some(out)
}

/// Whether a command of this class may go over a shared upstream connection: it leaves no
/// state there, or (AUTH, HELLO, SELECT, SETNAME) only the state the connection was opened
/// with, which is part of its key.
pub fn shareable(c: Class) -> bool {
    matches!(
        c,
        Class::Other | Class::Auth | Class::Hello | Class::Select | Class::ClientSetName
    )
}

/// Whether the class changes connection state (and so the key).
pub fn changes_key(c: Class) -> bool {
    matches!(
        c,
        Class::Auth | Class::Hello | Class::Select | Class::ClientSetName
    )
}

fn is_plain(c: Class) -> bool {
    matches!(c, Class::Other | Class::Blocking)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn remembers_what_succeeded_in_replay_order() {
        let mut s = Session::default();
        s.on_send(Class::Select, b"SELECT 2", false);
        s.on_send(Class::Auth, b"AUTH bad", false);
        s.on_send(Class::Auth, b"AUTH pw", false);
        s.on_send(Class::ClientSetName, b"CLIENT SETNAME app", false);
        assert_eq!(s.outstanding(), 4);
        assert_eq!(s.on_reply(None), Verdict::Forward);
        assert_eq!(s.on_reply(Some(b"WRONGPASS")), Verdict::Forward);
        assert_eq!(s.on_reply(None), Verdict::Forward);
        assert_eq!(s.on_reply(None), Verdict::Forward);
        let r: Vec<&[u8]> = vec![b"AUTH pw", b"SELECT 2", b"CLIENT SETNAME app"];
        assert_eq!(s.replay(), r);
        s.on_send(Class::Hello, b"HELLO 3 AUTH default pw\r\n", false);
        s.on_reply(None);
        assert_eq!(
            s.replay()[0],
            b"*3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$2\r\npw\r\n"
        );
        assert_eq!(s.replay()[1], b"HELLO 3 AUTH default pw\r\n");
        // A later HELLO without AUTH keeps the connection's authentication.
        s.on_send(Class::Hello, b"HELLO 3", false);
        s.on_reply(None);
        assert_eq!(
            s.replay()[0],
            b"*3\r\n$4\r\nAUTH\r\n$7\r\ndefault\r\n$2\r\npw\r\n"
        );
        assert_eq!(s.replay()[1], b"HELLO 3");
    }

    #[test]
    fn transactions_and_watches_pin_until_they_end() {
        let mut s = Session::default();
        s.on_send(Class::Watch, b"WATCH k", false);
        s.on_reply(None);
        assert!(s.pinned());
        s.on_send(Class::Multi, b"MULTI", false);
        s.on_send(Class::Other, b"SET k v", true);
        s.on_send(Class::Exec, b"EXEC", false);
        s.on_reply(None);
        // A write queued in a transaction is never retried alone.
        assert_eq!(s.on_reply(Some(b"READONLY")), Verdict::Forward);
        assert!(s.pinned());
        s.on_reply(None);
        assert!(!s.pinned());
        assert_eq!(s.outstanding(), 0);
    }

    #[test]
    fn refused_writes_and_unblocked_pops_are_retried_when_alone() {
        let mut s = Session::default();
        s.on_send(Class::Other, b"SET k v", true);
        assert_eq!(
            s.on_reply(Some(b"READONLY")),
            Verdict::Retry(b"SET k v".to_vec())
        );
        s.on_send(Class::Blocking, b"BLPOP q 0", true);
        assert!(s.quiescent());
        assert_eq!(
            s.on_reply(Some(b"UNBLOCKED")),
            Verdict::Retry(b"BLPOP q 0".to_vec())
        );
        s.on_send(Class::Other, b"SET k v", true);
        assert_eq!(
            s.on_reply(Some(b"NOREPLICAS")),
            Verdict::RetryLater(b"SET k v".to_vec())
        );
        // Pipelined: the refusal is the client's to see.
        s.on_send(Class::Other, b"SET a 1", false);
        s.on_send(Class::Other, b"SET b 2", false);
        assert!(!s.quiescent());
        assert_eq!(s.on_reply(Some(b"READONLY")), Verdict::Forward);
        assert_eq!(s.on_reply(Some(b"READONLY")), Verdict::Forward);
    }

    #[test]
    fn a_wait_vouches_only_for_writes_sent_under_its_own_lineage() {
        let send = |s: &mut Session, class: Class, bytes: &[u8], lineage: u64, wait: bool| {
            s.on_send(class, bytes, true);
            s.on_sent_under(lineage, class, wait);
        };
        // Writes and their WAIT under one lineage (a planned handover keeps it): forwarded.
        let mut s = Session::default();
        assert!(!s.wait_confirms_nothing(0), "nothing written yet");
        send(&mut s, Class::Other, b"SET a 1", 0, false);
        assert!(!s.wait_confirms_nothing(0));
        // An unplanned switch since the write: the WAIT must not be asked of the new master.
        assert!(s.wait_confirms_nothing(1));
        // State commands write nothing, so they leave nothing to confirm.
        let mut s = Session::default();
        send(&mut s, Class::Select, b"SELECT 1", 0, false);
        assert!(!s.wait_confirms_nothing(1));
        // A WAIT that was answered covers what came before it...
        let mut s = Session::default();
        send(&mut s, Class::Other, b"SET a 1", 0, false);
        send(&mut s, Class::Blocking, b"WAIT 1 0", 0, true);
        assert_eq!(s.on_reply(None), Verdict::Forward);
        assert_eq!(s.on_reply(None), Verdict::Forward);
        assert!(!s.wait_confirms_nothing(1));
        // ...but not a write sent after it, even before its reply.
        send(&mut s, Class::Other, b"SET b 1", 0, false);
        assert!(s.wait_confirms_nothing(1));
        // The oldest lineage counts: writes on both sides of a switch are not all confirmable.
        let mut s = Session::default();
        send(&mut s, Class::Other, b"SET a 1", 0, false);
        send(&mut s, Class::Other, b"SET b 1", 1, false);
        assert!(s.wait_confirms_nothing(1));
        s.wait_answered_here();
        assert!(!s.wait_confirms_nothing(1), "the client was told");
        // A WAIT the demoted master unblocked is sent again: it still asks about the old
        // master's writes.
        let mut s = Session::default();
        send(&mut s, Class::Other, b"SET a 1", 0, false);
        assert_eq!(s.on_reply(None), Verdict::Forward);
        send(&mut s, Class::Blocking, b"WAIT 1 0", 0, true);
        assert!(
            !s.wait_confirms_nothing(1),
            "while it is out, it covers them"
        );
        assert_eq!(
            s.on_reply(Some(b"UNBLOCKED")),
            Verdict::Retry(b"WAIT 1 0".to_vec())
        );
        assert!(s.wait_confirms_nothing(1));
    }

    #[test]
    fn subscriptions_pin_for_good_and_stop_counting() {
        let mut s = Session::default();
        s.on_send(Class::Subscribe, b"SUBSCRIBE a b", false);
        assert!(s.pinned() && s.subscribed());
        assert_eq!(s.outstanding(), 0);
        assert_eq!(s.on_reply(None), Verdict::Forward);
    }

    #[test]
    fn quit_closes_after_its_reply_and_reset_forgets() {
        let mut s = Session::default();
        s.on_send(Class::Select, b"SELECT 1", false);
        s.on_reply(None);
        s.on_send(Class::Reset, b"RESET", false);
        s.on_reply(None);
        assert!(s.replay().is_empty());
        s.on_send(Class::Quit, b"QUIT", false);
        assert_eq!(s.on_reply(None), Verdict::ForwardAndClose);
    }
}
