//! The protocol under every interleaving: two or three invocations on one
//! request, run step by step against the in-memory AWS by a small
//! deterministic scheduler that explores *all* their interleavings, and a
//! failed call after any step (the invocation stops there; Lambda retries it
//! with the same request id). After each complete run the invariants hold:
//!
//! - at most one policy per request, and none once the request has ended;
//! - every policy in IAM has a record that claims or grants it;
//! - each decision is announced at most once, and exactly once when no
//!   invocation was given up; each revocation at most once;
//! - a session cut is never later than the window's end.

use std::collections::HashSet;
use std::hash::{DefaultHasher, Hash, Hasher};

use changegate::approval::{ApproverDecision, Decision};
use changegate::config::GrantConfig;
use changegate::eligibility::Scope;
use changegate::events::Cause;
use changegate::events::ChangegateEvent;
use changegate::execution::{ApprovalStep, Execution, Origin, Versions};
use changegate::ids::IamUserName;
use changegate::ids::{ChangeRequestId, Home};
use changegate::memory::{Memory, World, ready};
use changegate::policy::{POLICY_PREFIX, policy_name};
use changegate::ports::{Ledger, UserGrants};
use changegate::protocol::ending::{Ended, Ending, Expiry, SweepItem};
use changegate::protocol::grant::{GrantOutcome, GrantRun};
use changegate::protocol::revocation::Reach;
use changegate::protocol::{Answer, Invocation, Machine, Next, Step, on_fault, perform};
use changegate::record::{DecisionRecord, Holder, LedgerWrite, State};
use changegate::request::RawParameters;
use changegate::status::Status;
use changegate::sweep::sort_grants;
use chrono::{DateTime, TimeDelta, Utc};

const ALICE: &str = "arn:aws:iam::123456789012:user/alice";
const BOB: &str = "arn:aws:iam::123456789012:user/bob";
const ID: &str = "d0585556-80f6-4522-8dad-dada6d45b67d";
const LEASE: TimeDelta = TimeDelta::seconds(160);
/// A marker an invocation leaves in the world (as a schedule name) when an
/// announcement it put could not be recorded: Lambda stopped it at its
/// deadline in between, or the record's write failed (and it could still be
/// stopped before it returns). The one case where a message may go out
/// twice (see docs/protocol.md).
const STOPPED_AFTER_ANNOUNCING: &str = "marker: stopped between announcing and recording it";
/// A marker the End event leaves in the world (as a schedule name).
const GRANTED_FIRST: &str = "marker: ended after the grant was recorded";

fn params(pairs: &[(&str, &str)]) -> RawParameters {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), vec![(*v).to_owned()]))
        .collect()
}

fn t(raw: &str) -> DateTime<Utc> {
    raw.parse().unwrap()
}

fn id() -> ChangeRequestId {
    ChangeRequestId::parse(ID).unwrap()
}

fn config(cut: bool) -> GrantConfig {
    let lookup = move |k: &str| match k {
        "CHANGEGATE_ALLOWED_ACCOUNTS" => Some("111122223333".to_owned()),
        "CHANGEGATE_EVENT_BUS" => Some("changegate".to_owned()),
        "CHANGEGATE_DECISIONS_TABLE" => Some("changegate-decisions".to_owned()),
        "CHANGEGATE_SOURCES" => Some("automation".to_owned()),
        "CHANGEGATE_APPROVERS" => Some(BOB.to_owned()),
        "CHANGEGATE_SESSION_CUTTER_ROLE" if cut => Some("changegate-session-cutter".to_owned()),
        "CHANGEGATE_EXPIRY_SCHEDULE_GROUP" => Some("expiry".to_owned()),
        "CHANGEGATE_EXPIRY_TARGET_ARN" => {
            Some("arn:aws:lambda:us-east-1:123456789012:function:revoke".to_owned())
        }
        "CHANGEGATE_EXPIRY_ROLE_ARN" => {
            Some("arn:aws:iam::123456789012:role/changegate-expiry".to_owned())
        }
        _ => None,
    };
    GrantConfig::from_source(&lookup).unwrap()
}

fn home() -> Home {
    Home::from_function_arn("arn:aws:lambda:us-east-1:123456789012:function:grant").unwrap()
}

/// The request runbook's execution: alice asks for 111122223333 from 09:00 to
/// 10:00 UTC, and bob approved.
fn approved(status: Status) -> Execution {
    Execution {
        status,
        executed_by: Some(ALICE.into()),
        origin: Origin::Automation {
            document: "changegate-access-request".into(),
            parameters: params(&[
                ("IAMUserName", "alice"),
                ("AWSAccountId", "111122223333"),
                ("StartTime", "2026-12-01T09:00:00Z"),
                ("EndTime", "2026-12-01T10:00:00Z"),
            ]),
        },
        approval_steps: vec![ApprovalStep {
            name: "Approve".into(),
            status: Status::Success,
            approval_status: Some("Approved".into()),
            decisions: Some(vec![ApproverDecision {
                approver: BOB.into(),
                decision: Decision::Approve,
            }]),
            approvers: Some(vec![BOB.into()]),
            min_required: Some(1),
        }],
        versions: Versions::current(&[("changegate-access-request", "1")]),
    }
}

fn world() -> World {
    let mut w = World::default();
    w.executions
        .insert(ID.to_owned(), approved(Status::InProgress));
    w.documents
        .insert("changegate-access-request".to_owned(), "1".to_owned());
    w.add_user("alice", Some("111122223333"));
    w.add_user("bob", None);
    w.roles.insert("111122223333/CM-Prd-role".to_owned());
    w
}

fn invocation(name: &str, now: DateTime<Utc>) -> Invocation {
    Invocation {
        id: name.to_owned(),
        lease_until: now + LEASE,
        now,
    }
}

#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)]
enum Status_ {
    /// Not started: its trigger has not fired yet (see [`Kind::fires`]).
    Waiting,
    Running,
    #[allow(dead_code)] // read through Debug, in the state key and failure messages
    Finished(Outcome),
    /// Given up: its retries were spent (the event is in the failure queue).
    Died,
}

/// Which function's path an invocation runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// grant, on any sign of approval.
    Grant,
    /// revoke, on an operator's end of the request.
    Operator,
    /// revoke, on the status event of a request Systems Manager reports cancelled.
    Cancelled,
    /// revoke, on the grant's expiry schedule (at the window's end).
    Expiry,
    /// revoke's minute sweep, listing what IAM holds when it starts.
    Sweep,
}

#[derive(Clone, Debug)]
#[allow(dead_code, clippy::large_enum_variant)] // read through Debug, in the state key and failure messages
enum Outcome {
    Grant(GrantOutcome),
    Ended(Ended),
}

#[derive(Clone, Debug)]
#[allow(clippy::large_enum_variant)]
enum Run<'a> {
    Grant(GrantRun<'a>),
    Ending(Ending),
    Expiry(Expiry),
    Sweep(SweepItem),
}

impl Run<'_> {
    fn next(&mut self) -> Next<Outcome> {
        let wrap = |n: Next<Ended>| match n {
            Next::Do(step) => Next::Do(step),
            Next::Done(e) => Next::Done(Outcome::Ended(e)),
        };
        match self {
            Self::Grant(m) => match m.next() {
                Next::Do(step) => Next::Do(step),
                Next::Done(o) => Next::Done(Outcome::Grant(o)),
            },
            Self::Ending(m) => wrap(m.next()),
            Self::Expiry(m) => wrap(m.next()),
            Self::Sweep(m) => wrap(m.next()),
        }
    }

    fn learn(&mut self, answer: Answer) {
        match self {
            Self::Grant(m) => m.learn(answer),
            Self::Ending(m) => m.learn(answer),
            Self::Expiry(m) => m.learn(answer),
            Self::Sweep(m) => m.learn(answer),
        }
    }
}

#[derive(Clone, Debug)]
struct Actor<'a> {
    kind: Kind,
    run: Option<Run<'a>>,
    inv: Invocation,
    retries: u8,
    status: Status_,
}

impl Kind {
    /// Whether this invocation's trigger has fired in `world`.
    fn fires(self, world: &World) -> bool {
        match self {
            Self::Grant | Self::Operator | Self::Sweep => true,
            Self::Cancelled => world
                .executions
                .get(ID)
                .is_some_and(|e| e.status == Status::Cancelled),
            // The schedule grant wrote fires at the window's end.
            Self::Expiry => world.schedules.contains(&policy_name(&id())),
        }
    }
}

/// What the environment does meanwhile, as one step of its own.
#[derive(Clone, Debug, PartialEq)]
enum Event {
    /// The requester cancels the execution (Systems Manager now reports Cancelled).
    Cancel,
    /// An early end's tombstone lands (what revoke writes first on a cancel or
    /// an operator's end); `granted_first` is set when the record was already
    /// granted then (revoke removes that grant; before it, no grant may stay).
    End,
}

/// What one revoke path sees of the deployment.
const REACH: Reach = Reach {
    cuts: true,
    expiry: true,
};

fn window_end() -> DateTime<Utc> {
    t("2026-12-01T10:00:00Z")
}

fn alice() -> IamUserName {
    IamUserName::parse("alice").unwrap()
}

struct Explorer<'a> {
    config: &'a GrantConfig,
    home: &'a Home,
    seen: HashSet<u64>,
    terminals: usize,
    states: usize,
    check: &'a dyn Fn(&World, &[Actor<'a>]),
}

impl<'a> Explorer<'a> {
    /// The invocation's machine, as its function builds it from its trigger
    /// (the sweep from IAM's listing at that moment); `None` when it has nothing to do.
    fn start(&self, kind: Kind, inv: &Invocation, world: &World) -> Option<Run<'a>> {
        let reach = Reach {
            cuts: self.config.session_cutter.is_some(),
            ..REACH
        };
        Some(match kind {
            Kind::Grant => Run::Grant(GrantRun::new(id(), inv.clone(), self.config, self.home)),
            Kind::Operator => Run::Ending(Ending::new(
                id(),
                Some(alice()),
                Cause::Operator,
                inv.clone(),
                reach,
            )),
            Kind::Cancelled => Run::Ending(Ending::new(
                id(),
                Some(alice()),
                Cause::EndedEarly(Status::Cancelled),
                inv.clone(),
                reach,
            )),
            Kind::Expiry => Run::Expiry(Expiry::new(id(), alice(), None, inv.clone(), reach)),
            // The sweep lists IAM's grants, then the table's unannounced revocations.
            // IAM's listing is sorted as revoke sorts it, held to grant's scope.
            Kind::Sweep => {
                let memory = Memory::new(world.clone());
                let listing = ready(memory.policies_with_prefix(POLICY_PREFIX)).ok()?;
                let scope = Scope {
                    target_role: self.config.target_role.clone(),
                    allowed_accounts: self.config.allowed_accounts.clone(),
                };
                let sorted = sort_grants(&listing.policies, inv.now, Some(&scope));
                let lost = sorted.lost.into_iter().map(|(g, _)| g).next();
                let listed = sorted.ended.into_iter().chain(sorted.active).next();
                match (lost, listed) {
                    (Some(grant), _) => Run::Sweep(SweepItem::lost(grant, inv.clone(), reach)),
                    (None, Some(grant)) => Run::Sweep(SweepItem::new(grant, inv.clone(), reach)),
                    (None, None) => {
                        let pending = ready(memory.unannounced_revocations()).ok()?;
                        let item = pending
                            .iter()
                            .find_map(|r| SweepItem::resume(r, inv.clone(), reach))?;
                        Run::Sweep(item)
                    }
                }
            }
        })
    }

    fn retry(&self, actor: &Actor<'a>) -> Actor<'a> {
        // Lambda's retry: the same request id, a minute later, a new deadline.
        self.retry_at(actor, actor.inv.now)
    }

    fn retry_at(&self, actor: &Actor<'a>, after: DateTime<Utc>) -> Actor<'a> {
        let now = after + TimeDelta::seconds(60);
        let inv = Invocation {
            id: actor.inv.id.clone(),
            lease_until: now + LEASE,
            now,
        };
        Actor {
            kind: actor.kind,
            run: None,
            inv,
            retries: actor.retries - 1,
            status: Status_::Waiting,
        }
    }

    fn dfs(&mut self, world: World, actors: Vec<Actor<'a>>, events: Vec<Event>, faults: u8) {
        let mut h = DefaultHasher::new();
        format!("{world:?}|{actors:?}|{events:?}|{faults}").hash(&mut h);
        if !self.seen.insert(h.finish()) {
            return;
        }
        self.states += 1;
        // Time moves forward. Invocations start in the order of their times
        // (a retry included), and one starts only once every running
        // invocation could still be running then (its deadline, its lease, is
        // not before). A running invocation that holds a later one up is
        // stopped at its deadline by Lambda, which retries it after.
        let fired: Vec<usize> = (0..actors.len())
            .filter(|&i| {
                matches!(actors[i].status, Status_::Waiting) && actors[i].kind.fires(&world)
            })
            .collect();
        let first = fired.iter().map(|&i| actors[i].inv.now).min();
        let overdue = |a: &Actor<'_>| first.is_some_and(|f| a.inv.lease_until < f);
        let running = |i: usize| matches!(actors[i].status, Status_::Running);
        let held_up = (0..actors.len()).any(|i| running(i) && overdue(&actors[i]));
        let movable: Vec<usize> = (0..actors.len())
            .filter(|&i| {
                running(i) || (fired.contains(&i) && !held_up && Some(actors[i].inv.now) == first)
            })
            .collect();
        if movable.is_empty() && events.is_empty() {
            self.terminals += 1;
            (self.check)(&world, &actors);
            return;
        }
        for (e, event) in events.iter().enumerate() {
            let mut w = world.clone();
            match event {
                Event::Cancel => {
                    if let Some(x) = w.executions.get_mut(ID) {
                        x.status = Status::Cancelled;
                    }
                }
                Event::End => {
                    let granted = w
                        .record(&id())
                        .is_some_and(|r| r.state == Some(State::Granted));
                    let end = LedgerWrite::End {
                        id: id(),
                        cause: Cause::Operator,
                        at: t("2026-12-01T08:59:30Z"),
                        by: None,
                    };
                    let memory = Memory::new(w);
                    assert!(ready(memory.write(&end)).unwrap());
                    w = memory.world.into_inner();
                    if granted {
                        w.schedules.insert(GRANTED_FIRST.to_owned());
                    }
                }
            }
            let mut rest = events.clone();
            rest.remove(e);
            self.dfs(w, actors.clone(), rest, faults);
        }
        for i in movable {
            let mut actors = actors.clone();
            // (Being stopped is a failure too: it takes from the same budget.)
            if running(i) && overdue(&actors[i]) && faults > 0 {
                let before = actors.clone();
                // Stopped between putting an announcement and recording it:
                // its retry cannot know the put was made, and announces again.
                let mut peek = actors[i].run.clone();
                let settling = peek
                    .as_mut()
                    .is_some_and(|r| matches!(r.next(), Next::Do(Step::Settle(_))));
                let mut world = world.clone();
                if settling {
                    world.schedules.insert(STOPPED_AFTER_ANNOUNCING.to_owned());
                }
                let deadline = actors[i].inv.lease_until;
                actors[i] = match actors[i].retries {
                    0 => Actor {
                        status: Status_::Died,
                        ..actors[i].clone()
                    },
                    _ => self.retry_at(&actors[i], deadline - TimeDelta::seconds(59)),
                };
                self.dfs(world, actors, events.clone(), faults - 1);
                // (Or it is not stopped yet, and takes its next step.)
                actors = before.clone();
            }
            if matches!(actors[i].status, Status_::Waiting) {
                // The trigger fires: the function starts (a sweep lists IAM).
                let run = self.start(actors[i].kind, &actors[i].inv, &world);
                actors[i].status = match &run {
                    Some(_) => Status_::Running,
                    None => Status_::Finished(Outcome::Ended(Ended::Nothing(
                        "nothing listed".to_owned(),
                    ))),
                };
                actors[i].run = run;
                self.dfs(world.clone(), actors, events.clone(), faults);
                continue;
            }
            let Some(run) = actors[i].run.as_mut() else {
                unreachable!("a running invocation has its machine")
            };
            let step = match run.next() {
                Next::Done(outcome) => {
                    actors[i].status = Status_::Finished(outcome);
                    self.dfs(world.clone(), actors, events.clone(), faults);
                    continue;
                }
                Next::Do(step) => step,
            };
            // The step succeeds.
            let memory = Memory::new(world.clone());
            let now = actors[i].inv.now;
            let mut ok = actors.clone();
            match ready(perform(&memory, &step, now)) {
                Ok(answer) => {
                    if let Some(run) = ok[i].run.as_mut() {
                        run.learn(answer)
                    }
                }
                Err(fault) => panic!("the in-memory AWS refused {step:?}: {fault}"),
            }
            self.dfs(memory.world.into_inner(), ok, events.clone(), faults);
            // The step fails (not applied): the invocation stops, and Lambda retries it.
            if faults > 0 {
                let mut failed = actors;
                let mut world = world.clone();
                match on_fault(&step) {
                    // An announcement made but not recorded: should the
                    // invocation still be stopped before it returns, its
                    // retry announces again.
                    Some(answer) => {
                        world.schedules.insert(STOPPED_AFTER_ANNOUNCING.to_owned());
                        if let Some(run) = failed[i].run.as_mut() {
                            run.learn(answer)
                        }
                    }
                    None if failed[i].retries > 0 => failed[i] = self.retry(&failed[i]),
                    None => failed[i].status = Status_::Died,
                }
                self.dfs(world, failed, events.clone(), faults - 1);
            }
        }
    }
}

/// What every complete run is checked by, whatever ran: at most one policy
/// and one `PutUserPolicy` per request, every policy claimed or granted by its
/// record, each decision and each revocation announced at most once (twice
/// only after an announcement that could not be recorded), no cut after the
/// window's end. Returns what the run left, for the case's own checks.
fn common(world: &World, actors: &[Actor<'_>]) -> Left {
    let holders = world.holders_of(&policy_name(&id()));
    let record = world.record(&id());
    assert!(holders.len() <= 1, "one policy per request: {holders:?}");
    assert!(
        world.policy_writes <= 1,
        "the policy is written once, whatever runs at the same time: {} writes {actors:#?}",
        world.policy_writes
    );
    if !holders.is_empty() {
        let r = record.as_ref().expect("every policy in IAM has a record");
        assert!(
            matches!(r.state, Some(State::Granting | State::Granted)),
            "the policy's record claims or grants it: {r:?}"
        );
    }
    let count =
        |f: fn(&ChangegateEvent) -> bool| world.announcements.iter().filter(|e| f(e)).count();
    let left = Left {
        granted: count(|e| matches!(e, ChangegateEvent::Granted(_))),
        decisions: count(|e| {
            matches!(e, ChangegateEvent::Granted(_) | ChangegateEvent::Refused(_))
        }),
        revocations: count(|e| matches!(e, ChangegateEvent::Revoked(_))),
        once: if world.schedules.contains(STOPPED_AFTER_ANNOUNCING) {
            2
        } else {
            1
        },
        given_up: actors.iter().any(|a| matches!(a.status, Status_::Died)),
        ended: record.as_ref().is_some_and(|r| r.ended.is_some()),
        cancelled: world
            .executions
            .get(ID)
            .is_some_and(|e| e.status == Status::Cancelled),
        holders,
        record,
    };
    assert!(
        left.decisions <= left.once,
        "each decision announced at most once: {:?} {actors:#?}",
        world.announcements
    );
    assert!(
        left.revocations <= left.once,
        "each revocation announced at most once: {:?}",
        world.announcements
    );
    for cut in world.cuts.values() {
        for c in cut.cuts() {
            assert!(
                c.at <= window_end(),
                "a cut is never later than the window's end: {c:?}"
            );
        }
    }
    left
}

/// What a complete run left.
struct Left {
    holders: Vec<String>,
    record: Option<DecisionRecord>,
    granted: usize,
    decisions: usize,
    revocations: usize,
    /// How many announcements of one decision the run allows (see [`common`]).
    once: usize,
    given_up: bool,
    ended: bool,
    cancelled: bool,
}

/// The invariants of grant's cases, after every complete run: [`common`], and
/// no policy after an end that preceded the grant, none from a forged record,
/// the decision announced, an approved request granted.
fn invariants(world: &World, actors: &[Actor<'_>]) {
    let left = common(world, actors);
    let (holders, record) = (&left.holders, &left.record);
    // (An end that came after the grant was recorded is revoke's to remove.)
    if left.ended && !world.schedules.contains(GRANTED_FIRST) {
        assert!(
            holders.is_empty(),
            "no policy after an end: {record:?} {actors:#?}"
        );
    }
    if forged(world) {
        assert!(
            holders.is_empty(),
            "a forged record grants nothing: {holders:?}"
        );
    }
    if !left.given_up && !left.ended && !forged(world) {
        assert!(
            (1..=left.once).contains(&left.decisions),
            "the decision is announced: {world:?} {actors:?}"
        );
    }
    if !left.given_up && !left.ended && !left.cancelled && !forged(world) {
        assert!(
            matches!(record.as_ref().and_then(|r| r.state), Some(State::Granted)),
            "an approved request is granted: {record:?}"
        );
        assert_eq!(holders.len(), 1);
    }
}

/// Whether the run started from a record someone forged (see the forged cases).
fn forged(world: &World) -> bool {
    world.schedules.contains(FORGED)
}

const FORGED: &str = "marker: the table was written by someone else";

fn explore(
    actors: &[(Kind, &str, DateTime<Utc>)],
    events: Vec<Event>,
    faults: u8,
    cut: bool,
) -> (usize, usize) {
    explore_from(world(), actors, events, faults, cut)
}

fn explore_from(
    start: World,
    actors: &[(Kind, &str, DateTime<Utc>)],
    events: Vec<Event>,
    faults: u8,
    cut: bool,
) -> (usize, usize) {
    explore_checking(start, actors, events, faults, cut, &invariants)
}

fn explore_checking(
    start: World,
    actors: &[(Kind, &str, DateTime<Utc>)],
    events: Vec<Event>,
    faults: u8,
    cut: bool,
    check: &dyn Fn(&World, &[Actor<'_>]),
) -> (usize, usize) {
    let config = config(cut);
    let home = home();
    let mut ex = Explorer {
        config: &config,
        home: &home,
        seen: HashSet::new(),
        terminals: 0,
        states: 0,
        check,
    };
    let actors: Vec<Actor<'_>> = actors
        .iter()
        .map(|(kind, name, now)| Actor {
            kind: *kind,
            run: None,
            inv: invocation(name, *now),
            retries: 2,
            status: Status_::Waiting,
        })
        .collect();
    ex.dfs(start, actors, events, faults);
    eprintln!(
        "explored {} states, {} complete runs",
        ex.states, ex.terminals
    );
    (ex.states, ex.terminals)
}

#[test]
fn given_two_deliveries_at_once_when_every_interleaving_and_one_failed_call_run_then_one_grant_announced_once()
 {
    let at = t("2026-12-01T08:59:00Z");
    let (_, runs) = explore(
        &[(Kind::Grant, "a", at), (Kind::Grant, "b", at)],
        vec![],
        1,
        true,
    );
    assert!(runs > 50, "the scheduler explored {runs} runs");
}

#[test]
fn given_a_claim_whose_holder_died_when_a_later_delivery_comes_then_it_takes_over_and_grants_once()
{
    let at = t("2026-12-01T08:59:00Z");
    let later = at + LEASE + TimeDelta::seconds(1);
    let (_, runs) = explore(
        &[(Kind::Grant, "a", at), (Kind::Grant, "b", later)],
        vec![],
        1,
        true,
    );
    assert!(runs > 50, "the scheduler explored {runs} runs");
}

#[test]
fn given_a_cancel_racing_two_deliveries_when_every_interleaving_runs_then_nothing_outlives_the_end()
{
    let at = t("2026-12-01T08:59:00Z");
    let (_, runs) = explore(
        &[(Kind::Grant, "a", at), (Kind::Grant, "b", at)],
        vec![Event::Cancel],
        1,
        false,
    );
    assert!(runs > 50, "the scheduler explored {runs} runs");
}

#[test]
fn given_an_early_end_racing_two_deliveries_when_every_interleaving_runs_then_no_grant_stays_that_the_end_preceded()
 {
    let at = t("2026-12-01T08:59:00Z");
    let (_, runs) = explore(
        &[(Kind::Grant, "a", at), (Kind::Grant, "b", at)],
        vec![Event::End],
        1,
        false,
    );
    assert!(runs > 50, "the scheduler explored {runs} runs");
}

/// A claim someone wrote into the table themselves, for `account` until `end`,
/// whose holder's lease has run out.
fn forged_claim(world: &mut World, account: &str, end: &str) {
    let holder = Holder {
        owner: "mallory".into(),
        lease_until: t("2026-12-01T08:00:00Z"),
    };
    let mut record = DecisionRecord::refused(
        &id(),
        &changegate::refusal::Refusal::ApprovalUnknown,
        Some(ALICE.into()),
        &holder,
        t("2026-12-01T08:00:00Z"),
    );
    record.state = Some(State::Granting);
    record.reason_code = None;
    record.reason = None;
    record.grant = Some(changegate::record::Decided {
        source: "automation".into(),
        beneficiary: "alice".into(),
        beneficiary_id: None,
        approvers: vec![],
        account: account.into(),
        role: "OrganizationAccountAccessRole".into(),
        window: changegate::events::WindowDetail {
            start: "2026-12-01T08:00:00Z".into(),
            end: end.into(),
            start_offset: "Z".into(),
            end_offset: "Z".into(),
        },
        request_reason: None,
        named_sessions: false,
    });
    world.ledger.insert(ID.to_owned(), record.to_item());
    world.schedules.insert(FORGED.to_owned());
}

#[test]
fn given_a_forged_claim_for_a_request_ssm_does_not_know_when_grant_runs_then_nothing_is_attached() {
    let mut w = world();
    w.executions.clear();
    forged_claim(&mut w, "999988887777", "2027-12-01T08:00:00Z");
    let at = t("2026-12-01T08:59:00Z");
    explore_from(
        w,
        &[(Kind::Grant, "a", at), (Kind::Grant, "b", at)],
        vec![],
        1,
        false,
    );
}

#[test]
fn given_a_forged_claim_that_disagrees_with_ssm_when_grant_runs_then_nothing_is_attached() {
    let mut w = world();
    forged_claim(&mut w, "999988887777", "2027-12-01T08:00:00Z");
    let at = t("2026-12-01T08:59:00Z");
    explore_from(
        w,
        &[(Kind::Grant, "a", at), (Kind::Grant, "b", at)],
        vec![],
        1,
        false,
    );
}

#[test]
fn given_a_forged_claim_that_disagrees_with_ssm_when_grant_runs_then_the_refusal_says_both_grants()
{
    // Given an approved request, and a claim someone wrote for another account and a year
    let mut w = world();
    forged_claim(&mut w, "999988887777", "2027-12-01T08:00:00Z");
    let memory = Memory::new(w);
    let (config, home) = (config(false), home());
    let inv = invocation("a", t("2026-12-01T08:59:00Z"));

    // When grant runs
    let mut run = GrantRun::new(id(), inv.clone(), &config, &home);
    let outcome = ready(changegate::protocol::run(&mut run, &memory, inv.now)).unwrap();

    // Then it is refused with both grants named, and nothing is written or attached
    assert_eq!(
        outcome,
        GrantOutcome::Refused {
            change_request_id: ID.to_owned(),
            reason_code: "record-disagrees".to_owned(),
            reason: "changegate's decision record for this request names another grant (alice on 999988887777/OrganizationAccountAccessRole from 2026-12-01T08:00:00Z to 2027-12-01T08:00:00Z) than Systems Manager's record of the request (alice on 111122223333/CM-Prd-role from 2026-12-01T09:00:00Z to 2026-12-01T10:00:00Z); nothing was granted. Operators were alerted.".to_owned(),
        }
    );
    let world = memory.world.into_inner();
    assert!(world.holders_of(&policy_name(&id())).is_empty());
    assert!(world.announcements.is_empty());
    assert_eq!(world.policy_writes, 0);
}

/// The invariants once revoke runs too: [`common`], the requester hears what
/// happened (the decision, or, when the end undid a grant in the making, the
/// revocation; a request its requester cancelled before anything was granted
/// may end in silence), and when the request or window ended and revoke ran,
/// no policy is left and a grant that was announced is announced revoked.
fn ending_invariants(world: &World, actors: &[Actor<'_>]) {
    let left = common(world, actors);
    if left.given_up {
        return;
    }
    if !left.cancelled {
        assert!(
            left.decisions >= 1 || left.revocations >= 1,
            "the requester hears what happened: {:?} {actors:#?}",
            world.announcements
        );
    }
    let revoke_ran = actors
        .iter()
        .any(|a| a.kind != Kind::Grant && matches!(a.status, Status_::Finished(_)));
    let over = left.ended
        || actors
            .iter()
            .any(|a| a.kind != Kind::Grant && a.inv.now >= window_end());
    if revoke_ran && over {
        assert!(
            left.holders.is_empty(),
            "nothing is left once revoke ran: {:?} {:?} {actors:#?}",
            left.holders,
            left.record
        );
        if left.granted >= 1 {
            assert!(
                (1..=left.once).contains(&left.revocations),
                "a grant announced is announced revoked: {:?}",
                world.announcements
            );
        }
    }
}

/// The world after one grant invocation granted and announced the request.
fn granted_world() -> World {
    let memory = Memory::new(world());
    let (config, home) = (config(true), home());
    let inv = invocation("first", t("2026-12-01T08:59:00Z"));
    let mut run = GrantRun::new(id(), inv.clone(), &config, &home);
    let outcome = ready(changegate::protocol::run(&mut run, &memory, inv.now)).unwrap();
    assert!(
        matches!(outcome, GrantOutcome::Granted { .. }),
        "{outcome:?}"
    );
    memory.world.into_inner()
}

#[test]
fn given_an_operator_ending_a_request_while_two_deliveries_grant_it_when_every_interleaving_runs_then_nothing_stays_and_each_message_goes_once()
 {
    let at = t("2026-12-01T08:59:00Z");
    let op = t("2026-12-01T08:59:30Z");
    let (_, runs) = explore_checking(
        world(),
        &[(Kind::Grant, "a", at), (Kind::Operator, "o", op)],
        vec![],
        1,
        true,
        &ending_invariants,
    );
    assert!(runs > 50, "the scheduler explored {runs} runs");
    let (_, runs) = explore_checking(
        world(),
        &[
            (Kind::Grant, "a", at),
            (Kind::Grant, "b", at),
            (Kind::Operator, "o", op),
        ],
        vec![],
        0,
        false,
        &ending_invariants,
    );
    assert!(runs > 50, "the scheduler explored {runs} runs");
}

#[test]
fn given_a_cancel_and_its_status_event_racing_a_grant_when_every_interleaving_runs_then_nothing_stays()
 {
    let at = t("2026-12-01T08:59:00Z");
    let (_, runs) = explore_checking(
        world(),
        &[
            (Kind::Grant, "a", at),
            (Kind::Cancelled, "c", t("2026-12-01T08:59:20Z")),
        ],
        vec![Event::Cancel],
        1,
        true,
        &ending_invariants,
    );
    assert!(runs > 50, "the scheduler explored {runs} runs");
}

#[test]
fn given_a_late_delivery_racing_the_expiry_when_every_interleaving_runs_then_the_grant_goes_once() {
    let (_, runs) = explore_checking(
        world(),
        &[
            (Kind::Grant, "a", t("2026-12-01T08:59:00Z")),
            (Kind::Expiry, "x", t("2026-12-01T10:00:01Z")),
            (Kind::Grant, "late", t("2026-12-01T10:00:02Z")),
        ],
        vec![],
        1,
        true,
        &ending_invariants,
    );
    assert!(runs > 40, "the scheduler explored {runs} runs");
}

#[test]
fn given_the_expiry_and_the_sweep_at_the_window_end_when_every_interleaving_runs_then_it_is_revoked_once()
 {
    let (_, runs) = explore_checking(
        granted_world(),
        &[
            (Kind::Expiry, "x", t("2026-12-01T10:00:01Z")),
            (Kind::Sweep, "s", t("2026-12-01T10:00:30Z")),
        ],
        vec![],
        1,
        true,
        &ending_invariants,
    );
    assert!(runs > 20, "the scheduler explored {runs} runs");
}

#[test]
fn given_an_operator_end_and_the_sweep_inside_the_window_when_every_interleaving_runs_then_it_is_revoked_once()
 {
    let at = t("2026-12-01T09:30:00Z");
    let (_, runs) = explore_checking(
        granted_world(),
        &[(Kind::Operator, "o", at), (Kind::Sweep, "s", at)],
        vec![],
        1,
        true,
        &ending_invariants,
    );
    assert!(runs > 20, "the scheduler explored {runs} runs");
    let (_, runs) = explore_checking(
        granted_world(),
        &[(Kind::Cancelled, "c", at), (Kind::Sweep, "s", at)],
        vec![Event::Cancel],
        1,
        true,
        &ending_invariants,
    );
    assert!(runs > 20, "the scheduler explored {runs} runs");
}

/// A granted world where the security team has since taken alice's eligibility away.
fn ineligible_world() -> World {
    let mut world = granted_world();
    world.users.get_mut("alice").unwrap().tag = None;
    world
}

#[test]
fn given_eligibility_taken_away_when_the_sweep_races_a_late_delivery_then_the_grant_goes_once_as_no_longer_eligible()
 {
    let at = t("2026-12-01T09:30:00Z");
    let check = |world: &World, actors: &[Actor<'_>]| {
        ending_invariants(world, actors);
        let swept = actors
            .iter()
            .any(|a| a.kind == Kind::Sweep && matches!(a.status, Status_::Finished(_)));
        if !swept {
            return;
        }
        // Inside the window (a retry runs a minute later, still inside it),
        // the sweep itself ends the request: nothing stays.
        assert!(
            world.holders_of(&policy_name(&id())).is_empty(),
            "the sweep removed the grant"
        );
        let causes: Vec<&str> = world
            .announcements
            .iter()
            .filter_map(|e| match e {
                ChangegateEvent::Revoked(r) => Some(r.cause.as_str()),
                _ => None,
            })
            .collect();
        assert!(
            causes.iter().all(|c| *c == "no-longer-eligible"),
            "the revocation says why: {causes:?}"
        );
        let now_cut = world
            .cuts
            .values()
            .flat_map(|c| c.cuts())
            .any(|c| c.is_for(&alice()) && c.at < window_end());
        assert!(
            now_cut,
            "live sessions are cut now, not at the window's end: {:?} {actors:#?}",
            world.cuts
        );
    };
    let (_, runs) = explore_checking(
        ineligible_world(),
        &[(Kind::Sweep, "s", at), (Kind::Grant, "late", at)],
        vec![],
        1,
        true,
        &check,
    );
    assert!(runs > 20, "the scheduler explored {runs} runs");
}

#[test]
fn given_a_user_still_eligible_when_the_sweep_runs_inside_the_window_then_the_grant_stays() {
    let at = t("2026-12-01T09:30:00Z");
    let check = |world: &World, actors: &[Actor<'_>]| {
        common(world, actors);
        if actors
            .iter()
            .all(|a| matches!(a.status, Status_::Finished(_)))
        {
            assert_eq!(world.holders_of(&policy_name(&id())).len(), 1);
            assert!(
                world
                    .announcements
                    .iter()
                    .all(|e| !matches!(e, ChangegateEvent::Revoked(_)))
            );
        }
    };
    explore_checking(
        granted_world(),
        &[(Kind::Sweep, "s", at)],
        vec![],
        0,
        true,
        &check,
    );
}

/// A world where alice already holds five open requests (the default
/// limit), all started before this one.
fn crowded_world(status: Status) -> World {
    let mut world = world();
    world.executions.get_mut(ID).unwrap().status = status;
    world
        .started
        .insert(ID.to_owned(), t("2026-12-01T08:30:00Z"));
    for i in 0..5 {
        let older = format!("0000000{i}-0000-0000-0000-000000000000");
        world
            .executions
            .insert(older.clone(), approved(Status::Waiting));
        world
            .started
            .insert(older, t("2026-12-01T08:00:00Z") + TimeDelta::minutes(i));
    }
    world
}

/// At every complete run where no invocation gave up: the request over the
/// limit is refused for it and announced once, its execution is stopped,
/// nothing is attached, and the older requests are left running.
fn admission_invariants(world: &World, actors: &[Actor<'_>]) {
    let left = common(world, actors);
    if left.given_up {
        return;
    }
    assert!(
        left.holders.is_empty() && world.policy_writes == 0,
        "nothing is attached"
    );
    let refusals: Vec<&str> = world
        .announcements
        .iter()
        .filter_map(|e| match e {
            ChangegateEvent::Refused(r) => Some(r.reason_code.as_str()),
            _ => None,
        })
        .collect();
    assert!(
        (1..=left.once).contains(&refusals.len()),
        "refused and said so once: {:?}",
        world.announcements
    );
    assert!(
        refusals.iter().all(|c| *c == "too-many-open-requests"),
        "{refusals:?}"
    );
    assert_eq!(
        world.executions[ID].status,
        Status::Cancelled,
        "its execution is stopped"
    );
    let still_open = world
        .executions
        .iter()
        .filter(|(id, e)| id.as_str() != ID && e.status == Status::Waiting)
        .count();
    assert_eq!(still_open, 5, "the older requests keep running");
}

#[test]
fn given_a_person_at_the_open_request_limit_when_two_deliveries_of_an_approval_and_a_fault_run_then_it_is_refused_stopped_and_said_once()
 {
    let at = t("2026-12-01T08:59:00Z");
    let (_, runs) = explore_checking(
        crowded_world(Status::InProgress),
        &[(Kind::Grant, "a", at), (Kind::Grant, "b", at)],
        vec![],
        1,
        true,
        &admission_invariants,
    );
    assert!(runs > 20, "the scheduler explored {runs} runs");
}

#[test]
fn given_a_person_at_the_open_request_limit_when_their_new_request_waits_for_approval_then_it_is_refused_and_stopped_before_it()
 {
    let at = t("2026-12-01T08:31:00Z");
    let (_, runs) = explore_checking(
        crowded_world(Status::Waiting),
        &[(Kind::Grant, "a", at)],
        vec![],
        1,
        true,
        &admission_invariants,
    );
    assert!(runs >= 5, "the scheduler explored {runs} runs");
}

#[test]
fn given_a_person_below_the_open_request_limit_when_approved_then_it_is_granted() {
    let mut world = crowded_world(Status::InProgress);
    world
        .executions
        .remove("00000004-0000-0000-0000-000000000000");
    let memory = Memory::new(world);
    let (config, home) = (config(true), home());
    let inv = invocation("a", t("2026-12-01T08:59:00Z"));
    let mut run = GrantRun::new(id(), inv.clone(), &config, &home);
    let outcome = ready(changegate::protocol::run(&mut run, &memory, inv.now)).unwrap();
    assert!(
        matches!(outcome, GrantOutcome::Granted { .. }),
        "{outcome:?}"
    );
}

/// The steps one grant invocation takes on `world`, to its end.
fn steps_of(world: World) -> (Vec<Step>, World) {
    let memory = Memory::new(world);
    let (config, home) = (config(true), home());
    let inv = invocation("a", t("2026-12-01T08:59:00Z"));
    let mut run = GrantRun::new(id(), inv.clone(), &config, &home);
    let mut steps = Vec::new();
    while let Next::Do(step) = run.next() {
        let answer = ready(perform(&memory, &step, inv.now)).unwrap();
        steps.push(step);
        run.learn(answer);
        assert!(steps.len() < 50, "grant does not end: {steps:?}");
    }
    (steps, memory.world.into_inner())
}

fn stops(steps: &[Step]) -> usize {
    steps.iter().filter(|s| matches!(s, Step::Stop(_))).count()
}

#[test]
fn given_a_refused_request_runbook_execution_still_running_when_grant_refuses_it_then_it_is_stopped_once()
 {
    // Given alice approved her own request (self-approved), still running
    let mut world = world();
    let exec = world.executions.get_mut(ID).unwrap();
    exec.approval_steps[0].decisions = Some(vec![ApproverDecision {
        approver: ALICE.into(),
        decision: Decision::Approve,
    }]);
    exec.approval_steps[0].approvers = Some(vec![ALICE.into(), BOB.into()]);
    let (steps, after) = steps_of(world);
    assert_eq!(stops(&steps), 1, "{steps:?}");
    assert_eq!(after.executions[ID].status, Status::Cancelled);
    // And a later look at the refused record stops nothing more.
    let (again, _) = steps_of(after);
    assert_eq!(stops(&again), 0, "{again:?}");
}

#[test]
fn given_refusals_whose_execution_ended_or_is_not_the_request_runbooks_when_grant_refuses_them_then_nothing_is_stopped()
 {
    // Given a request rejected (ended), an execution of another document,
    // and a change request (not this deployment's source): all refused.
    let mut rejected = world();
    rejected.executions.get_mut(ID).unwrap().status = Status::Failed;
    let mut look_alike = world();
    if let Origin::Automation { document, .. } =
        &mut look_alike.executions.get_mut(ID).unwrap().origin
    {
        *document = "changegate-access-request-copy".into();
    }
    let mut change_request = world();
    let exec = change_request.executions.get_mut(ID).unwrap();
    let parameters = match &exec.origin {
        Origin::Automation { parameters, .. } => parameters.clone(),
        Origin::ChangeRequest { .. } => unreachable!(),
    };
    exec.origin = Origin::ChangeRequest {
        template: "changegate-access".into(),
        runbooks: vec![changegate::execution::RunbookRun {
            document: "changegate-access-runbook".into(),
            parameters,
        }],
    };
    for (case, world) in [
        ("rejected", rejected),
        ("look-alike", look_alike),
        ("change request", change_request),
    ] {
        let status = world.executions[ID].status.clone();
        let (steps, after) = steps_of(world);
        assert!(
            after
                .announcements
                .iter()
                .any(|e| matches!(e, ChangegateEvent::Refused(_))),
            "{case}: refused"
        );
        assert_eq!(stops(&steps), 0, "{case}: {steps:?}");
        assert_eq!(after.executions[ID].status, status, "{case}");
    }
}

/// The sweep's steps over the one active grant of `world`, inside its window.
fn sweep_steps(world: World) -> Vec<Step> {
    let memory = Memory::new(world);
    let inv = invocation("s", t("2026-12-01T09:30:00Z"));
    let listing = ready(memory.policies_with_prefix(POLICY_PREFIX)).unwrap();
    let sorted = sort_grants(&listing.policies, inv.now, None);
    let [grant] = sorted.active.as_slice() else {
        panic!("one active grant: {sorted:?}");
    };
    let reach = Reach {
        cuts: true,
        expiry: true,
    };
    let mut item = SweepItem::new(grant.clone(), inv.clone(), reach);
    let mut steps = Vec::new();
    while let Next::Do(step) = item.next() {
        let answer = ready(perform(&memory, &step, inv.now)).unwrap();
        steps.push(step);
        item.learn(answer);
    }
    steps
}

#[test]
fn given_a_runbook_requests_grant_inside_its_window_when_the_sweep_checks_it_then_it_reads_the_record_only()
 {
    // Given alice's request runbook request granted (its execution then
    // finishes; an early end is the end runbook's own action)
    let steps = sweep_steps(granted_world());
    // Then the sweep reads its record and not Systems Manager's execution
    assert!(
        matches!(steps.as_slice(), [Step::ReadRecord(_)]),
        "{steps:?}"
    );
    // Given the same grant decided for a change request (whose cancel the
    // sweep still catches from Systems Manager's record)
    let mut world = granted_world();
    let mut record = DecisionRecord::from_item(&id(), &world.ledger[ID]);
    if let Some(g) = record.grant.as_mut() {
        g.source = "change-manager".into();
    }
    world.ledger.insert(ID.to_owned(), record.to_item());
    let steps = sweep_steps(world);
    assert!(
        matches!(
            steps.as_slice(),
            [Step::ReadRecord(_), Step::ReadRequest(_)]
        ),
        "{steps:?}"
    );
}

#[test]
fn given_a_revocation_already_announced_when_the_sweep_looks_at_it_then_it_is_not_taken_up_again() {
    // Given alice's granted record, its revocation recorded by this very
    // sweep ("s", the recorder a retry would resume as) and by another
    // invocation whose lease ran out
    let world = granted_world();
    let mut record = DecisionRecord::from_item(&id(), &world.ledger[ID]);
    let at = t("2026-12-01T10:00:01Z");
    let inv = invocation("s", t("2026-12-01T10:10:00Z"));
    let reach = Reach {
        cuts: true,
        expiry: true,
    };
    for by in ["s", "long-gone"] {
        let revoked = |announced: bool| changegate::record::Revoked {
            at,
            cause: Cause::WindowEnded,
            lag_ms: Some(1000),
            by: Some(by.to_owned()),
            lease_until: Some(at + LEASE),
            announced,
            sessions: None,
        };
        // Then an unannounced one is taken up (to announce it)
        record.revoked = Some(revoked(false));
        assert!(
            SweepItem::resume(&record, inv.clone(), reach).is_some(),
            "{by}"
        );
        // And an announced one never is, whoever recorded it
        record.revoked = Some(revoked(true));
        assert!(
            SweepItem::resume(&record, inv.clone(), reach).is_none(),
            "{by}"
        );
    }
}

#[test]
fn given_the_sweeps_look_at_a_grant_when_it_only_reads_then_it_is_checking_and_a_removal_is_not() {
    // Given alice's active grant, as the sweep lists it
    let memory = Memory::new(granted_world());
    let listing = ready(memory.policies_with_prefix(POLICY_PREFIX)).unwrap();
    let inside = t("2026-12-01T09:30:00Z");
    let sorted = sort_grants(&listing.policies, inside, None);
    let grant = sorted.active[0].clone();
    let reach = Reach {
        cuts: true,
        expiry: true,
    };
    // Then, inside the window, the sweep is checking (a fault is a deferred
    // check, not a failed revocation) until it knows the grant is due
    let mut item = SweepItem::new(grant.clone(), invocation("s", inside), reach);
    assert!(item.checking());
    let Next::Do(step) = item.next() else {
        panic!("the sweep reads the record first");
    };
    item.learn(ready(perform(&memory, &step, inside)).unwrap());
    assert!(
        !item.checking(),
        "the record read, nothing is left to check"
    );
    // And past the window's end it is removing at once, not checking
    let late = SweepItem::new(grant, invocation("s", t("2026-12-01T10:30:00Z")), reach);
    assert!(!late.checking());
}
