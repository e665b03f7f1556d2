//! The rollout planner: given the desired replica count and spec hash and the pods that exist,
//! decide what to do next. Level-triggered: the server calls it whenever anything changes and
//! executes the returned actions; nothing here remembers the previous call.

use serde::{Deserialize, Serialize};

/// How pods are created and replaced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Ordering {
    /// Statefulset: create bottom-up, each waiting for the one below to be ready; remove and
    /// replace top-down, one at a time.
    Ordered,
    /// Deployment: create and remove in parallel; replace one at a time.
    Parallel,
}

/// A pod as the planner sees it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObservedPod {
    /// Its ordinal.
    pub ordinal: u32,
    /// The spec hash it was started with.
    pub hash: String,
    /// Whether readiness passes.
    pub ready: bool,
    /// Whether it is being stopped already.
    pub terminating: bool,
}

/// What the workload should look like.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Desired {
    /// Replica count.
    pub replicas: u32,
    /// Spec hash of the desired pod template.
    pub hash: String,
    /// Ordered (statefulset) or parallel (deployment).
    pub ordering: Ordering,
    /// The pod the others follow (a replicated redis's master). An ordered start creates it
    /// first, so after a full stop the others come back following it rather than it coming
    /// back to find them running without it (which looks like its crash). A rollout replaces
    /// it only once every other pod is current and ready: it hands its work to an up-to-date
    /// peer first, so the work moves once, not at every step.
    pub anchor: Option<u32>,
}

/// One step for the executor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start the pod with this ordinal.
    Create(u32),
    /// Stop and remove the pod (its volumes stay).
    Remove(u32),
    /// Stop the pod and start it again with the desired spec.
    Replace(u32),
}

/// The planner's answer: actions to run now, or why it is waiting, or that all is converged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Plan {
    /// Execute these.
    Act(Vec<Action>),
    /// Nothing can be done until something changes.
    Wait(String),
    /// Desired state reached: every pod exists, is current and ready.
    Converged,
}

/// Decides the next step of a rollout.
pub fn plan(desired: &Desired, observed: &[ObservedPod]) -> Plan {
    let mut pods: Vec<&ObservedPod> = observed.iter().collect();
    pods.sort_by_key(|p| p.ordinal);
    let ordered = desired.ordering == Ordering::Ordered;

    if let Some(p) = pods.iter().find(|p| p.terminating) {
        if ordered {
            return Plan::Wait(format!("waiting for pod {} to stop", p.ordinal));
        }
    }
    let live: Vec<&ObservedPod> = pods.iter().copied().filter(|p| !p.terminating).collect();

    // 1. Scale down: top-down, one at a time when ordered.
    let extra: Vec<u32> = live
        .iter()
        .filter(|p| p.ordinal >= desired.replicas)
        .map(|p| p.ordinal)
        .collect();
    if !extra.is_empty() {
        return Plan::Act(if ordered {
            vec![Action::Remove(*extra.iter().max().unwrap_or(&0))]
        } else {
            extra.into_iter().map(Action::Remove).collect()
        });
    }

    // 2. Create missing pods: bottom-up when ordered, all at once otherwise. A pod that is
    //    stopping (removed or being replaced) still holds its ordinal.
    //    The anchor, when there is one, comes first in that order.
    let find = |o: u32| live.iter().find(|p| p.ordinal == o);
    let anchor = desired.anchor.filter(|a| *a < desired.replicas);
    let order: Vec<u32> = anchor
        .into_iter()
        .chain((0..desired.replicas).filter(|o| Some(*o) != anchor))
        .collect();
    let mut creates = Vec::new();
    for (i, &o) in order.iter().enumerate() {
        if pods.iter().any(|p| p.ordinal == o) {
            continue;
        }
        if ordered {
            if let Some(blocker) = order[..i]
                .iter()
                .find(|&&lo| !find(lo).is_some_and(|p| p.ready))
            {
                return Plan::Wait(format!("pod {o} waits for pod {blocker} to be ready"));
            }
            return Plan::Act(vec![Action::Create(o)]);
        }
        creates.push(Action::Create(o));
    }
    if !creates.is_empty() {
        return Plan::Act(creates);
    }
    if !ordered && pods.iter().any(|p| p.terminating) {
        return Plan::Wait("waiting for stopping pods".into());
    }

    // 3. Replace outdated pods top-down. An outdated pod that is not ready serves nobody, so it
    //    goes first; otherwise an unready pod halts the rollout. The anchor (unless it is
    //    down anyway) waits until every other pod is current.
    let outdated = |p: &&&ObservedPod| p.hash != desired.hash;
    if let Some(p) = live.iter().rev().filter(outdated).find(|p| !p.ready) {
        return Plan::Act(vec![Action::Replace(p.ordinal)]);
    }
    if let Some(p) = live.iter().find(|p| !p.ready) {
        return if live.iter().any(|p| p.hash != desired.hash) {
            Plan::Wait(format!("rollout halted: pod {} is not ready", p.ordinal))
        } else {
            Plan::Wait(format!("pod {} is not ready", p.ordinal))
        };
    }
    let is_last = |p: &&&ObservedPod| Some(p.ordinal) == desired.anchor;
    if let Some(p) = live.iter().rev().filter(outdated).find(|p| !is_last(p)) {
        return Plan::Act(vec![Action::Replace(p.ordinal)]);
    }
    if let Some(p) = live.iter().find(|p| outdated(p) && is_last(p)) {
        return Plan::Act(vec![Action::Replace(p.ordinal)]);
    }
    Plan::Converged
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn pod(ordinal: u32, hash: &str, ready: bool) -> ObservedPod {
        ObservedPod {
            ordinal,
            hash: hash.into(),
            ready,
            terminating: false,
        }
    }
    fn sts(replicas: u32) -> Desired {
        Desired {
            replicas,
            hash: "new".into(),
            ordering: Ordering::Ordered,
            anchor: None,
        }
    }

    #[test]
    fn creates_bottom_up() {
        assert_eq!(plan(&sts(3), &[]), Plan::Act(vec![Action::Create(0)]));
        assert!(matches!(
            plan(&sts(3), &[pod(0, "new", false)]),
            Plan::Wait(_)
        ));
        assert_eq!(
            plan(&sts(3), &[pod(0, "new", true)]),
            Plan::Act(vec![Action::Create(1)])
        );
    }

    #[test]
    fn the_anchor_is_created_first_then_the_rest_bottom_up() {
        let anchored = |a: u32| Desired {
            anchor: Some(a),
            ..sts(3)
        };
        // (pods as (ordinal, ready), anchor) -> what is created, or None for a wait
        type Case<'a> = (&'a [(u32, bool)], u32, Option<u32>);
        let cases: &[Case] = &[
            (&[], 1, Some(1)),
            (&[(1, false)], 1, None),
            (&[(1, true)], 1, Some(0)),
            (&[(1, true), (0, false)], 1, None),
            (&[(1, true), (0, true)], 1, Some(2)),
            // A pod that runs already is not stopped for the order's sake.
            (&[(0, true)], 2, Some(2)),
            (&[(0, true), (2, true)], 2, Some(1)),
            // An anchor beyond the replicas (being scaled away) orders nothing.
            (&[], 5, Some(0)),
        ];
        for (pods, a, want) in cases {
            let observed: Vec<ObservedPod> = pods.iter().map(|(o, r)| pod(*o, "new", *r)).collect();
            let got = plan(&anchored(*a), &observed);
            match want {
                Some(o) => assert_eq!(
                    got,
                    Plan::Act(vec![Action::Create(*o)]),
                    "{pods:?} anchor {a}"
                ),
                None => assert!(matches!(got, Plan::Wait(_)), "{pods:?} anchor {a}: {got:?}"),
            }
        }
    }

    #[test]
    fn scales_down_top_down() {
        let pods = [
            pod(0, "new", true),
            pod(1, "new", true),
            pod(2, "new", true),
        ];
        assert_eq!(plan(&sts(1), &pods), Plan::Act(vec![Action::Remove(2)]));
        let mut p2 = pods.clone();
        p2[2].terminating = true;
        assert!(matches!(plan(&sts(1), &p2), Plan::Wait(_)));
    }

    #[test]
    fn replaces_top_down_and_halts_on_unready() {
        let pods = [
            pod(0, "old", true),
            pod(1, "old", true),
            pod(2, "old", true),
        ];
        assert_eq!(plan(&sts(3), &pods), Plan::Act(vec![Action::Replace(2)]));
        let pods = [
            pod(0, "old", true),
            pod(1, "old", true),
            pod(2, "new", false),
        ];
        assert!(matches!(plan(&sts(3), &pods), Plan::Wait(w) if w.contains("halted")));
        let pods = [
            pod(0, "old", true),
            pod(1, "old", true),
            pod(2, "new", true),
        ];
        assert_eq!(plan(&sts(3), &pods), Plan::Act(vec![Action::Replace(1)]));
    }

    #[test]
    fn the_last_pod_goes_after_every_other_is_current_and_ready() {
        let last = |l: u32| Desired {
            anchor: Some(l),
            ..sts(3)
        };
        // (pods as (hash, ready), the pod to replace last) -> what is replaced
        type Row<'a> = (&'a [(&'a str, bool)], u32, Option<u32>);
        let table: [Row; 6] = [
            (&[("old", true), ("old", true), ("old", true)], 0, Some(2)),
            (&[("old", true), ("old", true), ("old", true)], 2, Some(1)),
            (&[("old", true), ("new", true), ("old", true)], 2, Some(0)),
            (&[("new", true), ("new", true), ("old", true)], 2, Some(2)),
            // A replaced pod not ready yet halts the rollout before the last one.
            (&[("new", true), ("new", false), ("old", true)], 2, None),
            // A last pod that is down serves nobody: it goes at once.
            (&[("old", true), ("old", true), ("old", false)], 2, Some(2)),
        ];
        for (pods, l, want) in table {
            let observed: Vec<ObservedPod> = pods
                .iter()
                .enumerate()
                .map(|(o, (h, r))| pod(o as u32, h, *r))
                .collect();
            let got = plan(&last(l), &observed);
            match want {
                Some(o) => assert_eq!(
                    got,
                    Plan::Act(vec![Action::Replace(o)]),
                    "{pods:?} last {l}"
                ),
                None => assert!(matches!(got, Plan::Wait(_)), "{pods:?} last {l}: {got:?}"),
            }
        }
    }

    #[test]
    fn broken_outdated_pod_is_replaced_first() {
        let pods = [
            pod(0, "old", true),
            pod(1, "old", false),
            pod(2, "old", true),
        ];
        assert_eq!(plan(&sts(3), &pods), Plan::Act(vec![Action::Replace(1)]));
    }

    #[test]
    fn converges() {
        let pods = [pod(0, "new", true), pod(1, "new", true)];
        assert_eq!(plan(&sts(2), &pods), Plan::Converged);
        assert_eq!(plan(&sts(0), &[]), Plan::Converged);
    }

    #[test]
    fn deployment_is_parallel() {
        let d = Desired {
            replicas: 3,
            hash: "new".into(),
            ordering: Ordering::Parallel,
            anchor: None,
        };
        assert_eq!(
            plan(&d, &[]),
            Plan::Act(vec![
                Action::Create(0),
                Action::Create(1),
                Action::Create(2)
            ])
        );
        let pods = [
            pod(0, "old", true),
            pod(1, "old", true),
            pod(2, "old", true),
        ];
        assert_eq!(plan(&d, &pods), Plan::Act(vec![Action::Replace(2)]));
    }

    #[test]
    fn a_stopping_pod_keeps_its_ordinal() {
        let d = Desired {
            replicas: 2,
            hash: "new".into(),
            ordering: Ordering::Parallel,
            anchor: None,
        };
        let mut p1 = pod(1, "old", false);
        p1.terminating = true;
        assert!(matches!(
            plan(&d, &[pod(0, "new", true), p1]),
            Plan::Wait(_)
        ));
    }

    proptest! {
        #[test]
        fn never_creates_an_ordinal_that_exists(
            replicas in 0u32..6,
            parallel in any::<bool>(),
            pods in proptest::collection::btree_map(0u32..8, (any::<bool>(), any::<bool>(), any::<bool>()), 0..8)
        ) {
            let observed: Vec<ObservedPod> = pods.iter().map(|(o, (cur, ready, term))| ObservedPod {
                ordinal: *o, hash: if *cur { "new".into() } else { "old".into() }, ready: *ready, terminating: *term,
            }).collect();
            let ordering = if parallel { Ordering::Parallel } else { Ordering::Ordered };
            if let Plan::Act(actions) = plan(&Desired { replicas, hash: "new".into(), ordering, anchor: None }, &observed) {
                for a in actions {
                    match a {
                        Action::Create(o) => prop_assert!(!observed.iter().any(|p| p.ordinal == o)),
                        Action::Remove(o) | Action::Replace(o) => {
                            prop_assert!(observed.iter().any(|p| p.ordinal == o && !p.terminating))
                        }
                    }
                }
            }
        }

        #[test]
        fn ordered_never_acts_on_two_pods(
            replicas in 0u32..6,
            pods in proptest::collection::btree_map(0u32..8, (any::<bool>(), any::<bool>(), any::<bool>()), 0..8)
        ) {
            let observed: Vec<ObservedPod> = pods.iter().map(|(o, (cur, ready, term))| ObservedPod {
                ordinal: *o, hash: if *cur { "new".into() } else { "old".into() }, ready: *ready, terminating: *term,
            }).collect();
            match plan(&sts(replicas), &observed) {
                Plan::Act(a) => {
                    prop_assert_eq!(a.len(), 1);
                    if let Action::Create(o) = a[0] {
                        // bottom-up: every lower ordinal exists and is ready
                        for lo in 0..o {
                            prop_assert!(observed.iter().any(|p| p.ordinal == lo && p.ready && !p.terminating));
                        }
                    }
                }
                Plan::Converged => {
                    prop_assert_eq!(observed.len() as u32, replicas);
                    prop_assert!(observed.iter().all(|p| p.ready && p.hash == "new"));
                }
                Plan::Wait(_) => {}
            }
        }
    }
}
