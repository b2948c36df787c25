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
        route: &mut Route<'_>,
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
        route: &mut Route<'_>,
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
        let mut tx = self.pool.begin().await?;
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
            match route(rec).filter(|r| r.state.version == 1 + r.events.len() as u64) {
                Some(r) => {
                    for (i, e) in r.events.iter().enumerate() {
                        events.push(rec, 2 + i as u64, e, &system.subject, now);
                    }
                    rec.state = r.state;
                    arms.extend(r.arms.into_iter().map(|a| (rec.case_id, a)));
                    outbox.extend(r.outbox);
                    audit.push(&system, "route", rec.case_id.to_string());
                    routed.push(rec.clone());
                }
                None => outbox.push(queue::Message::Intake(queue::IntakeMsg {
                    case_id: rec.case_id,
                    version: 1,
                    county: rec.county.clone(),
                    trace: rec.trace.clone(),
                })),
            }
            cases.push_new(rec);
        }
        if !cases.is_empty() {
            events.insert(&mut tx).await?;
            crate::outbox::write(&mut tx, outbox.iter(), now).await?;
            audit.insert(&mut tx, now).await?;
            cases.insert(&mut tx).await?;
            crate::contacts::insert(&mut tx, &contacts, now).await?;
            if !routed.is_empty() {
                crate::writer::assignments::open_new(&mut tx, &routed, now).await?;
            }
            let arms: Vec<(CaseId, &crate::Arm)> = arms.iter().map(|(c, a)| (*c, a)).collect();
            crate::deadlines::arm(&mut tx, &arms, now).await?;
        }
        tx.commit().await?;

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
