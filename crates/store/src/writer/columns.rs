//! The one projection writer: each table a case touches, as typed column arrays filled from
//! domain types and written by one multi-row statement. Reports, commands, routing, timers and
//! history imports all write through these, so a column is named in one place only.

use chrono::{DateTime, Utc};
use domain::case::Event;
use domain::record::CaseRecord;
use sqlx::PgConnection;
use uuid::Uuid;

use crate::cases::{Actor, version_i64};
use crate::{Result, StoreError};

/// `cases` rows as columns: the projection of each case's state, and for a new case also its
/// report fields, which never change after the insert.
#[derive(Default)]
pub(crate) struct CaseColumns {
    case_id: Vec<Uuid>,
    status: Vec<&'static str>,
    tier: Vec<&'static str>,
    holder_unit: Vec<Option<String>>,
    lead_unit: Vec<Option<String>>,
    /// Comma-joined: a text[] per row does not travel as a rectangular array. Unit codes
    /// hold no comma.
    assisting_units: Vec<String>,
    accept_due_at: Vec<Option<DateTime<Utc>>>,
    handle_due_at: Vec<Option<DateTime<Utc>>>,
    overdue: Vec<bool>,
    rework_count: Vec<i32>,
    rating: Vec<Option<i16>>,
    version: Vec<i64>,
    state: Vec<serde_json::Value>,
    updated_at: Vec<DateTime<Utc>>,
    /// For updates: the version each row must still have.
    old_version: Vec<i64>,
    /// For updates: the severity now (recurrence may have raised it).
    severity: Vec<&'static str>,
    report: ReportColumns,
}

/// The fields a report fixes once.
#[derive(Default)]
struct ReportColumns {
    case_number: Vec<String>,
    county_code: Vec<String>,
    grid_code: Vec<String>,
    category: Vec<String>,
    severity: Vec<&'static str>,
    title: Vec<String>,
    description: Vec<String>,
    lat: Vec<f64>,
    lon: Vec<f64>,
    reported_crs: Vec<String>,
    attachments: Vec<serde_json::Value>,
    occurred_at: Vec<DateTime<Utc>>,
    reported_at: Vec<DateTime<Utc>>,
    reported_by: Vec<String>,
    self_handled: Vec<bool>,
    trace: Vec<serde_json::Value>,
    source: Vec<&'static str>,
    source_ref: Vec<Option<String>>,
    /// The geohash cell of the point, for the search for repeats (ADR 0044).
    spot: Vec<String>,
}

impl CaseColumns {
    pub(crate) fn is_empty(&self) -> bool {
        self.case_id.is_empty()
    }

    fn push_projection(&mut self, r: &CaseRecord) {
        let s = &r.state;
        self.case_id.push(r.case_id.uuid());
        self.status.push(s.status.as_str());
        self.tier.push(s.tier.as_str());
        self.holder_unit
            .push(s.holder.as_ref().map(ToString::to_string));
        self.lead_unit
            .push(s.lead.as_ref().map(ToString::to_string));
        self.assisting_units.push(
            s.assisting_units()
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(","),
        );
        self.accept_due_at.push(s.accept_due_at);
        self.handle_due_at.push(s.handle_due_at);
        self.overdue.push(s.overdue);
        self.rework_count
            .push(i32::try_from(s.rework_count).unwrap_or(i32::MAX));
        self.rating.push(s.rating.map(i16::from));
        self.version.push(version_i64(s.version));
        self.state
            .push(serde_json::to_value(s).expect("state serialises"));
        self.updated_at.push(r.updated_at);
    }

    /// A case as it now is, replacing the row that still has `old_version`.
    pub(crate) fn push_update(&mut self, r: &CaseRecord, old_version: u64) {
        self.push_projection(r);
        self.old_version.push(version_i64(old_version));
        self.severity.push(r.severity.as_str());
    }

    /// A new case: its report and its projection.
    pub(crate) fn push_new(&mut self, r: &CaseRecord) {
        self.push_projection(r);
        let p = &mut self.report;
        p.case_number.push(r.case_number.clone());
        p.county_code.push(r.county.to_string());
        p.grid_code.push(r.grid.to_string());
        p.category.push(r.category.to_string());
        p.severity.push(r.severity.as_str());
        p.title.push(r.title.clone());
        p.description.push(r.description.clone());
        p.lat.push(r.location.lat);
        p.lon.push(r.location.lon);
        p.reported_crs.push(
            serde_json::to_value(r.reported_crs)
                .ok()
                .and_then(|v| v.as_str().map(str::to_owned))
                .unwrap_or_default(),
        );
        p.attachments
            .push(serde_json::to_value(&r.attachments).expect("attachments serialise"));
        p.occurred_at.push(r.occurred_at);
        p.reported_at.push(r.reported_at);
        p.reported_by.push(r.reported_by.clone());
        p.self_handled.push(r.state.self_handled);
        p.trace
            .push(serde_json::to_value(&r.trace).expect("trace serialises"));
        p.source.push(r.source.kind.as_str());
        p.source_ref.push(r.source.reference.clone());
        p.spot.push(domain::repeat::spot(r.location));
    }

    /// Binds the projection's columns, `$1` to `$14`, in the order both statements name them.
    fn bind_projection<'q>(
        &'q self,
        q: sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments>,
    ) -> sqlx::query::Query<'q, sqlx::Postgres, sqlx::postgres::PgArguments> {
        q.bind(&self.case_id)
            .bind(&self.status)
            .bind(&self.tier)
            .bind(&self.holder_unit)
            .bind(&self.lead_unit)
            .bind(&self.assisting_units)
            .bind(&self.accept_due_at)
            .bind(&self.handle_due_at)
            .bind(&self.overdue)
            .bind(&self.rework_count)
            .bind(&self.rating)
            .bind(&self.version)
            .bind(&self.state)
            .bind(&self.updated_at)
    }

    /// Inserts the new cases pushed with [`CaseColumns::push_new`].
    pub(crate) async fn insert(&self, conn: &mut PgConnection) -> Result<()> {
        if self.case_id.is_empty() {
            return Ok(());
        }
        let p = &self.report;
        let q = sqlx::query(
            "INSERT INTO cases (case_id, status, tier, holder_unit, lead_unit, assisting_units,
                accept_due_at, handle_due_at, overdue, rework_count, rating, version, state,
                updated_at, case_number, county_code, grid_code, category, severity, title,
                description, lat, lon, reported_crs, attachments, occurred_at, reported_at,
                reported_by, self_handled, trace, source, source_ref, spot)
             SELECT c, st, ti, hu, lu, string_to_array(au, ','), ad, hd, od, rw, ra, v, s, u,
                    cn, co, gr, ca, se, tl, de, la, lo, cr, at, oc, re, rb, sh, tr, so, sr, sp
               FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                           $6::text[], $7::timestamptz[], $8::timestamptz[], $9::bool[],
                           $10::int4[], $11::int2[], $12::int8[], $13::jsonb[],
                           $14::timestamptz[], $15::text[], $16::text[], $17::text[],
                           $18::text[], $19::text[], $20::text[], $21::text[], $22::float8[],
                           $23::float8[], $24::text[], $25::jsonb[], $26::timestamptz[],
                           $27::timestamptz[], $28::text[], $29::bool[], $30::jsonb[],
                           $31::text[], $32::text[], $33::text[])
                    AS x(c, st, ti, hu, lu, au, ad, hd, od, rw, ra, v, s, u, cn, co, gr, ca,
                         se, tl, de, la, lo, cr, at, oc, re, rb, sh, tr, so, sr, sp)",
        );
        self.bind_projection(q)
            .bind(&p.case_number)
            .bind(&p.county_code)
            .bind(&p.grid_code)
            .bind(&p.category)
            .bind(&p.severity)
            .bind(&p.title)
            .bind(&p.description)
            .bind(&p.lat)
            .bind(&p.lon)
            .bind(&p.reported_crs)
            .bind(&p.attachments)
            .bind(&p.occurred_at)
            .bind(&p.reported_at)
            .bind(&p.reported_by)
            .bind(&p.self_handled)
            .bind(&p.trace)
            .bind(&p.source)
            .bind(&p.source_ref)
            .bind(&p.spot)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// Writes the projections pushed with [`CaseColumns::push_update`], each guarded by the
    /// version its case had when it was locked; a row that moved on fails the whole write.
    ///
    /// Planned at each execution (`persistent(false)`): a connection's cached plan, made while
    /// the table was still small, scans it whole for as long as the connection lives.
    pub(crate) async fn update(&self, conn: &mut PgConnection) -> Result<()> {
        if self.case_id.is_empty() {
            return Ok(());
        }
        let q = sqlx::query(
            "UPDATE cases c SET status = n.st, tier = n.ti, holder_unit = n.hu, lead_unit = n.lu,
                assisting_units = string_to_array(n.au, ','), accept_due_at = n.ad,
                handle_due_at = n.hd, overdue = n.od, rework_count = n.rw, rating = n.ra,
                version = n.v, state = n.s, updated_at = n.u, severity = n.se
               FROM UNNEST($1::uuid[], $2::text[], $3::text[], $4::text[], $5::text[],
                           $6::text[], $7::timestamptz[], $8::timestamptz[], $9::bool[],
                           $10::int4[], $11::int2[], $12::int8[], $13::jsonb[],
                           $14::timestamptz[], $15::int8[], $16::text[])
                    AS n(c, st, ti, hu, lu, au, ad, hd, od, rw, ra, v, s, u, old, se)
              WHERE c.case_id = n.c AND c.version = n.old",
        )
        .persistent(false);
        let updated = self
            .bind_projection(q)
            .bind(&self.old_version)
            .bind(&self.severity)
            .execute(conn)
            .await?
            .rows_affected();
        if updated != self.case_id.len() as u64 {
            return Err(StoreError::Invalid {
                field: "case".into(),
                reason: "the case changed underneath this transaction".into(),
            });
        }
        Ok(())
    }
}

/// `case_events` rows as columns.
#[derive(Default)]
pub(crate) struct EventColumns {
    case_id: Vec<Uuid>,
    version: Vec<i64>,
    kind: Vec<&'static str>,
    data: Vec<serde_json::Value>,
    actor: Vec<String>,
    actor_unit: Vec<Option<String>>,
    county: Vec<String>,
    category: Vec<String>,
    recorded_at: Vec<DateTime<Utc>>,
}

impl EventColumns {
    /// Event `e` of case `r`, as version `version`, by `actor` at `at`.
    pub(crate) fn push(
        &mut self,
        r: &CaseRecord,
        version: u64,
        e: &Event,
        actor: &str,
        at: DateTime<Utc>,
    ) {
        self.case_id.push(r.case_id.uuid());
        self.version.push(version_i64(version));
        self.kind.push(e.kind());
        self.data
            .push(serde_json::to_value(e).expect("events serialise"));
        self.actor.push(actor.to_owned());
        self.actor_unit
            .push(e.actor_unit().map(ToString::to_string));
        self.county.push(r.county.to_string());
        self.category.push(r.category.to_string());
        self.recorded_at.push(at);
    }

    pub(crate) async fn insert(&self, conn: &mut PgConnection) -> Result<()> {
        if self.case_id.is_empty() {
            return Ok(());
        }
        // sequence numbers follow the order given, so each case's events read in version order
        sqlx::query(
            "INSERT INTO case_events (case_id, version, event_type, data, actor, actor_unit,
                county_code, category, recorded_at)
             SELECT c, v, t, d, a, au, co, ca, r
               FROM UNNEST($1::uuid[], $2::int8[], $3::text[], $4::jsonb[], $5::text[],
                           $6::text[], $7::text[], $8::text[], $9::timestamptz[])
                    WITH ORDINALITY AS x(c, v, t, d, a, au, co, ca, r, n)
              ORDER BY n",
        )
        .bind(&self.case_id)
        .bind(&self.version)
        .bind(&self.kind)
        .bind(&self.data)
        .bind(&self.actor)
        .bind(&self.actor_unit)
        .bind(&self.county)
        .bind(&self.category)
        .bind(&self.recorded_at)
        .execute(conn)
        .await?;
        Ok(())
    }
}

/// `audit_log` rows as columns; every row succeeded (refusals write nothing).
#[derive(Default)]
pub(crate) struct AuditColumns {
    principal: Vec<String>,
    role: Vec<String>,
    unit: Vec<Option<String>>,
    action: Vec<String>,
    target: Vec<String>,
}

impl AuditColumns {
    pub(crate) fn push(&mut self, actor: &Actor, action: &str, target: String) {
        self.principal.push(actor.subject.clone());
        self.role.push(actor.role.clone());
        self.unit.push(actor.unit.clone());
        self.action.push(action.to_owned());
        self.target.push(target);
    }

    pub(crate) async fn insert(&self, conn: &mut PgConnection, at: DateTime<Utc>) -> Result<()> {
        if self.target.is_empty() {
            return Ok(());
        }
        sqlx::query(
            "INSERT INTO audit_log (principal, role, action, target, result, at, unit)
             SELECT p, r, a, t, 'ok', $5, u
               FROM UNNEST($1::text[], $2::text[], $3::text[], $4::text[], $6::text[])
                    WITH ORDINALITY AS x(p, r, a, t, u, n)
              ORDER BY n",
        )
        .bind(&self.principal)
        .bind(&self.role)
        .bind(&self.action)
        .bind(&self.target)
        .bind(at)
        .bind(&self.unit)
        .execute(conn)
        .await?;
        Ok(())
    }
}
