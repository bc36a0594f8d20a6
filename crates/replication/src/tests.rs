use super::*;
use proptest::prelude::*;

const LAG: u64 = 10_000;

fn leader(isr: &[i32]) -> LeaderState {
    LeaderState::new(1, 0, 0, &[1, 2, 3], isr, 0, 0, 0)
}

#[test]
fn single_replica_commits_every_append() {
    let mut s = LeaderState::new(1, 0, 0, &[1], &[1], 0, 0, 0);
    assert_eq!(s.on_leader_append(5), Some(5));
    assert_eq!(s.high_watermark(), 5);
    assert_eq!(s.isr_to_shrink(100_000, LAG), None);
    assert_eq!(s.isr_to_expand(100_000, LAG), None);
}

#[test]
fn high_watermark_is_min_leo_of_the_isr() {
    let mut s = leader(&[1, 2, 3]);
    assert_eq!(
        s.on_leader_append(10),
        None,
        "followers' offsets are unknown"
    );
    assert_eq!(s.on_follower_fetch(2, 10, 10, 1), None);
    assert_eq!(s.on_follower_fetch(3, 4, 10, 1), Some(4));
    assert_eq!(s.on_follower_fetch(3, 10, 10, 2), Some(10));
    // Fetches from brokers that are not replicas change nothing.
    assert_eq!(s.on_follower_fetch(9, 100, 10, 3), None);
}

#[test]
fn a_new_leader_keeps_its_high_watermark() {
    let mut s = LeaderState::new(1, 3, 0, &[1, 2], &[1, 2], 20, 15, 0);
    assert_eq!(s.high_watermark(), 15);
    assert_eq!(s.epoch_start_offset(), 20);
    // A follower behind the old HW does not move it backwards.
    assert_eq!(s.on_follower_fetch(2, 12, 20, 1), None);
    assert_eq!(s.high_watermark(), 15);
    assert_eq!(s.on_follower_fetch(2, 20, 20, 2), Some(20));
}

#[test]
fn lagging_follower_is_shrunk_after_the_lag_time() {
    let mut s = leader(&[1, 2, 3]);
    s.on_leader_append(10);
    s.on_follower_fetch(2, 10, 10, 1_000);
    s.on_follower_fetch(3, 10, 10, 1_000);
    s.on_leader_append(20);
    // 2 keeps fetching and catching up, 3 has gone.
    s.on_follower_fetch(2, 20, 20, 5_000);
    assert_eq!(s.isr_to_shrink(9_000, LAG), None);
    assert_eq!(s.isr_to_shrink(11_001, LAG), Some(vec![1, 2]));
    // Pending: not proposed twice, and the HW still waits for the old ISR.
    assert_eq!(s.isr_to_shrink(12_000, LAG), None);
    assert_eq!(s.high_watermark(), 10);
    // The controller commits it: the HW moves.
    assert_eq!(
        s.update_assignment(1, &[1, 2, 3], &[1, 2], 12_500),
        Some(20)
    );
    assert!(s.pending().is_none());
    assert!(!s.has_min_isr(3));
    assert!(s.has_min_isr(2));
}

#[test]
fn a_follower_at_the_leaders_end_is_in_sync_however_long_ago() {
    let mut s = leader(&[1, 2]);
    s.on_leader_append(10);
    s.on_follower_fetch(2, 10, 10, 1_000);
    assert_eq!(s.isr_to_shrink(1_000_000, LAG), None);
}

#[test]
fn unanswered_proposal_is_retried_after_the_lag_time() {
    let mut s = leader(&[1, 2, 3]);
    s.on_leader_append(10);
    assert_eq!(s.isr_to_shrink(20_000, LAG), Some(vec![1]));
    assert_eq!(s.isr_to_shrink(25_000, LAG), None);
    assert_eq!(s.isr_to_shrink(30_001, LAG), Some(vec![1]));
}

#[test]
fn expansion_needs_hw_and_epoch_start_and_counts_while_pending() {
    let mut s = LeaderState::new(1, 2, 5, &[1, 2, 3], &[1, 2], 10, 10, 0);
    s.on_follower_fetch(2, 10, 10, 1);
    s.on_leader_append(30);
    s.on_follower_fetch(2, 30, 30, 2);
    assert_eq!(s.high_watermark(), 30);
    s.on_follower_fetch(3, 5, 30, 3);
    assert_eq!(s.isr_to_expand(3, LAG), None, "below the HW");
    s.on_follower_fetch(3, 30, 30, 4);
    assert_eq!(s.isr_to_expand(4, LAG), Some(vec![1, 2, 3]));
    assert_eq!(s.maximal_isr(), vec![1, 2, 3]);
    // While pending, the joining replica holds the HW back.
    s.on_leader_append(40);
    s.on_follower_fetch(2, 40, 40, 5);
    assert_eq!(s.high_watermark(), 30);
    assert_eq!(s.on_follower_fetch(3, 40, 40, 6), Some(40));
    s.update_assignment(6, &[1, 2, 3], &[1, 2, 3], 7);
    assert_eq!(s.isr(), &[1, 2, 3]);
    assert!(s.pending().is_none());
}

#[test]
fn expansion_waits_for_the_epoch_start_offset() {
    // Leader since offset 50 but HW only 40: a follower at 45 must not join.
    let mut s = LeaderState::new(1, 2, 0, &[1, 2], &[1], 50, 40, 0);
    s.on_follower_fetch(2, 45, 50, 1);
    assert_eq!(s.isr_to_expand(1, LAG), None);
    s.on_follower_fetch(2, 50, 50, 2);
    assert_eq!(s.isr_to_expand(2, LAG), Some(vec![1, 2]));
}

#[test]
fn truncation_follows_kip_279() {
    // No answer: truncate to the high watermark.
    assert_eq!(
        truncation_offset(100, 80, UNDEFINED_EPOCH, UNDEFINED_EPOCH_OFFSET, None),
        Truncation {
            offset: 80,
            complete: true
        }
    );
    // Same epoch on both sides: the smaller end offset.
    assert_eq!(
        truncation_offset(100, 80, 3, 90, Some((3, 100))),
        Truncation {
            offset: 90,
            complete: true
        }
    );
    // The leader has more of the epoch than the follower: nothing to cut.
    assert_eq!(
        truncation_offset(100, 80, 3, 120, Some((3, 100))).offset,
        100
    );
    // The follower does not know epoch 3 (it has 2 up to 70): cut to 70, ask again.
    assert_eq!(
        truncation_offset(100, 60, 3, 90, Some((2, 70))),
        Truncation {
            offset: 70,
            complete: false
        }
    );
    // The follower has no epochs: trust the leader's end offset.
    assert_eq!(truncation_offset(100, 60, 3, 90, None).offset, 90);
    // An old leader without epochs in its answer.
    assert_eq!(
        truncation_offset(100, 60, UNDEFINED_EPOCH, 95, None).offset,
        95
    );
}

#[derive(Debug, Clone)]
enum Op {
    Append(i64),
    Fetch(i32, i64),
    Shrink(i64),
    Expand,
    Commit,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0i64..20).prop_map(Op::Append),
        (2i32..5, 0i64..20).prop_map(|(r, d)| Op::Fetch(r, d)),
        (0i64..30_000).prop_map(Op::Shrink),
        Just(Op::Expand),
        Just(Op::Commit),
    ]
}

proptest! {
    #[test]
    fn hw_is_monotone_and_bounded_by_every_isr_member(ops in proptest::collection::vec(op(), 1..200)) {
        let replicas = [1, 2, 3, 4];
        let mut s = LeaderState::new(1, 0, 0, &replicas, &replicas, 0, 0, 0);
        let mut leos = std::collections::BTreeMap::from([(2, 0i64), (3, 0), (4, 0)]);
        let mut leader_leo = 0i64;
        let mut now = 0i64;
        let mut partition_epoch = 0;
        for op in ops {
            let before = s.high_watermark();
            now += 7;
            match op {
                Op::Append(n) => {
                    leader_leo += n;
                    s.on_leader_append(leader_leo);
                }
                Op::Fetch(r, d) => {
                    // Followers only move forward, never past the leader.
                    let leo = leos.get_mut(&r).unwrap();
                    *leo = (*leo + d).min(leader_leo);
                    let offset = *leo;
                    if let Some(hw) = s.on_follower_fetch(r, offset, leader_leo, now) {
                        prop_assert_eq!(hw, s.high_watermark());
                    }
                }
                Op::Shrink(t) => {
                    now += t;
                    if let Some(isr) = s.isr_to_shrink(now, LAG) {
                        prop_assert!(isr.contains(&1));
                        prop_assert!(isr.len() < s.isr().len());
                    }
                }
                Op::Expand => {
                    if let Some(isr) = s.isr_to_expand(now, LAG) {
                        prop_assert!(isr.len() > s.isr().len());
                        for r in &isr {
                            prop_assert!(*r == 1 || leos[r] >= s.high_watermark());
                        }
                    }
                }
                Op::Commit => {
                    if let Some(p) = s.pending().cloned() {
                        partition_epoch += 1;
                        s.update_assignment(partition_epoch, &replicas, &p.new_isr, now);
                    }
                }
            }
            let hw = s.high_watermark();
            prop_assert!(hw >= before, "HW went back from {} to {}", before, hw);
            prop_assert!(hw <= leader_leo);
            for r in s.maximal_isr() {
                if r != 1 && hw > before {
                    prop_assert!(hw <= leos[&r], "HW {} above ISR member {} at {}", hw, r, leos[&r]);
                }
            }
        }
    }

    #[test]
    fn truncation_never_goes_past_either_end(
        leo in 0i64..1000, hw in 0i64..1000, epoch in -1i32..5, end in -1i64..1000,
        local in proptest::option::of((0i32..5, 0i64..1000)),
    ) {
        let hw = hw.min(leo);
        let t = truncation_offset(leo, hw, epoch, end, local);
        prop_assert!(t.offset <= leo);
        prop_assert!(t.offset >= 0);
        if end >= 0 && t.complete {
            prop_assert!(t.offset <= end);
        }
    }
}
