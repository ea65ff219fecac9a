use super::*;

#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct K(u32, u32, &'static str); // reason, netns, location

impl SeriesKey for K {
    fn reason(&self) -> u32 {
        self.0
    }
    fn netns(&self) -> u32 {
        self.1
    }
}

fn lim(top: usize, cap: usize) -> Limits {
    Limits {
        top_per_reason: top,
        max_series: cap,
        stale_after_secs: 10.0,
    }
}

fn obs(list: &[(K, u64)]) -> Vec<Observed<K>> {
    list.iter()
        .map(|(k, c)| Observed {
            key: k.clone(),
            count: *c,
            bytes: c * 100,
        })
        .collect()
}

fn all_alive(_: u32) -> bool {
    true
}

/// Sum of every exposed series: must equal the kernel's total.
fn total(p: &Plan<K>) -> u64 {
    p.shown.iter().map(|s| s.1).sum::<u64>() + p.folded.iter().map(|f| f.1).sum::<u64>()
}

fn shown(p: &Plan<K>) -> Vec<(K, u64)> {
    let mut v: Vec<(K, u64)> = p.shown.iter().map(|s| (s.0.clone(), s.1)).collect();
    v.sort();
    v
}

#[test]
fn groups_within_limits_show_their_kernel_counts() {
    let mut t = Tracker::new(lim(2, 100));
    let a = K(1, 7, "a");
    let b = K(2, 7, "b");
    let p = t.update(0.0, obs(&[(a.clone(), 3), (b.clone(), 5)]), &mut all_alive);
    assert_eq!(shown(&p), vec![(a.clone(), 3), (b.clone(), 5)]);
    assert!(p.folded.is_empty());
    let p = t.update(1.0, obs(&[(a.clone(), 4), (b.clone(), 5)]), &mut all_alive);
    assert_eq!(shown(&p), vec![(a, 4), (b, 5)]);
    assert_eq!(p.shown.iter().find(|s| s.1 == 4).unwrap().2, 400);
}

#[test]
fn beyond_top_n_the_busiest_get_series_and_the_rest_fold_per_reason() {
    let mut t = Tracker::new(lim(2, 100));
    let keys: Vec<K> = ["a", "b", "c", "d"].iter().map(|l| K(9, 1, l)).collect();
    let p = t.update(
        0.0,
        obs(&[
            (keys[0].clone(), 1),
            (keys[1].clone(), 50),
            (keys[2].clone(), 20),
            (keys[3].clone(), 2),
        ]),
        &mut all_alive,
    );
    assert_eq!(
        shown(&p),
        vec![(keys[1].clone(), 50), (keys[2].clone(), 20)]
    );
    assert_eq!(p.folded, vec![(9, 3, 300)]);
    assert_eq!(p.folded_groups, 2);
    assert_eq!(total(&p), 73);
    // A folded group stays folded while the shown ones are busy: `other`
    // grows by its delta, the shown series are unchanged.
    let p = t.update(
        1.0,
        obs(&[
            (keys[0].clone(), 11),
            (keys[1].clone(), 51),
            (keys[2].clone(), 21),
            (keys[3].clone(), 2),
        ]),
        &mut all_alive,
    );
    assert_eq!(p.folded, vec![(9, 13, 1300)]);
    assert_eq!(total(&p), 85);
}

#[test]
fn counters_never_decrease_when_groups_change_places() {
    let mut t = Tracker::new(lim(1, 100));
    let a = K(3, 1, "a");
    let b = K(3, 1, "b");
    let mut last: std::collections::HashMap<String, u64> = Default::default();
    let mut check = |p: &Plan<K>| {
        for (k, c, _) in &p.shown {
            let name = format!("{k:?}");
            let prev = last.insert(name.clone(), *c).unwrap_or(0);
            assert!(*c >= prev, "{name} went from {prev} to {c}");
        }
        for (r, c, _) in &p.folded {
            let name = format!("other{r}");
            let prev = last.insert(name.clone(), *c).unwrap_or(0);
            assert!(*c >= prev, "{name} went from {prev} to {c}");
        }
    };
    // a gets the only slot; b folds.
    let p = t.update(0.0, obs(&[(a.clone(), 5)]), &mut all_alive);
    check(&p);
    let p = t.update(1.0, obs(&[(a.clone(), 5), (b.clone(), 3)]), &mut all_alive);
    check(&p);
    assert_eq!(p.folded, vec![(3, 3, 300)]);
    // a idle past stale_after: b's new drops take its slot; a's series
    // ends, b's starts at the drops counted while shown.
    let p = t.update(
        20.0,
        obs(&[(a.clone(), 5), (b.clone(), 10)]),
        &mut all_alive,
    );
    check(&p);
    assert_eq!(shown(&p), vec![(b.clone(), 7)]);
    // a's 5 stay in its ended series' history, not in today's sum.
    assert_eq!(total(&p), 10);
    // a comes back: no slot (b is busy), its drops go to other.
    let p = t.update(
        21.0,
        obs(&[(a.clone(), 9), (b.clone(), 11)]),
        &mut all_alive,
    );
    check(&p);
    assert_eq!(p.folded, vec![(3, 7, 700)]);
    assert_eq!(total(&p), 15);
}

#[test]
fn the_hard_cap_folds_and_counts_each_refused_group_once() {
    let mut t = Tracker::new(lim(10, 2));
    let ks: Vec<K> = (0..4).map(|i| K(i, 1, "x")).collect();
    let p = t.update(
        0.0,
        obs(&[
            (ks[0].clone(), 9),
            (ks[1].clone(), 8),
            (ks[2].clone(), 7),
            (ks[3].clone(), 6),
        ]),
        &mut all_alive,
    );
    assert_eq!(p.shown.len(), 2);
    assert_eq!(p.capped_total, 2);
    let p = t.update(
        1.0,
        obs(&[
            (ks[0].clone(), 9),
            (ks[1].clone(), 8),
            (ks[2].clone(), 8),
            (ks[3].clone(), 7),
        ]),
        &mut all_alive,
    );
    assert_eq!(p.capped_total, 2, "a refused group is counted once");
    assert_eq!(total(&p), 32);
}

#[test]
fn groups_of_gone_namespaces_are_forgotten_after_stale_after() {
    let mut t = Tracker::new(lim(5, 100));
    let live = K(1, 100, "a");
    let dead = K(1, 200, "a");
    let mut alive = |ns: u32| ns == 100;
    let p = t.update(
        0.0,
        obs(&[(live.clone(), 1), (dead.clone(), 1)]),
        &mut alive,
    );
    assert_eq!(p.shown.len(), 2);
    assert!(p.removed.is_empty(), "not idle yet");
    let p = t.update(
        5.0,
        obs(&[(live.clone(), 1), (dead.clone(), 1)]),
        &mut alive,
    );
    assert!(p.removed.is_empty(), "idle 5 s < stale_after");
    let p = t.update(
        11.0,
        obs(&[(live.clone(), 1), (dead.clone(), 1)]),
        &mut alive,
    );
    assert_eq!(p.removed, vec![dead]);
    assert_eq!(shown(&p), vec![(live, 1)]);
    assert_eq!(t.len(), 1);
}

#[test]
fn a_recreated_kernel_entry_counts_from_zero_again() {
    let mut t = Tracker::new(lim(5, 100));
    let a = K(1, 1, "a");
    t.update(0.0, obs(&[(a.clone(), 10)]), &mut all_alive);
    // Entry deleted and recreated: the kernel count restarts at 2.
    let p = t.update(1.0, obs(&[(a.clone(), 2)]), &mut all_alive);
    assert_eq!(shown(&p), vec![(a, 12)]);
}

#[test]
fn restored_series_continue_where_the_last_run_stopped() {
    let mut t = Tracker::new(lim(1, 100));
    let a = K(1, 1, "a");
    let b = K(1, 1, "b");
    t.restore(
        0.0,
        vec![
            Saved {
                key: a.clone(),
                count: 40,
                bytes: 4000,
            },
            Saved {
                key: b.clone(),
                count: 5,
                bytes: 500,
            },
        ],
        vec![(1, 3, 300)],
    );
    // Before any new drop, a is shown at its saved count; b had no room
    // and went to other.
    let p = t.update(1.0, Vec::new(), &mut all_alive);
    assert_eq!(shown(&p), vec![(a.clone(), 40)]);
    assert_eq!(p.folded, vec![(1, 8, 800)]);
    // The fresh kernel map counts from zero: a continues from 40.
    let p = t.update(2.0, obs(&[(a.clone(), 2)]), &mut all_alive);
    assert_eq!(shown(&p), vec![(a, 42)]);
    let (saved, folded) = t.saved();
    assert_eq!(saved.len(), 1);
    assert_eq!(folded, vec![(1, 8, 800)]);
}
