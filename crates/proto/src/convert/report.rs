//! Reports and cases: the report as it arrives (with its source and the reporter's contact),
//! and the case file as it leaves.

use domain::record::{CaseRecord, EventRecord};
use domain::report::{Attachment, RawLocation, RawReport};
use domain::source::{Contact, SourceKind};

use super::{
    Violations, crs_from_wire, opt_time, severity_from_wire, severity_to_wire, status_to_wire,
    tier_to_wire, timestamp,
};
use crate::v1;

/// `Ok(None)` for unspecified; `Err` for a number this version does not know.
pub fn source_from_wire(n: i32) -> Result<Option<SourceKind>, i32> {
    match v1::ReportSource::try_from(n) {
        Ok(v1::ReportSource::Unspecified) => Ok(None),
        Ok(v1::ReportSource::GridWorker) => Ok(Some(SourceKind::GridWorker)),
        Ok(v1::ReportSource::Resident) => Ok(Some(SourceKind::Resident)),
        Ok(v1::ReportSource::Hotline12345) => Ok(Some(SourceKind::Hotline12345)),
        Ok(v1::ReportSource::OtherSystem) => Ok(Some(SourceKind::OtherSystem)),
        Err(_) => Err(n),
    }
}

#[must_use]
pub fn source_to_wire(k: SourceKind) -> v1::ReportSource {
    match k {
        SourceKind::GridWorker => v1::ReportSource::GridWorker,
        SourceKind::Resident => v1::ReportSource::Resident,
        SourceKind::Hotline12345 => v1::ReportSource::Hotline12345,
        SourceKind::OtherSystem => v1::ReportSource::OtherSystem,
    }
}

/// A contact for the wire; `masked` says which form it is.
#[must_use]
pub fn reporter_to_wire(c: &Contact, masked: bool) -> v1::Reporter {
    v1::Reporter {
        name: c.name.clone(),
        phone: c.phone.clone(),
        id_number: c.id_number.clone(),
        email: c.email.clone(),
        masked,
    }
}

// ---- reports -------------------------------------------------------------------------------

/// The wire report as unchecked domain input; [`domain::report::NewReport::parse`] checks it.
/// Only a malformed timestamp is reported here, since the domain never sees wire timestamps.
pub fn raw_report(r: v1::ReportEventRequest) -> Result<RawReport, Violations> {
    let mut v = Vec::new();
    let (severity, severity_unknown) = match severity_from_wire(r.severity, "severity") {
        Ok(s) => (s, None),
        Err(_) => (None, Some(r.severity)),
    };
    let occurred_at = match opt_time(r.occurred_at.as_ref(), "occurred_at") {
        Ok(t) => t,
        Err(e) => {
            v.push(e);
            None
        }
    };
    if !v.is_empty() {
        return Err(v);
    }
    let (source, source_unknown) = match source_from_wire(r.source) {
        Ok(s) => (s, None),
        Err(n) => (None, Some(n)),
    };
    let reporter = r.reporter.map_or_else(Contact::default, |c| Contact {
        name: c.name,
        phone: c.phone,
        id_number: c.id_number,
        email: c.email,
    });
    Ok(RawReport {
        source,
        source_unknown,
        source_ref: r.source_ref,
        reporter,
        idempotency_key: r.idempotency_key,
        grid_code: r.grid_code,
        category: r.category,
        severity,
        severity_unknown,
        title: r.title,
        description: r.description,
        location: r.location.as_ref().map(location_from_wire),
        occurred_at,
        self_handled: r.self_handled,
        attachments: r
            .attachments
            .into_iter()
            .map(attachment_from_wire)
            .collect(),
    })
}

#[must_use]
pub fn location_from_wire(l: &v1::Location) -> RawLocation {
    RawLocation {
        lat: l.lat,
        lon: l.lon,
        crs: crs_from_wire(l.crs),
    }
}

fn attachment_from_wire(a: v1::Attachment) -> Attachment {
    Attachment {
        content_hash: a.content_hash.to_ascii_lowercase(),
        media_type: a.media_type,
        size: a.size,
        url: a.url,
        // gridd's own reading of the file, never the client's say
        taken_at: None,
        taken_location: None,
    }
}

fn attachment_to_wire(a: &Attachment) -> v1::Attachment {
    v1::Attachment {
        content_hash: a.content_hash.clone(),
        media_type: a.media_type.clone(),
        size: a.size,
        url: a.url.clone(),
        taken_at: a.taken_at.map(timestamp),
        taken_location: a.taken_location.map(|p| v1::Location {
            lat: p.lat,
            lon: p.lon,
            crs: v1::Crs::Wgs84.into(),
        }),
    }
}

// ---- cases ---------------------------------------------------------------------------------

#[must_use]
pub fn case_to_wire(c: &CaseRecord) -> v1::Case {
    let s = &c.state;
    v1::Case {
        case_id: c.case_id.to_string(),
        case_number: c.case_number.clone(),
        status: status_to_wire(s.status).into(),
        tier: tier_to_wire(s.tier).into(),
        grid_code: c.grid.to_string(),
        category: c.category.to_string(),
        severity: severity_to_wire(c.severity).into(),
        title: c.title.clone(),
        description: c.description.clone(),
        location: Some(v1::Location {
            lat: c.location.lat,
            lon: c.location.lon,
            crs: v1::Crs::Wgs84.into(),
        }),
        reported_at: Some(timestamp(c.reported_at)),
        lead_unit: s.lead.as_ref().map(ToString::to_string).unwrap_or_default(),
        assisting_units: s.parts.iter().map(|p| p.unit.to_string()).collect(),
        accept_due_at: s.accept_due_at.map(timestamp),
        handle_due_at: s.handle_due_at.map(timestamp),
        overdue: s.overdue,
        rework_count: s.rework_count,
        version: s.version,
        holder_unit: s
            .holder
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        occurred_at: Some(timestamp(c.occurred_at)),
        self_handled: s.self_handled,
        rating: s.rating.map_or(0, u32::from),
        attachments: c.attachments.iter().map(attachment_to_wire).collect(),
        updated_at: Some(timestamp(c.updated_at)),
        reported_by: c.reported_by.clone(),
        county_code: c.county.to_string(),
        source: source_to_wire(c.source.kind).into(),
        source_ref: c.source.reference.clone().unwrap_or_default(),
        reporter: None,
        report_count: c.state.reports,
        merged_into: c
            .state
            .merged_into
            .map(|m| m.to_string())
            .unwrap_or_default(),
    }
}

#[must_use]
pub fn event_to_wire(e: &EventRecord) -> v1::CaseEvent {
    v1::CaseEvent {
        case_id: e.case_id.to_string(),
        version: e.version,
        event_type: e.event_type.clone(),
        recorded_at: Some(timestamp(e.recorded_at)),
        actor_unit: e
            .actor_unit
            .as_ref()
            .map(ToString::to_string)
            .unwrap_or_default(),
        actor: e.actor.clone(),
        data_json: e.data.to_string(),
    }
}
