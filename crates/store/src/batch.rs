//! Group commit for reports: many concurrent reports written by one transaction of a few
//! multi-row statements, so that a burst costs a handful of round trips and one WAL flush
//! instead of seven statements and a flush per report. Same guarantees as [`Store::report`]:
//! one key makes one case, a reused key with another report is refused, the reply comes after
//! the commit.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, FixedOffset, Utc};
use domain::case::{CaseState, Event};
use domain::record::{CaseRecord, case_number};
use domain::report::NewReport;
use domain::{CaseId, Severity};
use uuid::Uuid;

use crate::cases::{Actor, ReportOutcome};
use crate::rows::corrupt;
use crate::writer::columns::{AuditColumns, CaseColumns, EventColumns};
use crate::{Result, Store, StoreError};

/// One report of a batch.
#[derive(Debug, Clone)]
pub struct BatchItem {
    pub report: NewReport,
    pub severity: Severity,
    pub actor: Actor,
    pub trace: BTreeMap<String, String>,
    /// The reporter's contact, sealed by the server: written beside the new case.
    pub contact: Option<crate::SealedContact>,
    /// The open case this report repeats, as the server found it (ADR 0044).
    pub repeat: Option<RepeatLink>,
    /// How many times the report's spot has been reported within the county's recurrence
    /// period, this report included; 1 without a recurrence rule.
    pub spot_reports: u32,
}

/// The open case a new report repeats.
#[derive(Debug, Clone, Copy)]
pub struct RepeatLink {
    pub into: CaseId,
    pub distance_m: u32,
}

/// A new case's route, decided in the report's own transaction: the state after the routing
/// events, the timers they start and the queue entries they send.
#[derive(Debug, Clone)]
pub struct Routed {
    pub state: CaseState,
    pub events: Vec<Event>,
    pub arms: Vec<crate::Arm>,
    pub outbox: Vec<queue::Message>,
}

/// Decides a new case's route, or leaves it to the router (`None`).
pub type Route<'a> = dyn FnMut(&CaseRecord) -> Option<Routed> + Send + 'a;

/// What the server plans for the cases a batch writes.
pub trait Planner: Send {
    /// A new case's route; `None` leaves it to the router.
    fn route(&mut self, rec: &CaseRecord) -> Option<Routed>;
    /// What follows when a case's spot has been reported `spot_reports` times (the county's
    /// recurrence rule): for a new case before its route, for an open case after a repeat was
    /// linked into it. `None`: nothing follows.
    fn recur(&mut self, rec: &CaseRecord, spot_reports: u32) -> Option<Routed> {
        let _ = (rec, spot_reports);
        None
    }
}

impl<F: FnMut(&CaseRecord) -> Option<Routed> + Send> Planner for F {
    fn route(&mut self, rec: &CaseRecord) -> Option<Routed> {
        self(rec)
    }
}

/// A case a repeat of this batch is linked into: as locked, and as it becomes.
struct Original {
    before: CaseRecord,
    after: CaseRecord,
    events: Vec<Event>,
    arms: Vec<crate::Arm>,
    outbox: Vec<queue::Message>,
}

impl Original {
    /// Adopts what the planner decided, if it fits the case as it now is.
    fn follow(&mut self, planned: Option<Routed>) {
        let Some(r) = planned else { return };
        if r.state.version != self.after.state.version + r.events.len() as u64 {
            return;
        }
        self.after.follow(&r.events);
        self.after.state = r.state;
        self.events.extend(r.events);
        self.arms.extend(r.arms);
        self.outbox.extend(r.outbox);
    }
}

/// Case numbers count days in China Standard Time, the day a console shows.
const CST_SECONDS: i32 = 8 * 3600;

impl Store {
    /// Files many reports in one transaction; answers one outcome per item, in order. Each
    /// new case that `route` plans is written routed — its first unit's inbox entry, timers and
    /// assignment in the same commit — and the others wait for the router, as intake entries.
    pub async fn report_batch(
        &self,
        items: &[BatchItem],
        now: DateTime<Utc>,
        route: &mut dyn Planner,
    ) -> Vec<Result<ReportOutcome>> {
        match self.try_report_batch(items, now, route).await {
            Ok(out) => out,
            // a failed batch fails each of its reports the same way; nothing was written
            Err(e) => {
                let shared = std::sync::Arc::new(e);
                items
                    .iter()
                    .map(|_| Err(StoreError::Batch(shared.clone())))
                    .collect()
            }
        }
    }

    async fn try_report_batch(
        &self,
        items: &[BatchItem],
        now: DateTime<Utc>,
        route: &mut dyn Planner,
    ) -> Result<Vec<Result<ReportOutcome>>> {
        let day = now
            .with_timezone(&FixedOffset::east_opt(CST_SECONDS).expect("valid offset"))
            .date_naive();
        let mut records = Vec::with_capacity(items.len());
        let mut fingerprints = Vec::with_capacity(items.len());
        for it in items {
            let county = it
                .report
                .grid
                .county()
                .ok_or_else(|| corrupt("grid", "a grid lies in a county"))?;
            self.ensure_case_seq(county.as_str()).await?;
            let event = Event::Reported {
                grid: it.report.grid.clone().into(),
                self_handled: it.report.self_handled,
            };
            let state = CaseState::start(&event, now).map_err(|e| StoreError::Invalid {
                field: "grid_code".into(),
                reason: e.to_string(),
            })?;
            let r = &it.report;
            records.push((
                CaseRecord {
                    case_id: CaseId::new(),
                    case_number: String::new(),
                    county,
                    grid: r.grid.clone(),
                    category: r.category.clone(),
                    severity: it.severity,
                    title: r.title.clone(),
                    description: r.description.clone(),
                    location: r.location,
                    reported_crs: r.reported_crs,
                    attachments: r.attachments.clone(),
                    occurred_at: r.occurred_at,
                    reported_at: now,
                    reported_by: it.actor.subject.clone(),
                    source: r.source.clone(),
                    state,
                    updated_at: now,
                    trace: it.trace.clone(),
                },
                event,
            ));
            fingerprints.push(r.fingerprint());
        }
        let mut ctx = self.begin().await?;
        let tx = ctx.conn();
        // Key rows first, all at once: a key already taken (earlier, or twice in this batch)
        // is not inserted, and a concurrent batch with the same key waits for this one.
        let inserted: Vec<(Uuid,)> = sqlx::query_as(
            "INSERT INTO idempotency_keys (key, fingerprint, case_id, created_at)
             SELECT k, f, c, $4 FROM UNNEST($1::uuid[], $2::bytea[], $3::uuid[]) AS x(k, f, c)
             ON CONFLICT (key) DO NOTHING RETURNING case_id",
        )
        .bind(
            items
                .iter()
                .map(|it| it.report.idempotency_key)
                .collect::<Vec<_>>(),
        )
        .bind(&fingerprints)
        .bind(
            records
                .iter()
                .map(|(r, _)| r.case_id.uuid())
                .collect::<Vec<_>>(),
        )
        .bind(now)
        .fetch_all(&mut *tx)
        .await?;
        let fresh: std::collections::HashSet<CaseId> =
            inserted.into_iter().map(|(c,)| CaseId::from(c)).collect();

        // case numbers from each county's sequence
        let mut per_county: HashMap<String, usize> = HashMap::new();
        for (rec, _) in records.iter().filter(|(r, _)| fresh.contains(&r.case_id)) {
            *per_county.entry(rec.county.to_string()).or_default() += 1;
        }
        let mut numbers: HashMap<String, Vec<i64>> = HashMap::new();
        for (county, n) in &per_county {
            let seq: Vec<i64> =
                sqlx::query_scalar("SELECT nextval($1::regclass) FROM generate_series(1, $2)")
                    .bind(format!("case_seq_{county}"))
                    .bind(i64::try_from(*n).unwrap_or(0))
                    .fetch_all(&mut *tx)
                    .await?;
            numbers.insert(county.clone(), seq);
        }
        // the open cases this batch's repeats are linked into, locked; one closed meanwhile
        // takes no repeat, and its report becomes a case of its own
        let mut wanted: Vec<CaseId> = items
            .iter()
            .zip(&records)
            .filter(|(_, (r, _))| fresh.contains(&r.case_id))
            .filter_map(|(it, _)| it.repeat.map(|l| l.into))
            .collect();
        wanted.sort_unstable();
        wanted.dedup();
        let mut originals: HashMap<CaseId, Original> = HashMap::new();
        if !wanted.is_empty() {
            for rec in ctx.lock_cases(&wanted).await? {
                if domain::repeat::takes_repeats(rec.state.status) {
                    originals.insert(
                        rec.case_id,
                        Original {
                            before: rec.clone(),
                            after: rec,
                            events: Vec::new(),
                            arms: Vec::new(),
                            outbox: Vec::new(),
                        },
                    );
                }
            }
        }
        let tx = ctx.conn();
        let mut cases = CaseColumns::default();
        let mut events = EventColumns::default();
        let mut audit = AuditColumns::default();
        let mut outbox = Vec::new();
        let mut arms = Vec::new();
        let mut routed = Vec::new();
        let mut contacts = Vec::new();
        let system = Actor::system();
        for (it, (rec, event)) in items
            .iter()
            .zip(records.iter_mut())
            .filter(|(_, (r, _))| fresh.contains(&r.case_id))
        {
            let seq = numbers
                .get_mut(rec.county.as_str())
                .and_then(Vec::pop)
                .ok_or_else(|| corrupt("case numbers", "fewer numbers than cases"))?;
            rec.case_number = case_number(&rec.county, day, u64::try_from(seq).unwrap_or_default());
            events.push(rec, 1, event, &rec.reported_by, now);
            audit.push(&it.actor, "report", rec.case_id.to_string());
            if let Some(c) = &it.contact {
                contacts.push((rec.case_id, c));
            }
            if rec.state.self_handled {
                cases.push_new(rec);
                continue;
            }
            if let Some(o) = it.repeat.and_then(|l| {
                let o = originals.get_mut(&l.into)?;
                let added = Event::RepeatAdded {
                    case: rec.case_id,
                    reports: 1,
                };
                let linked = Event::Repeated {
                    into: l.into,
                    distance_m: l.distance_m,
                };
                let grown = o.after.state.apply(&added, now).ok()?;
                let state = rec.state.apply(&linked, now).ok()?;
                o.after.state = grown;
                o.after.updated_at = now;
                o.events.push(added);
                rec.state = state;
                events.push(rec, 2, &linked, &system.subject, now);
                Some(o)
            }) {
                audit.push(&system, "repeat", rec.case_id.to_string());
                let planned = route.recur(&o.after, it.spot_reports);
                o.follow(planned);
                cases.push_new(rec);
                continue;
            }
            if it.spot_reports > 1 {
                // a new case at a spot that keeps being reported: the rule acts before its
                // route, so that a raised severity routes it
                let mut o = Original {
                    before: rec.clone(),
                    after: rec.clone(),
                    events: Vec::new(),
                    arms: Vec::new(),
                    outbox: Vec::new(),
                };
                let planned = route.recur(rec, it.spot_reports);
                o.follow(planned);
                for (i, e) in o.events.iter().enumerate() {
                    events.push(rec, 2 + i as u64, e, &system.subject, now);
                }
                *rec = o.after;
            }
            let base = rec.state.version;
            match route
                .route(rec)
                .filter(|r| r.state.version == base + r.events.len() as u64)
            {
                Some(r) => {
                    for (i, e) in r.events.iter().enumerate() {
                        events.push(rec, base + 1 + i as u64, e, &system.subject, now);
                    }
                    rec.state = r.state;
                    arms.extend(r.arms.into_iter().map(|a| (rec.case_id, a)));
                    outbox.extend(r.outbox);
                    audit.push(&system, "route", rec.case_id.to_string());
                    routed.push(rec.clone());
                }
                None => outbox.push(queue::Message::Intake(queue::IntakeMsg {
                    case_id: rec.case_id,
                    version: rec.state.version,
                    county: rec.county.clone(),
                    trace: rec.trace.clone(),
                })),
            }
            cases.push_new(rec);
        }
        if !cases.is_empty() {
            events.insert(tx).await?;
            crate::outbox::write(tx, outbox.iter(), now).await?;
            audit.insert(tx, now).await?;
            cases.insert(tx).await?;
            crate::contacts::insert(tx, &contacts, now).await?;
            if !routed.is_empty() {
                crate::writer::assignments::open_new(tx, &routed, now).await?;
            }
            let arms: Vec<(CaseId, &crate::Arm)> = arms.iter().map(|(c, a)| (*c, a)).collect();
            crate::deadlines::arm(tx, &arms, now).await?;
        }
        let linked: Vec<crate::Append<'_>> = originals
            .values()
            .filter(|o| !o.events.is_empty())
            .map(|o| crate::Append {
                before: &o.before,
                after: o.after.state.clone(),
                events: &o.events,
                arms: &o.arms,
                outbox: &o.outbox,
                actor: &system,
                action: "repeat",
            })
            .collect();
        ctx.append_many(&linked, now).await?;
        ctx.commit().await?;

        // every repeated key answered by one query: after an outage most of a batch can be
        // retries, and a query per retry would keep the writer busy long after their callers
        // gave up
        let repeated: Vec<Uuid> = items
            .iter()
            .zip(&records)
            .filter(|(_, (rec, _))| !fresh.contains(&rec.case_id))
            .map(|(it, _)| it.report.idempotency_key)
            .collect();
        let stored = self.replay_many(&repeated).await?;
        let mut out = Vec::with_capacity(items.len());
        for ((it, (rec, _)), fp) in items.iter().zip(records).zip(&fingerprints) {
            if fresh.contains(&rec.case_id) {
                out.push(Ok(ReportOutcome {
                    case: rec,
                    replayed: false,
                }));
                continue;
            }
            out.push(match stored.get(&it.report.idempotency_key) {
                Some((f, case)) if f == fp => Ok(ReportOutcome {
                    case: case.clone(),
                    replayed: true,
                }),
                Some(_) => Err(StoreError::KeyReused),
                None => Err(corrupt("idempotency_keys", "key without its case")),
            });
        }
        Ok(out)
    }
}
