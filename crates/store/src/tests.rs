use super::*;
use std::os::unix::fs::PermissionsExt;
use vd_core::{AssetSpec, WorkloadSpec};

fn open() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&dir.path().join("vd.db")).unwrap();
    (dir, store)
}

fn sts(scope: &str, name: &str, replicas: u32) -> Resource {
    Resource {
        id: ResourceRef::new(Kind::Statefulset, scope, name),
        spec: Spec::Workload(WorkloadSpec {
            replicas,
            image: Some("redis:7".into()),
            ..Default::default()
        }),
    }
}

fn asset(scope: &str, name: &str, content: &str) -> Resource {
    Resource {
        id: ResourceRef::new(Kind::Asset, scope, name),
        spec: Spec::Asset(AssetSpec {
            files: [("conf".to_string(), content.to_string())].into(),
        }),
    }
}

fn kinds(changes: &[Change]) -> Vec<(String, ChangeKind, u64)> {
    changes
        .iter()
        .map(|c| (c.id.to_string(), c.kind, c.revision))
        .collect()
}

fn ev<'a>(level: &'a str, resource: Option<&'a ResourceRef>, reason: &'a str) -> NewEvent<'a> {
    NewEvent {
        level,
        resource,
        pod: None,
        reason,
        message: "something happened",
    }
}

fn mode(p: &Path) -> u32 {
    fs::metadata(p).unwrap().permissions().mode() & 0o777
}

#[test]
fn store_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<Store>();
}

#[test]
fn apply_created_changed_unchanged_with_revisions() {
    let (_d, s) = open();
    let a = sts("data", "cache", 1);
    let b = asset("data", "conf", "x");
    let c = s.apply(&[a.clone(), b.clone()]).unwrap();
    assert_eq!(
        kinds(&c),
        vec![
            ("statefulset/data/cache".into(), ChangeKind::Created, 1),
            ("asset/data/conf".into(), ChangeKind::Created, 1)
        ]
    );

    let got = s.get(&a.id).unwrap().unwrap();
    assert_eq!(got.resource, a);
    assert_eq!(got.revision, 1);
    assert_eq!(got.created_ms, got.updated_ms);
    assert!(got.created_ms > 0);

    // Same specs again: nothing changes.
    let c = s.apply(&[a.clone(), b.clone()]).unwrap();
    assert!(c
        .iter()
        .all(|c| c.kind == ChangeKind::Unchanged && c.revision == 1));
    assert_eq!(s.get(&a.id).unwrap().unwrap(), got);

    // Change one.
    let a2 = sts("data", "cache", 3);
    let c = s.apply(&[a2.clone(), b.clone()]).unwrap();
    assert_eq!(
        kinds(&c),
        vec![
            ("statefulset/data/cache".into(), ChangeKind::Changed, 2),
            ("asset/data/conf".into(), ChangeKind::Unchanged, 1)
        ]
    );
    let got2 = s.get(&a.id).unwrap().unwrap();
    assert_eq!(got2.resource, a2);
    assert_eq!(got2.revision, 2);
    assert_eq!(got2.created_ms, got.created_ms);
    assert!(got2.updated_ms >= got.updated_ms);

    // Change it back: a new revision, not a return to 1.
    let c = s.apply(std::slice::from_ref(&a)).unwrap();
    assert_eq!(
        kinds(&c),
        vec![("statefulset/data/cache".into(), ChangeKind::Changed, 3)]
    );

    let h = s.history(&a.id).unwrap();
    assert_eq!(
        h.iter().map(|(r, _, _)| *r).collect::<Vec<_>>(),
        vec![1, 2, 3]
    );
    assert_eq!(h[0].1, a);
    assert_eq!(h[1].1, a2);
    assert_eq!(h[2].1, a);
    assert!(h.windows(2).all(|w| w[0].2 <= w[1].2));
    assert_eq!(s.history(&b.id).unwrap().len(), 1);
    assert!(s
        .history(&ResourceRef::new(Kind::Asset, "x", "y"))
        .unwrap()
        .is_empty());
}

#[test]
fn apply_rejects_duplicates_and_writes_nothing() {
    let (_d, s) = open();
    let err = s
        .apply(&[sts("a", "b", 1), asset("a", "c", "x"), sts("a", "b", 2)])
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(ref m) if m.contains("statefulset/a/b")),
        "{err}"
    );
    assert!(s.list(None).unwrap().is_empty());
    assert!(s.plan_apply(&[sts("a", "b", 1), sts("a", "b", 1)]).is_err());
}

#[test]
fn apply_is_atomic_when_a_write_fails_midway() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vd.db");
    let s = Store::open(&path).unwrap();
    let a = sts("data", "cache", 1);
    s.apply(std::slice::from_ref(&a)).unwrap();

    // Make inserting a resource named `boom` fail inside SQLite.
    let raw = Connection::open(&path).unwrap();
    raw.execute_batch(
        "CREATE TRIGGER boom BEFORE INSERT ON resources WHEN NEW.name = 'boom'
         BEGIN SELECT RAISE(ABORT, 'boom'); END;",
    )
    .unwrap();
    drop(raw);

    let err = s
        .apply(&[
            sts("data", "cache", 5),
            asset("data", "new", "x"),
            sts("data", "boom", 1),
        ])
        .unwrap_err();
    assert!(
        matches!(err, StoreError::Sqlite(_)) && err.to_string().contains("boom"),
        "{err}"
    );
    // Nothing of the failed apply is visible.
    let got = s.get(&a.id).unwrap().unwrap();
    assert_eq!(got.resource, a);
    assert_eq!(got.revision, 1);
    assert!(s
        .get(&ResourceRef::new(Kind::Asset, "data", "new"))
        .unwrap()
        .is_none());
    assert_eq!(s.history(&a.id).unwrap().len(), 1);
    assert_eq!(s.list(None).unwrap().len(), 1);
}

#[test]
fn apply_batch_writes_resources_config_and_meta_together_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vd.db");
    let s = Store::open(&path).unwrap();
    let password = BucketWrite {
        scope: "data".into(),
        name: Some("cache".into()),
        set: BTreeMap::from([("REDIS_PASSWORD".to_string(), "secret".to_string())]),
    };
    let ha = MetaKey::HaSettings(ResourceRef::new(Kind::Redis, "data", "cache"));
    let batch = Batch {
        resources: vec![sts("data", "cache", 1)],
        config: vec![password.clone()],
        meta: vec![(ha.clone(), "pending-live".into())],
    };
    s.apply_batch(&batch).unwrap();
    assert_eq!(
        s.config_get("data", Some("cache")).unwrap()["REDIS_PASSWORD"],
        "secret"
    );
    assert_eq!(s.meta(&ha).unwrap().as_deref(), Some("pending-live"));
    assert_eq!(s.config_revision("data", Some("cache")).unwrap(), 1);

    // A failure inside SQLite (a resource named `boom`) leaves config and meta untouched.
    let raw = Connection::open(&path).unwrap();
    raw.execute_batch(
        "CREATE TRIGGER boom BEFORE INSERT ON resources WHEN NEW.name = 'boom'
         BEGIN SELECT RAISE(ABORT, 'boom'); END;",
    )
    .unwrap();
    drop(raw);
    let other = ResourceRef::new(Kind::Redis, "data", "boom");
    let failing = Batch {
        resources: vec![sts("data", "boom", 1)],
        config: vec![BucketWrite {
            name: Some("boom".into()),
            ..password
        }],
        meta: vec![(MetaKey::HaSettings(other.clone()), "pending-live".into())],
    };
    assert!(s.apply_batch(&failing).is_err());
    assert!(s.config_get("data", Some("boom")).unwrap().is_empty());
    assert_eq!(s.meta(&MetaKey::HaSettings(other)).unwrap(), None);
    assert_eq!(s.list(None).unwrap().len(), 1);
}

#[test]
fn plan_apply_reports_without_writing() {
    let (_d, s) = open();
    let a = sts("data", "cache", 1);
    s.apply(std::slice::from_ref(&a)).unwrap();
    let before = s.get(&a.id).unwrap();

    let plan = s
        .plan_apply(&[
            sts("data", "cache", 2),
            asset("data", "conf", "x"),
            sts("data", "other", 1),
        ])
        .unwrap();
    assert_eq!(
        kinds(&plan),
        vec![
            ("statefulset/data/cache".into(), ChangeKind::Changed, 2),
            ("asset/data/conf".into(), ChangeKind::Created, 1),
            ("statefulset/data/other".into(), ChangeKind::Created, 1),
        ]
    );
    assert_eq!(s.get(&a.id).unwrap(), before);
    assert_eq!(s.list(None).unwrap().len(), 1);
    assert_eq!(s.history(&a.id).unwrap().len(), 1);

    let plan = s.plan_apply(std::slice::from_ref(&a)).unwrap();
    assert_eq!(
        kinds(&plan),
        vec![("statefulset/data/cache".into(), ChangeKind::Unchanged, 1)]
    );

    // The plan matches what apply then does.
    let items = [sts("data", "cache", 2), asset("data", "conf", "x")];
    let plan = s.plan_apply(&items).unwrap();
    assert_eq!(s.apply(&items).unwrap(), plan);
}

#[test]
fn history_keeps_the_newest_revisions() {
    let (_d, s) = open();
    for i in 0..(HISTORY_KEEP + 5) {
        s.apply(&[sts("a", "b", i as u32)]).unwrap();
    }
    let h = s.history(&sts("a", "b", 0).id).unwrap();
    assert_eq!(h.len() as u64, HISTORY_KEEP);
    assert_eq!(h.first().unwrap().0, 6);
    assert_eq!(h.last().unwrap().0, HISTORY_KEEP + 5);
}

#[test]
fn list_orders_and_filters() {
    let (_d, s) = open();
    s.apply(&[
        sts("zeta", "a", 1),
        Resource {
            id: ResourceRef::new(Kind::Deployment, "alpha", "web"),
            spec: Spec::Workload(WorkloadSpec {
                replicas: 2,
                ..Default::default()
            }),
        },
        sts("alpha", "b", 1),
        asset("zeta", "conf", "x"),
        sts("alpha", "a", 1),
        asset("alpha", "conf", "y"),
    ])
    .unwrap();
    let ids: Vec<String> = s
        .list(None)
        .unwrap()
        .iter()
        .map(|r| r.resource.id.to_string())
        .collect();
    assert_eq!(
        ids,
        vec![
            "asset/alpha/conf",
            "asset/zeta/conf",
            "statefulset/alpha/a",
            "statefulset/alpha/b",
            "statefulset/zeta/a",
            "deployment/alpha/web",
        ]
    );
    let ids: Vec<String> = s
        .list(Some(Kind::Statefulset))
        .unwrap()
        .iter()
        .map(|r| r.resource.id.to_string())
        .collect();
    assert_eq!(
        ids,
        vec![
            "statefulset/alpha/a",
            "statefulset/alpha/b",
            "statefulset/zeta/a"
        ]
    );
    assert!(s.list(Some(Kind::Deployment)).unwrap().len() == 1);
}

#[test]
fn delete_removes_resource_and_history() {
    let (_d, s) = open();
    let a = sts("data", "cache", 1);
    s.apply(std::slice::from_ref(&a)).unwrap();
    s.apply(&[sts("data", "cache", 2)]).unwrap();
    assert!(s.delete(&a.id).unwrap());
    assert!(!s.delete(&a.id).unwrap());
    assert!(s.get(&a.id).unwrap().is_none());
    assert!(s.history(&a.id).unwrap().is_empty());
    // Re-created from scratch.
    assert_eq!(
        kinds(&s.apply(std::slice::from_ref(&a)).unwrap()),
        vec![(a.id.to_string(), ChangeKind::Created, 1)]
    );
}

#[test]
fn config_levels_and_effective_merge() {
    let (_d, s) = open();
    let m = |kv: &[(&str, &str)]| {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect::<BTreeMap<_, _>>()
    };

    assert!(s.config_get("data", None).unwrap().is_empty());
    assert_eq!(s.config_revision("data", None).unwrap(), 0);

    assert!(s
        .config_update("data", None, &m(&[("A", "scope"), ("B", "scope")]), &[])
        .unwrap());
    assert!(s
        .config_update(
            "data",
            Some("cache"),
            &m(&[("B", "name"), ("C", "name")]),
            &[]
        )
        .unwrap());
    assert!(s
        .config_update("other", Some("x"), &m(&[("Z", "1")]), &[])
        .unwrap());

    assert_eq!(
        s.config_get("data", None).unwrap(),
        m(&[("A", "scope"), ("B", "scope")])
    );
    assert_eq!(
        s.config_get("data", Some("")).unwrap(),
        m(&[("A", "scope"), ("B", "scope")])
    );
    assert_eq!(
        s.config_get("data", Some("cache")).unwrap(),
        m(&[("B", "name"), ("C", "name")])
    );
    assert_eq!(
        s.config_effective("data", "cache").unwrap(),
        m(&[("A", "scope"), ("B", "name"), ("C", "name")])
    );
    assert_eq!(
        s.config_effective("data", "nobody").unwrap(),
        m(&[("A", "scope"), ("B", "scope")])
    );
    assert_eq!(s.config_effective("other", "x").unwrap(), m(&[("Z", "1")]));

    // No-op updates report false and keep the revision.
    assert_eq!(s.config_revision("data", None).unwrap(), 1);
    assert!(!s
        .config_update("data", None, &m(&[("A", "scope")]), &["NOPE".into()])
        .unwrap());
    assert_eq!(s.config_revision("data", None).unwrap(), 1);

    // Set + unset in one update.
    assert!(s
        .config_update("data", None, &m(&[("A", "new")]), &["B".into()])
        .unwrap());
    assert_eq!(s.config_get("data", None).unwrap(), m(&[("A", "new")]));
    assert_eq!(s.config_revision("data", None).unwrap(), 2);
    assert_eq!(s.config_revision("data", Some("cache")).unwrap(), 1);
    assert_eq!(
        s.config_effective("data", "cache").unwrap(),
        m(&[("A", "new"), ("B", "name"), ("C", "name")])
    );

    assert_eq!(
        s.config_buckets().unwrap(),
        vec![
            ("data".into(), None),
            ("data".into(), Some("cache".into())),
            ("other".into(), Some("x".into()))
        ]
    );

    // Emptying a bucket removes it from the listing; its revision keeps counting.
    assert!(s
        .config_update("other", Some("x"), &BTreeMap::new(), &["Z".into()])
        .unwrap());
    assert_eq!(s.config_buckets().unwrap().len(), 2);
    assert_eq!(s.config_revision("other", Some("x")).unwrap(), 2);
    assert!(s
        .config_update("other", Some("x"), &m(&[("Z", "2")]), &[])
        .unwrap());
    assert_eq!(s.config_revision("other", Some("x")).unwrap(), 3);
}

#[test]
fn config_update_rejects_bad_input_without_leaking_values() {
    let (_d, s) = open();
    let set: BTreeMap<String, String> = [("PASS".to_string(), "s3cret".to_string())].into();
    let err = s
        .config_update("data", None, &set, &["PASS".into()])
        .unwrap_err();
    assert!(matches!(err, StoreError::Invalid(_)));
    assert!(!err.to_string().contains("s3cret"));
    assert!(s.config_update("", None, &set, &[]).is_err());
    let empty_key: BTreeMap<String, String> = [(String::new(), "v".to_string())].into();
    assert!(s.config_update("data", None, &empty_key, &[]).is_err());
    assert!(s.config_get("data", None).unwrap().is_empty());
    assert_eq!(s.config_revision("data", None).unwrap(), 0);
}

#[test]
fn events_filter_limit_and_order() {
    let (_d, s) = open();
    let a = ResourceRef::new(Kind::Statefulset, "data", "cache");
    let b = ResourceRef::new(Kind::Statefulset, "data", "other");
    let mut ids = Vec::new();
    for i in 0..10 {
        let r = if i % 2 == 0 { &a } else { &b };
        ids.push(
            s.record_event(ev("info", Some(r), &format!("R{i}")))
                .unwrap(),
        );
    }
    let pod_ev = NewEvent {
        level: "error",
        resource: None,
        pod: Some("data-cache.0"),
        reason: "Exited",
        message: "m",
    };
    let last = s.record_event(pod_ev).unwrap();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    assert!(last > ids[9]);

    let all = s.events(None, 0, 100).unwrap();
    assert_eq!(all.len(), 11);
    assert!(all.windows(2).all(|w| w[0].id < w[1].id), "newest last");
    let e = all.last().unwrap();
    assert_eq!(
        (e.level.as_str(), e.resource.as_ref(), e.pod.as_deref()),
        ("error", None, Some("data-cache.0"))
    );
    assert_eq!(all[0].resource.as_ref(), Some(&a));
    assert_eq!(all[0].reason, "R0");
    assert!(all[0].ts_ms > 0);

    // Limit keeps the newest ones.
    let newest = s.events(None, 0, 3).unwrap();
    assert_eq!(
        newest.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![ids[8], ids[9], last]
    );

    // Filter by resource.
    let only_a = s.events(Some(&a), 0, 100).unwrap();
    assert_eq!(
        only_a.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(),
        vec!["R0", "R2", "R4", "R6", "R8"]
    );
    let only_a = s.events(Some(&a), 0, 2).unwrap();
    assert_eq!(
        only_a.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(),
        vec!["R6", "R8"]
    );

    // after_id.
    let after = s.events(None, ids[7], 100).unwrap();
    assert_eq!(
        after.iter().map(|e| e.id).collect::<Vec<_>>(),
        vec![ids[8], ids[9], last]
    );
    let after = s.events(Some(&b), ids[7], 100).unwrap();
    assert_eq!(
        after.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(),
        vec!["R9"]
    );
    assert!(s.events(None, last, 100).unwrap().is_empty());
    assert!(s.events(None, 0, 0).unwrap().is_empty());

    assert!(matches!(
        s.record_event(ev("debug", None, "X")),
        Err(StoreError::Invalid(_))
    ));
}

#[test]
fn events_prune_keeps_newest_and_never_reuses_ids() {
    let (_d, s) = open();
    for i in 0..5 {
        s.record_event(ev("warning", None, &format!("R{i}")))
            .unwrap();
    }
    assert_eq!(s.prune_events(2).unwrap(), 3);
    let left = s.events(None, 0, 100).unwrap();
    assert_eq!(
        left.iter().map(|e| e.reason.as_str()).collect::<Vec<_>>(),
        vec!["R3", "R4"]
    );
    assert_eq!(s.prune_events(0).unwrap(), 2);
    let id = s.record_event(ev("info", None, "after")).unwrap();
    assert_eq!(id, 6);
}

#[test]
fn subnet_is_chosen_once_and_persisted() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vd.db");
    let subnet = {
        let s = Store::open(&path).unwrap();
        let subnet = s.subnet().unwrap();
        let x: u8 = subnet.strip_prefix("127.").unwrap().parse().unwrap();
        assert!((16..=254).contains(&x), "{subnet}");
        assert_eq!(s.subnet().unwrap(), subnet);
        subnet
    };
    assert_eq!(Store::open(&path).unwrap().subnet().unwrap(), subnet);
    for _ in 0..50 {
        let x = random_octet();
        assert!((16..=254).contains(&x));
    }
}

#[test]
fn a_new_subnet_avoids_those_other_roots_use() {
    // Every subnet but one taken: that one is chosen, whatever the random start.
    let free = "127.200".to_string();
    let taken: Vec<String> = (16..=254u16)
        .map(|x| format!("127.{x}"))
        .filter(|s| *s != free)
        .collect();
    for _ in 0..5 {
        let (_d, s) = open();
        assert_eq!(s.subnet_avoiding(&taken).unwrap(), free);
    }
    // A stored subnet stays, taken or not.
    let (_d, s) = open();
    let first = s.subnet().unwrap();
    assert_eq!(
        s.subnet_avoiding(std::slice::from_ref(&first)).unwrap(),
        first
    );
}

#[test]
fn addresses_are_stable_unique_and_skip_busy_ones() {
    let (_d, s) = open();
    let subnet = s.subnet().unwrap();
    let mut calls = Vec::new();
    let a0 = s
        .allocate_address("data-cache.0", &mut |ip: &str| {
            calls.push(ip.to_string());
            true
        })
        .unwrap();
    assert_eq!(a0, format!("{subnet}.0.2"));
    assert_eq!(calls, vec![a0.clone()]);

    // Stable: the existing allocation comes back without consulting is_free.
    let again = s
        .allocate_address("data-cache.0", &mut |_| panic!("must not be asked"))
        .unwrap();
    assert_eq!(again, a0);

    // Skips addresses the caller says are busy.
    let busy = format!("{subnet}.0.3");
    let a1 = s
        .allocate_address("data-cache.1", &mut |ip: &str| ip != busy)
        .unwrap();
    assert_eq!(a1, format!("{subnet}.0.4"));
    let a2 = s.allocate_address("data-cache.2", &mut |_| true).unwrap();
    assert_eq!(a2, format!("{subnet}.0.3"));

    assert_eq!(s.address("data-cache.1").unwrap(), Some(a1.clone()));
    assert_eq!(s.address("nobody").unwrap(), None);
    let all = s.addresses().unwrap();
    assert_eq!(all.len(), 3);
    let unique: HashSet<&String> = all.values().collect();
    assert_eq!(unique.len(), 3);

    // Released addresses are reused, lowest first.
    s.release_address("data-cache.0").unwrap();
    s.release_address("data-cache.0").unwrap();
    assert_eq!(s.address("data-cache.0").unwrap(), None);
    assert_eq!(s.allocate_address("web.0", &mut |_| true).unwrap(), a0);

    // Crosses into the next /24 without ever using .0, .1 or .255.
    let mut n = 0;
    let ip = s
        .allocate_address("big.0", &mut |ip: &str| {
            n += 1;
            ip.ends_with(".1.2")
        })
        .unwrap();
    assert_eq!(ip, format!("{subnet}.1.2"));
    assert_eq!(n, 253 - 3 + 1, "skips taken ones without asking");

    // Nothing free at all.
    let err = s.allocate_address("never.0", &mut |_| false).unwrap_err();
    assert!(matches!(err, StoreError::Conflict(_)), "{err}");
    assert_eq!(s.address("never.0").unwrap(), None);
}

#[test]
fn pod_status_roundtrip() {
    let (_d, s) = open();
    let owner = ResourceRef::new(Kind::Statefulset, "data", "cache");
    s.put_pod_status(
        "data-cache.1",
        &owner,
        &serde_json::json!({"phase": "running", "pid": 42}),
    )
    .unwrap();
    s.put_pod_status(
        "data-cache.0",
        &owner,
        &serde_json::json!({"phase": "starting"}),
    )
    .unwrap();
    s.put_pod_status(
        "data-cache.0",
        &owner,
        &serde_json::json!({"phase": "ready"}),
    )
    .unwrap();
    let st = s.pod_statuses().unwrap();
    assert_eq!(
        st,
        vec![
            (
                "data-cache.0".into(),
                owner.clone(),
                serde_json::json!({"phase": "ready"})
            ),
            (
                "data-cache.1".into(),
                owner.clone(),
                serde_json::json!({"phase": "running", "pid": 42})
            ),
        ]
    );
    s.delete_pod_status("data-cache.0").unwrap();
    s.delete_pod_status("data-cache.0").unwrap();
    assert_eq!(s.pod_statuses().unwrap().len(), 1);
}

#[test]
fn meta_roundtrip() {
    let (_d, s) = open();
    assert_eq!(s.meta_get("k").unwrap(), None);
    s.meta_set("k", "v1").unwrap();
    s.meta_set("k", "v2").unwrap();
    assert_eq!(s.meta_get("k").unwrap(), Some("v2".into()));
    s.meta_delete("k").unwrap();
    s.meta_delete("k").unwrap();
    assert_eq!(s.meta_get("k").unwrap(), None);
}

#[test]
fn reopen_keeps_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vd.db");
    let a = sts("data", "cache", 3);
    let owner = a.id.clone();
    let (ip, subnet) = {
        let s = Store::open(&path).unwrap();
        s.apply(std::slice::from_ref(&a)).unwrap();
        s.apply(&[sts("data", "cache", 4)]).unwrap();
        s.config_update(
            "data",
            Some("cache"),
            &[("K".to_string(), "V".to_string())].into(),
            &[],
        )
        .unwrap();
        s.record_event(ev("info", Some(&owner), "Applied")).unwrap();
        s.put_pod_status("data-cache.0", &owner, &serde_json::json!({"ready": true}))
            .unwrap();
        s.meta_set("hash", "abc").unwrap();
        (
            s.allocate_address("data-cache.0", &mut |_| true).unwrap(),
            s.subnet().unwrap(),
        )
    };
    let s = Store::open(&path).unwrap();
    let got = s.get(&owner).unwrap().unwrap();
    assert_eq!(got.revision, 2);
    assert_eq!(got.resource, sts("data", "cache", 4));
    assert_eq!(s.history(&owner).unwrap().len(), 2);
    assert_eq!(
        s.config_get("data", Some("cache"))
            .unwrap()
            .get("K")
            .map(String::as_str),
        Some("V")
    );
    assert_eq!(s.config_revision("data", Some("cache")).unwrap(), 1);
    assert_eq!(s.events(Some(&owner), 0, 10).unwrap()[0].reason, "Applied");
    assert_eq!(s.pod_statuses().unwrap().len(), 1);
    assert_eq!(s.meta_get("hash").unwrap(), Some("abc".into()));
    assert_eq!(s.address("data-cache.0").unwrap(), Some(ip));
    assert_eq!(s.subnet().unwrap(), subnet);
    assert_eq!(
        s.apply(&[sts("data", "cache", 4)]).unwrap()[0],
        Change {
            id: owner,
            kind: ChangeKind::Unchanged,
            revision: 2
        }
    );
}

#[test]
fn files_are_private() {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("root");
    let path = root.join("vd.db");
    let s = Store::open(&path).unwrap();
    s.meta_set("k", "v").unwrap();
    assert_eq!(mode(&root), 0o700);
    assert_eq!(mode(&path), 0o600);
    for suffix in ["vd.db-wal", "vd.db-shm"] {
        let p = root.join(suffix);
        assert!(p.exists(), "{suffix} exists while the store is open");
        assert_eq!(mode(&p), 0o600, "{suffix}");
    }
    drop(s);

    // Files left world-readable (say, a -wal from an unclean shutdown) are tightened on open.
    fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
    let wal = root.join("vd.db-wal");
    fs::write(&wal, b"").unwrap();
    fs::set_permissions(&wal, fs::Permissions::from_mode(0o644)).unwrap();
    let s = Store::open(&path).unwrap();
    assert_eq!(mode(&path), 0o600);
    assert_eq!(mode(&wal), 0o600);
    assert_eq!(s.meta_get("k").unwrap(), Some("v".into()));
}

#[test]
fn wal_mode_and_schema_version() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vd.db");
    let s = Store::open(&path).unwrap();
    {
        let conn = s.lock();
        let jm: String = conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(jm, "wal");
        let v: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v as usize, MIGRATIONS.len());
    }
    drop(s);

    // A file from a newer vd is refused, not misread.
    let raw = Connection::open(&path).unwrap();
    raw.pragma_update(None, "user_version", 999).unwrap();
    drop(raw);
    let err = Store::open(&path).unwrap_err();
    assert!(
        matches!(err, StoreError::Invalid(ref m) if m.contains("upgrade vd")),
        "{err}"
    );
}

#[test]
fn corrupt_rows_are_errors_not_panics() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("vd.db");
    let s = Store::open(&path).unwrap();
    let raw = Connection::open(&path).unwrap();
    raw.execute_batch(
        "INSERT INTO resources VALUES ('statefulset', 'x', 'y', '{not json', 1, 0, 0);
         INSERT INTO resources VALUES ('gizmo', 'x', 'z', '{}', 1, 0, 0);
         INSERT INTO pod_status VALUES ('p', 'statefulset', 'x', 'y', '{not json', 0);
         INSERT INTO settings VALUES ('subnet', '10.0');",
    )
    .unwrap();
    drop(raw);
    assert!(s
        .get(&ResourceRef::new(Kind::Statefulset, "x", "y"))
        .is_err());
    assert!(s.list(None).is_err());
    assert!(s.pod_statuses().is_err());
    assert!(matches!(s.subnet(), Err(StoreError::Invalid(_))));
    // Applying over an unreadable spec replaces it.
    let c = s.apply(&[sts("x", "y", 1)]).unwrap();
    assert_eq!(c[0].kind, ChangeKind::Changed);
    assert_eq!(
        s.get(&ResourceRef::new(Kind::Statefulset, "x", "y"))
            .unwrap()
            .unwrap()
            .revision,
        2
    );
}

#[test]
fn typed_meta_uses_the_same_rows_as_raw_keys() {
    let (_d, s) = open();
    let cache = ResourceRef::new(Kind::Redis, "data", "cache");
    let epoch = MetaKey::FailoverEpoch(cache.clone());
    assert_eq!(s.meta(&epoch).unwrap(), None);
    // A store written with hand-built keys reads through the typed ones, and back.
    s.meta_set("failover-epoch:redis/data/cache", "7").unwrap();
    assert_eq!(s.meta(&epoch).unwrap(), Some("7".into()));
    assert_eq!(s.meta_parsed::<u64>(&epoch).unwrap(), Some(7));
    s.set_meta(&epoch, "8").unwrap();
    assert_eq!(
        s.meta_get("failover-epoch:redis/data/cache").unwrap(),
        Some("8".into())
    );
    s.delete_meta(&epoch).unwrap();
    s.delete_meta(&epoch).unwrap();
    assert_eq!(s.meta_get("failover-epoch:redis/data/cache").unwrap(), None);
    assert_eq!(s.meta_parsed::<u64>(&epoch).unwrap(), None);

    let ha = MetaKey::HaSettings(cache);
    s.set_meta(&ha, HaState::PendingLive.as_str()).unwrap();
    assert_eq!(
        s.meta_parsed::<HaState>(&ha).unwrap(),
        Some(HaState::PendingLive)
    );
    s.set_meta(&ha, "half-done").unwrap();
    match s.meta_parsed::<HaState>(&ha) {
        Err(StoreError::CorruptMeta { key, message }) => {
            assert_eq!(key, ha);
            assert!(message.contains("half-done"), "{message}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn meta_json_round_trips_and_reports_corrupt_values() {
    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Pending {
        epoch: u64,
        from: u32,
        to: u32,
    }
    let (_d, s) = open();
    let key = MetaKey::FailoverPending(ResourceRef::new(Kind::Redis, "data", "cache"));
    assert_eq!(s.meta_json::<Pending>(&key).unwrap(), None);
    let p = Pending {
        epoch: 3,
        from: 0,
        to: 1,
    };
    s.set_meta_json(&key, &p).unwrap();
    assert_eq!(
        s.meta(&key).unwrap().as_deref(),
        Some(r#"{"epoch":3,"from":0,"to":1}"#)
    );
    assert_eq!(s.meta_json::<Pending>(&key).unwrap(), Some(p));

    // The history's pair is stored as a JSON array.
    let history = MetaKey::FailoverHistory(ResourceRef::new(Kind::Redis, "data", "cache"));
    s.set_meta_json(&history, &(2u32, "abc")).unwrap();
    assert_eq!(s.meta(&history).unwrap().as_deref(), Some(r#"[2,"abc"]"#));
    assert_eq!(
        s.meta_json::<(u32, String)>(&history).unwrap(),
        Some((2, "abc".to_string()))
    );

    for bad in ["not json", r#"{"epoch":3}"#, ""] {
        s.set_meta(&key, bad).unwrap();
        let err = s.meta_json::<Pending>(&key).unwrap_err();
        assert!(
            matches!(&err, StoreError::CorruptMeta { key: k, .. } if *k == key),
            "{err:?}"
        );
        assert!(
            err.to_string()
                .contains("failover-pending:redis/data/cache"),
            "{err}"
        );
    }

    // A value that cannot be JSON is refused before anything is written.
    s.set_meta(&key, "kept").unwrap();
    let not_json = BTreeMap::from([((1, 2), "v")]);
    assert!(matches!(
        s.set_meta_json(&key, &not_json),
        Err(StoreError::Invalid(m)) if m.contains("failover-pending:redis/data/cache")
    ));
    assert_eq!(s.meta(&key).unwrap().as_deref(), Some("kept"));
}

#[test]
fn typed_events_store_the_same_strings() {
    let (_d, s) = open();
    let cache = ResourceRef::new(Kind::Redis, "data", "cache");
    let a = s
        .record(
            Level::Warning,
            Some(&cache),
            Some("data-cache.0"),
            Reason::Exited,
            "exit status 1",
        )
        .unwrap();
    let b = s
        .record(Level::Info, None, None, Reason::ConfigChanged, "data: K")
        .unwrap();
    // What an older vd recorded, or a name since dropped from the vocabulary.
    let c = s.record_event(ev("info", None, "FailedOver")).unwrap();
    assert!(a < b && b < c);

    let all = s.events(None, 0, 10).unwrap();
    assert_eq!(all.len(), 3);
    assert_eq!(
        (all[0].level.as_str(), all[0].reason.as_str()),
        ("warning", "Exited")
    );
    assert_eq!(all[0].level(), Some(Level::Warning));
    assert_eq!(all[0].reason(), Reason::Exited);
    assert_eq!(all[0].resource.as_ref(), Some(&cache));
    assert_eq!(all[0].pod.as_deref(), Some("data-cache.0"));
    assert_eq!(all[1].reason(), Reason::ConfigChanged);
    assert_eq!(all[1].level(), Some(Level::Info));
    assert_eq!(all[2].reason(), Reason::Other("FailedOver".into()));

    // The JSON the API sends keeps its shape and strings.
    let json = serde_json::to_value(&all[0]).unwrap();
    assert_eq!(json["level"], "warning");
    assert_eq!(json["reason"], "Exited");
    let back: Event = serde_json::from_value(json).unwrap();
    assert_eq!(back, all[0]);
}

#[test]
fn event_levels_are_the_level_names() {
    assert_eq!(
        EVENT_LEVELS.to_vec(),
        Level::ALL.iter().map(|l| l.as_str()).collect::<Vec<_>>()
    );
}
