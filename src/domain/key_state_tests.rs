//! One judgement of a key's state ([`Key::state_at`]), as a table over every combination
//! of replaced (in its grace period or past it), expired, revoked and disabled: the
//! judgement follows the documented precedence, and the check, the permission view, the
//! access report, `who_can` and the authority rules all agree with it.

use super::*;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Replaced {
    No,
    InGrace,
    PastGrace,
}

#[test]
fn every_view_and_the_check_judge_a_key_as_key_state_at_does_in_every_combination() {
    let secret = new_secret();
    let first = KeyHash::of_presented(secret.expose()).expect("a generated key parses");
    for replaced in [Replaced::No, Replaced::InGrace, Replaced::PastGrace] {
        for expired in [false, true] {
            for revoked in [false, true] {
                for disabled in [false, true] {
                    let label = format!("{replaced:?} expired={expired} revoked={revoked} disabled={disabled}");
                    let expiry = if expired { seconds_before(NOW, 60) } else { seconds_after(NOW, 3600) };
                    let mut history = booking_app_with_key(key_hash(9));
                    history.pop();
                    history.push(key_generated(booking_app(), first_key(), first, Some(expiry)));
                    // A grace period that ends before the expiry, so that "in grace and
                    // expired" (possible in a log written before grace ended at expiry)
                    // is judged too.
                    let valid_until = match replaced {
                        Replaced::No => None,
                        Replaced::InGrace => Some(seconds_after(NOW, 600)),
                        Replaced::PastGrace => Some(seconds_before(NOW, 600)),
                    };
                    if valid_until.is_some() {
                        history.push(key_replaced(booking_app(), second_key(), key_hash(2), first_key(), valid_until));
                    }
                    if revoked {
                        history.push(key_revoked(booking_app(), first_key()));
                    }
                    if disabled {
                        history.push(user_disabled(booking_app()));
                    }
                    let scenario = given(&history);
                    let state = &scenario.state;
                    let key = state.key(&first).expect("the key is known");

                    let expected = match (revoked, replaced, expired) {
                        (true, _, _) => KeyState::Revoked { at: RECORDED_AT },
                        (false, Replaced::PastGrace, _) => KeyState::Replaced { valid_until: seconds_before(NOW, 600) },
                        (false, _, true) => KeyState::Expired { at: expiry },
                        (false, Replaced::InGrace, false) => KeyState::InGrace { valid_until: seconds_after(NOW, 600) },
                        (false, Replaced::No, false) => KeyState::Active,
                    };
                    assert_eq!(key.state_at(NOW), expected, "{label}");

                    let reason = match expected.refusal() {
                        Some(refusal) => refusal,
                        None if disabled => Reason::UserDisabled,
                        None => Reason::Granted,
                    };
                    assert_eq!(scenario.check(secret.expose(), "api.events.read", None), reason.as_str(), "{label}");

                    let view = PermissionView::of(state, NOW);
                    let user = view.users.iter().find(|user| user.id == booking_app()).expect("listed");
                    let shown = user.keys.iter().find(|shown| shown.key_id == first_key()).map(|shown| shown.state);
                    assert_eq!(shown, Some(expected), "{label}");

                    let row = access_report(state, NOW).into_iter().find(|row| row.user_id == booking_app());
                    let row = row.expect("the report has a row per user");
                    let current = replaced == Replaced::No && !revoked;
                    let reported = row.key.filter(|key| key.key_id == first_key()).map(|key| key.state);
                    assert_eq!(reported, current.then_some(expected), "{label}");
                    let second_works = replaced != Replaced::No;
                    assert_eq!(
                        row.flags.disabled_user_with_active_key,
                        disabled && (expected.is_usable() || second_works),
                        "{label}"
                    );

                    let listed = who_can(state, function("api.events.read"), None, NOW)
                        .iter()
                        .any(|answer| answer.key_ids.contains(&first_key()));
                    assert_eq!(listed, !disabled && expected.is_usable(), "{label}");
                }
            }
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Policy {
    None,
    MaxLifetime,
    MaxUnused,
    Both,
}

/// The key policy's states (issue #14) as another dimension: a key two days old, never
/// used, under no limit, a one-day lifetime, a one-day idleness limit or both, current or
/// in its grace period, its user enabled or not. `State::key_state` follows the precedence
/// too old > dormant > grace > active, and the check, the permission view, the access
/// report and `who_can` agree with it.
#[test]
fn the_key_policys_states_take_their_place_in_the_precedence_and_every_view_agrees() {
    let secret = new_secret();
    let first = secret.hash();
    let later = seconds_after(RECORDED_AT, 2 * 24 * 60 * 60);
    let one_day_on = seconds_after(RECORDED_AT, 24 * 60 * 60);
    for policy in [Policy::None, Policy::MaxLifetime, Policy::MaxUnused, Policy::Both] {
        for in_grace in [false, true] {
            for disabled in [false, true] {
                let label = format!("{policy:?} in_grace={in_grace} disabled={disabled}");
                let mut history = booking_app_with_key(first);
                if in_grace {
                    let valid_until = Some(seconds_after(later, 600));
                    history.push(key_replaced(booking_app(), second_key(), key_hash(2), first_key(), valid_until));
                }
                let (lifetime, unused) = match policy {
                    Policy::None => (None, None),
                    Policy::MaxLifetime => (Some(1), None),
                    Policy::MaxUnused => (None, Some(1)),
                    Policy::Both => (Some(1), Some(1)),
                };
                history.push(Event::KeyPolicySet {
                    max_lifetime_days: lifetime,
                    require_expiry: false,
                    max_unused_days: unused,
                });
                if disabled {
                    history.push(user_disabled(booking_app()));
                }
                let scenario = given(&history).at(later);
                let state = &scenario.state;
                let key = state.key(&first).expect("the key is known");
                let expected = match (policy, in_grace) {
                    (Policy::MaxLifetime | Policy::Both, _) => KeyState::TooOld { since: one_day_on },
                    (Policy::MaxUnused, _) => KeyState::Dormant { since: one_day_on },
                    (Policy::None, true) => KeyState::InGrace { valid_until: seconds_after(later, 600) },
                    (Policy::None, false) => KeyState::Active,
                };
                assert_eq!(state.key_state(key, later), expected, "{label}");
                let reason = match expected.refusal() {
                    Some(refusal) => refusal,
                    None if disabled => Reason::UserDisabled,
                    None => Reason::Granted,
                };
                assert_eq!(scenario.check(secret.expose(), "api.events.read", None), reason.as_str(), "{label}");
                let view = PermissionView::of(state, later);
                let user = view.users.iter().find(|user| user.id == booking_app()).expect("listed");
                let shown = user.keys.iter().find(|shown| shown.key_id == first_key()).map(|shown| shown.state);
                assert_eq!(shown, Some(expected), "{label}");
                let row = access_report(state, later).into_iter().find(|row| row.user_id == booking_app());
                let row = row.expect("the report has a row per user");
                if !in_grace {
                    assert_eq!(row.key.as_ref().map(|key| key.state), Some(expected), "{label}");
                    assert_eq!(row.flags.key_blocked_by_policy, policy != Policy::None, "{label}");
                }
                let listed = who_can(state, function("api.events.read"), None, later)
                    .iter()
                    .any(|answer| answer.key_ids.contains(&first_key()));
                assert_eq!(listed, !disabled && expected.is_usable(), "{label}");
            }
        }
    }
}
