//! Group commit for reports: many concurrent reports written by one transaction of a few
//! multi-row statements, so that a burst costs a handful of round trips and one WAL flush
//! instead of seven statements and a flush per report. Same guarantees as [`Store::report`]:
//! one key makes one case, a reused key with another report is refused, the reply comes after
//! the commit.

use std::collections::{BTreeMap, HashMap};

use chrono::{DateTime, FixedOffset, Utc};
use domain::Severity;
use domain::case::{CaseState, Event};
use domain::record::{CaseRecord, case_number};
use domain::report::NewReport;
use serde_json::{Value, json};
use uuid::Uuid;

use crate::cases::{Actor, ReportOutcome};
use crate::rows::corrupt;
use crate::{Result, Store, StoreError};

/// One report of a batch.
#[derive(Debug, Clone)]
pub struct BatchItem {
    pub report: NewReport,
    pub severity: Severity,
    pub actor: Actor,
    pub trace: BTreeMap<String, String>,
}

/// Case numbers count days in China Standard Time, the day a console shows.
const CST_SECONDS: i32 = 8 * 3600;

fn crs_name(r: &CaseRecord) -> Value {
    serde_json::to_value(r.reported_crs).unwrap_or(Value::Null)
}

pub(crate) fn case_row(r: &CaseRecord) -> Value {
    let s = &r.state;
    json!({
        "case_id": r.case_id, "case_number": r.case_number, "county_code": r.county.as_str(),
        "grid_code": r.grid.as_str(), "category": r.category.as_str(), "severity": r.severity.as_str(),
        "title": r.title, "description": r.description, "lat": r.location.lat, "lon": r.location.lon,
        "reported_crs": crs_name(r), "attachments": r.attachments, "occurred_at": r.occurred_at,
        "reported_at": r.reported_at, "reported_by": r.reported_by, "self_handled": s.self_handled,
        "status": s.status.as_str(), "tier": s.tier.as_str(),
        "holder_unit": s.holder.as_ref().map(ToString::to_string),
        "lead_unit": s.lead.as_ref().map(ToString::to_string),
        "assisting_units": s.assisting_units().iter().map(ToString::to_string).collect::<Vec<_>>(),
        "accept_due_at": s.accept_due_at, "handle_due_at": s.handle_due_at, "overdue": s.overdue,
        "rework_count": s.rework_count, "rating": s.rating, "version": s.version,
        "state": s, "updated_at": r.updated_at, "trace": r.trace,
    })
}

impl Store {
    /// Files many reports in one transaction; answers one outcome per item, in order.
    pub async fn report_batch(
        &self,
        items: &[BatchItem],
        now: DateTime<Utc>,
    ) -> Vec<Result<ReportOutcome>> {
        match self.try_report_batch(items, now).await {
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
                    case_id: Uuid::now_v7(),
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
        let keys: Vec<Value> = items
            .iter()
            .zip(&records)
            .zip(&fingerprints)
            .map(|((it, (rec, _)), fp)| {
                json!({"key": it.report.idempotency_key, "case_id": rec.case_id,
                       "fingerprint": format!("\\x{}", hex_of(fp)), "created_at": now})
            })
            .collect();
        let inserted: Vec<(Uuid,)> = sqlx::query_as(
            "INSERT INTO idempotency_keys (key, fingerprint, case_id, created_at)
             SELECT key, fingerprint, case_id, created_at
               FROM jsonb_populate_recordset(NULL::idempotency_keys, $1)
             ON CONFLICT (key) DO NOTHING RETURNING case_id",
        )
        .bind(Value::Array(keys))
        .fetch_all(&mut *tx)
        .await?;
        let fresh: std::collections::HashSet<Uuid> = inserted.into_iter().map(|(c,)| c).collect();

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
        let (mut cases, mut events, mut outbox, mut audit) =
            (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        for (rec, event) in records
            .iter_mut()
            .filter(|(r, _)| fresh.contains(&r.case_id))
        {
            let seq = numbers
                .get_mut(rec.county.as_str())
                .and_then(Vec::pop)
                .ok_or_else(|| corrupt("case numbers", "fewer numbers than cases"))?;
            rec.case_number = case_number(&rec.county, day, u64::try_from(seq).unwrap_or_default());
            cases.push(case_row(rec));
            events.push(json!({
                "case_id": rec.case_id, "version": 1, "event_type": event.kind(), "data": event,
                "actor": rec.reported_by, "actor_unit": event.actor_unit().map(ToString::to_string),
                "county_code": rec.county.as_str(), "category": rec.category.as_str(), "recorded_at": now,
            }));
            if !rec.state.self_handled {
                let m = queue::Message::Intake(queue::IntakeMsg {
                    case_id: rec.case_id,
                    version: 1,
                    county: rec.county.clone(),
                    trace: rec.trace.clone(),
                });
                outbox.push(json!({
                    "stream": m.stream().outbox_name(), "payload": m.to_json(), "created_at": now,
                }));
            }
        }
        for (it, (rec, _)) in items
            .iter()
            .zip(&records)
            .filter(|(_, (r, _))| fresh.contains(&r.case_id))
        {
            audit.push(
                json!({"principal": it.actor.subject, "role": it.actor.role, "action": "report",
                              "target": rec.case_id.to_string(), "result": "ok", "at": now}),
            );
        }
        if !cases.is_empty() {
            sqlx::query(
                "INSERT INTO case_events (case_id, version, event_type, data, actor, actor_unit, county_code, category, recorded_at)
                 SELECT case_id, version, event_type, data, actor, actor_unit, county_code, category, recorded_at
                   FROM jsonb_populate_recordset(NULL::case_events, $1)",
            )
            .bind(Value::Array(events))
            .execute(&mut *tx)
            .await?;
            if !outbox.is_empty() {
                sqlx::query(
                    "INSERT INTO outbox (stream, payload, created_at)
                     SELECT stream, payload, created_at FROM jsonb_populate_recordset(NULL::outbox, $1)",
                )
                .bind(Value::Array(outbox))
                .execute(&mut *tx)
                .await?;
            }
            sqlx::query(
                "INSERT INTO audit_log (principal, role, action, target, result, at)
                 SELECT principal, role, action, target, result, at FROM jsonb_populate_recordset(NULL::audit_log, $1)",
            )
            .bind(Value::Array(audit))
            .execute(&mut *tx)
            .await?;
            sqlx::query(
                "INSERT INTO cases SELECT * FROM jsonb_populate_recordset(NULL::cases, $1)",
            )
            .bind(Value::Array(cases))
            .execute(&mut *tx)
            .await?;
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

fn hex_of(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}
