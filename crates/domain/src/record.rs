//! A case file as stored: what the report said, plus the state machine's projection.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::case::CaseState;
use crate::geo::{Crs, LatLon};
use crate::policy::CategoryCode;
use crate::region::{RegionCode, UnitCode};
use crate::report::Attachment;
use crate::{CaseId, Severity};

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CaseRecord {
    pub case_id: CaseId,
    /// `<county>-<yyyymmdd>-<seq>`.
    pub case_number: String,
    pub county: RegionCode,
    pub grid: RegionCode,
    pub category: CategoryCode,
    pub severity: Severity,
    pub title: String,
    pub description: String,
    /// WGS-84.
    pub location: LatLon,
    pub reported_crs: Crs,
    pub attachments: Vec<Attachment>,
    pub occurred_at: DateTime<Utc>,
    pub reported_at: DateTime<Utc>,
    pub reported_by: String,
    /// Where the report came from (a grid worker's, unless intake says otherwise).
    #[serde(default)]
    pub source: crate::source::Source,
    pub state: CaseState,
    pub updated_at: DateTime<Utc>,
    /// Trace context (W3C `traceparent`/`tracestate`) of the report, so that every later step
    /// of the case can join the same trace.
    #[serde(default)]
    pub trace: std::collections::BTreeMap<String, String>,
}

impl CaseRecord {
    /// The report field that events change: recurrence raising the severity (ADR 0044). Every
    /// writer that appends events to a record applies them here too.
    pub fn follow(&mut self, events: &[crate::case::Event]) {
        for e in events {
            if let crate::case::Event::Recurred {
                severity: Some(s), ..
            } = e
            {
                self.severity = *s;
            }
        }
    }
}

/// One stored event of a case's log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventRecord {
    pub case_id: CaseId,
    pub version: u64,
    pub event_type: String,
    pub data: serde_json::Value,
    pub actor: String,
    pub actor_unit: Option<UnitCode>,
    pub recorded_at: DateTime<Utc>,
}

/// Formats a case number from its county, local day and the county's case sequence.
#[must_use]
pub fn case_number(county: &RegionCode, day: chrono::NaiveDate, seq: u64) -> String {
    format!("{county}-{}-{seq:06}", day.format("%Y%m%d"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn case_numbers_look_like_the_consoles_expect() {
        let county = RegionCode::parse("360102").unwrap();
        let day = chrono::NaiveDate::from_ymd_opt(2026, 11, 26).unwrap();
        assert_eq!(case_number(&county, day, 123), "360102-20261126-000123");
        assert_eq!(
            case_number(&county, day, 1_234_567),
            "360102-20261126-1234567"
        );
    }
}
