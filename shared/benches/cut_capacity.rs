//! How many people's session cuts fit on one target role: IAM allows 10,240
//! characters (whitespace not counted) for all of a role's inline policies.
//! Counted, not timed: `cargo bench -p changegate --bench cut_capacity`
//! prints one JSON line per case (docs/benchmarks.md).

use changegate::ids::IamUserName;
use changegate::session::{ROLE_INLINE_POLICY_LIMIT, SessionCut};
use chrono::{TimeDelta, Utc};

/// The most people with one future window each whose cuts fit beside
/// `others` characters of the role's own inline policies, names of `len`
/// characters; and the share of the budget one cut takes.
fn capacity(len: usize, others: usize) -> (usize, f64) {
    let now = Utc::now();
    let mut cut = SessionCut::empty();
    let mut fitted = 0;
    for i in 0.. {
        let name = format!("{i:0>len$}");
        let user = IamUserName::parse(&name).expect("an IAM user name");
        let end = now + TimeDelta::hours(2) + TimeDelta::minutes(i64::from(i));
        cut.extend(&user, end - TimeDelta::hours(1), end, now);
        let rendered = cut.render(others, now).expect("room for the fallback");
        if rendered.fallback.is_some() {
            break;
        }
        fitted += 1;
    }
    let per_cut = (ROLE_INLINE_POLICY_LIMIT - others) as f64 / fitted as f64;
    (fitted, per_cut)
}

fn main() {
    for (len, others) in [(5, 0), (20, 0), (5, 4_000), (20, 4_000), (64, 0)] {
        let (cuts, per_cut) = capacity(len, others);
        println!(
            r#"{{"case":"names of {len} characters, {others} characters of other inline policies","cuts":{cuts},"chars_per_cut":{per_cut:.0}}}"#
        );
    }
}
