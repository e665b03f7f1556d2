//! Which upstream is the master: a pure decision over what the feed, the sentinels and the
//! upstreams' own `ROLE` answers say, so every source of truth is weighed in one place.

use std::collections::BTreeMap;

/// What one upstream last answered to `ROLE`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// `master`.
    Master,
    /// A replica; `true` when its link to the master is up.
    Replica(bool),
    /// No answer.
    Down,
}

/// Everything the decision weighs.
#[derive(Debug, Clone)]
pub struct Inputs<'a> {
    /// The controller's feed: its master, when it named one.
    pub feed: Option<&'a str>,
    /// What the sentinels last said.
    pub sentinel: Option<&'a str>,
    /// The master in use now.
    pub current: Option<&'a str>,
    /// Each upstream's latest `ROLE`.
    pub seen: &'a BTreeMap<String, Seen>,
}

static NONE_SEEN: BTreeMap<String, Seen> = BTreeMap::new();

impl Default for Inputs<'_> {
    fn default() -> Self {
        Self {
            feed: None,
            sentinel: None,
            current: None,
            seen: &NONE_SEEN,
        }
    }
}

/// The master to route to. A name is used only when its own `ROLE` says master (confirmed
/// before switching), in the order controller feed, sentinels, the current master; failing
/// those, the only upstream that says master. When nothing is confirmed the current choice
/// stays: a master that is briefly unreachable is not replaced by nothing.
pub fn master(i: &Inputs<'_>) -> Option<String> {
    let is_master = |a: &str| i.seen.get(a) == Some(&Seen::Master);
    for candidate in [i.feed, i.sentinel, i.current].into_iter().flatten() {
        if is_master(candidate) {
            return Some(candidate.to_string());
        }
    }
    let masters: Vec<&String> = i
        .seen
        .iter()
        .filter(|(_, s)| **s == Seen::Master)
        .map(|(a, _)| a)
        .collect();
    // Two masters and no confirmed word from the feed or the sentinels: keep what is in use
    // rather than guess which one the failover chose.
    if let [only] = masters.as_slice() {
        return Some(only.to_string());
    }
    i.current.map(str::to_string)
}

/// What decides whether commands are held.
#[derive(Debug, Clone, Copy)]
pub struct Hold<'a> {
    /// The feed asks for a hold now.
    pub asked: bool,
    /// How long the current hold has lasted, if one is on.
    pub held_for: Option<std::time::Duration>,
    /// A hold never lasts longer (the controller that asked may have died).
    pub max: std::time::Duration,
    /// The master in use.
    pub master: Option<&'a str>,
    /// The master the feed names.
    pub feed: Option<&'a str>,
}

/// The hold decision.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Holding {
    /// Hold new commands now.
    pub now: bool,
    /// The hold is on (asked, or released with its master not yet in use), even past `max`;
    /// once off, the next hold starts its own clock.
    pub on: bool,
}

/// A hold lasts past its release until the master the feed names is the one in use: released
/// commands must reach the new master, not the one just demoted. It ends after `max` anyway.
pub fn hold(h: &Hold<'_>) -> Holding {
    let on = h.asked || (h.held_for.is_some() && h.feed.is_some() && h.master != h.feed);
    Holding {
        now: on && h.held_for.is_some_and(|t| t < h.max),
        on,
    }
}

/// The replicas the read port may use: upstreams whose `ROLE` says replica with the link up.
pub fn readable(seen: &BTreeMap<String, Seen>) -> Vec<String> {
    seen.iter()
        .filter(|(_, s)| **s == Seen::Replica(true))
        .map(|(a, _)| a.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(v: &[(&str, Seen)]) -> BTreeMap<String, Seen> {
        v.iter().map(|(a, s)| (a.to_string(), *s)).collect()
    }

    #[test]
    fn the_feed_wins_once_role_confirms_it() {
        let s = seen(&[("a", Seen::Master), ("b", Seen::Master)]);
        let i = Inputs {
            feed: Some("b"),
            current: Some("a"),
            seen: &s,
            ..Default::default()
        };
        assert_eq!(master(&i).as_deref(), Some("b"));
        // Not yet promoted: stay on the current master.
        let s = seen(&[("a", Seen::Master), ("b", Seen::Replica(true))]);
        let i = Inputs {
            feed: Some("b"),
            current: Some("a"),
            seen: &s,
            ..Default::default()
        };
        assert_eq!(master(&i).as_deref(), Some("a"));
    }

    #[test]
    fn a_hold_outlasts_its_release_until_the_new_master_is_in_use() {
        use std::time::Duration;
        let h = |asked, held_for: Option<u64>, master, feed| {
            hold(&Hold {
                asked,
                held_for: held_for.map(Duration::from_millis),
                max: Duration::from_secs(5),
                master,
                feed,
            })
        };
        assert!(h(true, Some(10), Some("a"), Some("a")).now);
        // Released, but the proxy still routes to the demoted master: keep holding.
        assert!(h(false, Some(20), Some("a"), Some("b")).now);
        let done = h(false, Some(25), Some("b"), Some("b"));
        assert!(!done.now && !done.on);
        // A controller that never releases: the hold ends after max.
        let stale = h(true, Some(6000), Some("a"), Some("a"));
        assert!(!stale.now && stale.on);
        assert!(
            !h(false, None, Some("a"), Some("b")).now,
            "no hold was asked"
        );
    }

    #[test]
    fn sentinels_then_the_current_master() {
        let s = seen(&[("a", Seen::Master), ("c", Seen::Master)]);
        let i = Inputs {
            sentinel: Some("c"),
            current: Some("a"),
            seen: &s,
            ..Default::default()
        };
        assert_eq!(master(&i).as_deref(), Some("c"));
        let i = Inputs {
            current: Some("a"),
            seen: &s,
            ..Default::default()
        };
        assert_eq!(master(&i).as_deref(), Some("a"), "two masters: keep ours");
    }

    #[test]
    fn without_words_the_only_master_is_followed() {
        let s = seen(&[
            ("a", Seen::Down),
            ("b", Seen::Master),
            ("c", Seen::Replica(true)),
        ]);
        let i = Inputs {
            current: Some("a"),
            seen: &s,
            ..Default::default()
        };
        assert_eq!(master(&i).as_deref(), Some("b"));
        assert_eq!(readable(&s), vec!["c".to_string()]);
        let none = seen(&[("a", Seen::Down), ("b", Seen::Replica(false))]);
        let i = Inputs {
            current: Some("a"),
            seen: &none,
            ..Default::default()
        };
        assert_eq!(master(&i).as_deref(), Some("a"), "nothing confirmed: keep");
        assert!(readable(&none).is_empty());
    }

    #[test]
    fn a_stale_feed_naming_a_dead_pod_yields_to_the_only_master() {
        let s = seen(&[("a", Seen::Down), ("b", Seen::Master)]);
        let i = Inputs {
            feed: Some("a"),
            current: Some("a"),
            seen: &s,
            ..Default::default()
        };
        // The feed names an upstream that is down: the only master is used meanwhile.
        assert_eq!(master(&i).as_deref(), Some("b"));
    }
}
