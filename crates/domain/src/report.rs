//! A new report from a grid worker's phone: parsed and validated at the edge, so that nothing
//! past it ever sees an unchecked field.

use chrono::{DateTime, Duration, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::Severity;
use crate::geo::{Crs, LatLon, to_wgs84};
use crate::policy::CategoryCode;
use crate::region::{Level, RegionCode};
use crate::source::{Contact, Source, SourceKind};

pub const TITLE_MAX: usize = 200;
pub const DESCRIPTION_MAX: usize = 4000;
pub const ATTACHMENTS_MAX: usize = 20;
pub const ATTACHMENT_SIZE_MAX: u64 = 200 * 1024 * 1024;
pub const URL_MAX: usize = 2048;
/// Phones' clocks drift; more than this ahead of ours is a wrong clock, not a report.
pub const FUTURE_SKEW_MAX: Duration = Duration::minutes(5);

/// One bad field of a request, as `google.rpc.BadRequest.FieldViolation` reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FieldViolation {
    pub field: String,
    pub description: String,
}

impl FieldViolation {
    pub fn new(field: impl Into<String>, description: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            description: description.into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Attachment {
    pub content_hash: String,
    pub media_type: String,
    pub size: u64,
    pub url: String,
    /// When the photo's EXIF says it was taken (gridd reads it at upload; ADR 0035).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_at: Option<DateTime<Utc>>,
    /// Where the photo's EXIF GPS says it was taken, WGS-84.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub taken_location: Option<LatLon>,
}

/// The report as it arrives, before any check (strings and numbers from the wire).
#[derive(Debug, Clone, Default)]
pub struct RawReport {
    pub idempotency_key: String,
    pub grid_code: String,
    pub category: String,
    /// `None`: take the category's default.
    pub severity: Option<Severity>,
    /// `Some(Err(n))` when the wire carried an unknown severity number.
    pub severity_unknown: Option<i32>,
    pub title: String,
    pub description: String,
    pub location: Option<RawLocation>,
    pub occurred_at: Option<DateTime<Utc>>,
    pub self_handled: bool,
    pub attachments: Vec<Attachment>,
    /// `None` when unspecified on the wire: a grid worker's report.
    pub source: Option<SourceKind>,
    /// `Some(n)` when the wire carried an unknown source number.
    pub source_unknown: Option<i32>,
    pub source_ref: String,
    pub reporter: Contact,
}

#[derive(Debug, Clone, Copy, Default)]
pub struct RawLocation {
    pub lat: f64,
    pub lon: f64,
    /// `None` when unspecified or unknown on the wire.
    pub crs: Option<Crs>,
}

/// A validated report. The location is WGS-84.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewReport {
    pub idempotency_key: Uuid,
    pub grid: RegionCode,
    pub category: CategoryCode,
    pub severity: Option<Severity>,
    pub title: String,
    pub description: String,
    pub location: LatLon,
    /// The system the phone reported in (kept for audit; the stored location is WGS-84).
    pub reported_crs: Crs,
    pub occurred_at: DateTime<Utc>,
    pub self_handled: bool,
    pub attachments: Vec<Attachment>,
    /// Left out of the serialised report when it is a grid worker's, so that fingerprints of
    /// reports stored before sources existed still match their retries.
    #[serde(default, skip_serializing_if = "Source::is_grid_worker")]
    pub source: Source,
    /// The reporter's contact: never serialised with the report (it travels sealed, apart).
    #[serde(skip)]
    pub reporter: Option<Contact>,
}

impl NewReport {
    /// Checks every field and collects every violation, so the phone can show them all at once.
    /// Registry checks (does the grid or category exist) come later, with the database.
    pub fn parse(raw: RawReport, now: DateTime<Utc>) -> Result<NewReport, Vec<FieldViolation>> {
        let mut v = Vec::new();
        let source = match (raw.source_unknown, raw.source) {
            (Some(n), _) => {
                v.push(FieldViolation::new("source", format!("unknown source {n}")));
                None
            }
            (None, kind) => match Source::parse(kind.unwrap_or_default(), &raw.source_ref) {
                Ok(s) => Some(s),
                Err(e) => {
                    v.push(e);
                    None
                }
            },
        };
        let reporter = match Contact::parse(&raw.reporter) {
            Ok(c) => c,
            Err(e) => {
                v.extend(e);
                None
            }
        };
        // a hotline ticket or another system's record is its own key: the same ticket sent
        // twice is one case
        let identity = source.as_ref().and_then(Source::identity_key);
        let key = if let Some(k) = identity {
            Some(k)
        } else if raw
            .source
            .is_some_and(crate::source::SourceKind::reference_is_identity)
        {
            // the missing reference is the violation; the client's key does not matter here
            None
        } else if raw.idempotency_key.trim().is_empty() {
            v.push(FieldViolation::new(
                "idempotency_key",
                "required: a client-made UUID",
            ));
            None
        } else {
            keep(
                Uuid::parse_str(raw.idempotency_key.trim()),
                &mut v,
                "idempotency_key",
                |_| "must be a UUID".into(),
            )
        };
        let grid = if raw.grid_code.is_empty() {
            v.push(FieldViolation::new(
                "grid_code",
                "required from a grid worker; others may leave it to the location",
            ));
            None
        } else {
            keep(
                RegionCode::parse_at(&raw.grid_code, Level::Grid),
                &mut v,
                "grid_code",
                |e| format!("not a grid code: {e}"),
            )
        };
        let category = if raw.category.is_empty() {
            v.push(FieldViolation::new("category", "required"));
            None
        } else {
            keep(
                CategoryCode::parse(&raw.category),
                &mut v,
                "category",
                |e| (*e).to_owned(),
            )
        };
        if let Some(n) = raw.severity_unknown {
            v.push(FieldViolation::new(
                "severity",
                format!("unknown severity {n}"),
            ));
        }
        let title = raw.title.trim().to_owned();
        if title.is_empty() {
            v.push(FieldViolation::new("title", "required"));
        } else if title.chars().count() > TITLE_MAX {
            v.push(FieldViolation::new(
                "title",
                format!("at most {TITLE_MAX} characters"),
            ));
        }
        let description = raw.description.trim().to_owned();
        if description.chars().count() > DESCRIPTION_MAX {
            v.push(FieldViolation::new(
                "description",
                format!("at most {DESCRIPTION_MAX} characters"),
            ));
        }
        let location = match raw.location {
            None => {
                v.push(FieldViolation::new("location", "required"));
                None
            }
            Some(l) => parse_location(l, &mut v),
        };
        let occurred_at = match raw.occurred_at {
            None => {
                v.push(FieldViolation::new("occurred_at", "required"));
                None
            }
            Some(t) if t > now + FUTURE_SKEW_MAX => {
                v.push(FieldViolation::new(
                    "occurred_at",
                    "more than 5 minutes in the future",
                ));
                None
            }
            Some(t) => Some(t),
        };
        if raw.attachments.len() > ATTACHMENTS_MAX {
            v.push(FieldViolation::new(
                "attachments",
                format!("at most {ATTACHMENTS_MAX}"),
            ));
        }
        for (i, a) in raw.attachments.iter().enumerate() {
            check_attachment(i, a, &mut v);
        }
        match (key, grid, category, location, occurred_at, source) {
            (
                Some(idempotency_key),
                Some(grid),
                Some(category),
                Some((location, crs)),
                Some(occurred_at),
                Some(source),
            ) if v.is_empty() => Ok(NewReport {
                idempotency_key,
                grid,
                category,
                severity: raw.severity,
                title,
                description,
                location,
                reported_crs: crs,
                occurred_at,
                self_handled: raw.self_handled,
                attachments: raw.attachments,
                source,
                reporter,
            }),
            _ => Err(v),
        }
    }

    /// A digest of everything the report says: a retry with the same key must say the same.
    /// The reporter's contact counts by its masked form only, so that the stored digest cannot
    /// be searched for a phone number.
    #[must_use]
    pub fn fingerprint(&self) -> Vec<u8> {
        // serde_json writes struct fields in declaration order, so the bytes are stable.
        let mut h = Sha256::new();
        h.update(serde_json::to_vec(self).expect("a report always serialises"));
        if let Some(c) = &self.reporter {
            h.update(serde_json::to_vec(&c.masked()).expect("a contact always serialises"));
        }
        h.finalize().to_vec()
    }
}

/// The value of `r`, or `None` after recording why not.
fn keep<T, E>(
    r: Result<T, E>,
    v: &mut Vec<FieldViolation>,
    field: &str,
    why: impl FnOnce(&E) -> String,
) -> Option<T> {
    match r {
        Ok(x) => Some(x),
        Err(e) => {
            v.push(FieldViolation::new(field, why(&e)));
            None
        }
    }
}

impl RawLocation {
    /// The point in WGS-84, or what is wrong with the coordinates or their system.
    pub fn parse(self) -> Result<LatLon, Vec<FieldViolation>> {
        let mut v = Vec::new();
        parse_location(self, &mut v).map(|(p, _)| p).ok_or(v)
    }

    /// The point in WGS-84, when the coordinates and their system are valid.
    #[must_use]
    pub fn wgs84(self) -> Option<LatLon> {
        self.parse().ok()
    }
}

fn parse_location(l: RawLocation, v: &mut Vec<FieldViolation>) -> Option<(LatLon, Crs)> {
    let mut ok = true;
    if !l.lat.is_finite() || !(-90.0..=90.0).contains(&l.lat) {
        v.push(FieldViolation::new(
            "location.lat",
            "must be between -90 and 90",
        ));
        ok = false;
    }
    if !l.lon.is_finite() || !(-180.0..=180.0).contains(&l.lon) {
        v.push(FieldViolation::new(
            "location.lon",
            "must be between -180 and 180",
        ));
        ok = false;
    }
    let Some(crs) = l.crs else {
        v.push(FieldViolation::new(
            "location.crs",
            "required: WGS84, GCJ02, BD09 or CGCS2000",
        ));
        return None;
    };
    ok.then(|| {
        (
            to_wgs84(
                crs,
                LatLon {
                    lat: l.lat,
                    lon: l.lon,
                },
            ),
            crs,
        )
    })
}

fn check_attachment(i: usize, a: &Attachment, v: &mut Vec<FieldViolation>) {
    let f = |name: &str| format!("attachments[{i}].{name}");
    if a.content_hash.len() != 64 || !a.content_hash.bytes().all(|b| b.is_ascii_hexdigit()) {
        v.push(FieldViolation::new(
            f("content_hash"),
            "64 hex digits of SHA-256",
        ));
    }
    let mt = a.media_type.split_once('/');
    if !mt.is_some_and(|(t, s)| !t.is_empty() && !s.is_empty()) || a.media_type.len() > 100 {
        v.push(FieldViolation::new(
            f("media_type"),
            "a media type like image/jpeg",
        ));
    }
    if a.size == 0 || a.size > ATTACHMENT_SIZE_MAX {
        v.push(FieldViolation::new(f("size"), "1 byte to 200 MiB"));
    }
    // empty for a file uploaded to this service (MediaService.Upload), the usual case
    if !a.url.is_empty()
        && (!(a.url.starts_with("https://") || a.url.starts_with("http://"))
            || a.url.len() > URL_MAX)
    {
        v.push(FieldViolation::new(
            f("url"),
            "empty (uploaded here) or an http(s) URL of at most 2048 characters",
        ));
    }
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;

    use super::*;

    fn now() -> DateTime<Utc> {
        Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap()
    }

    fn good() -> RawReport {
        RawReport {
            idempotency_key: "0192f7a0-0000-7000-8000-000000000001".into(),
            grid_code: "360102001001001".into(),
            category: "0501".into(),
            severity: None,
            severity_unknown: None,
            title: "暴露垃圾".into(),
            description: "路口垃圾堆放".into(),
            location: Some(RawLocation {
                lat: 28.68,
                lon: 115.89,
                crs: Some(Crs::Wgs84),
            }),
            occurred_at: Some(now() - Duration::minutes(3)),
            self_handled: false,
            attachments: vec![Attachment {
                content_hash: "a".repeat(64),
                media_type: "image/jpeg".into(),
                size: 1000,
                url: "https://objects.example/1.jpg".into(),
                taken_at: None,
                taken_location: None,
            }],
            ..RawReport::default()
        }
    }

    type Mutation = fn(&mut RawReport);

    fn fields(r: RawReport) -> Vec<String> {
        NewReport::parse(r, now())
            .unwrap_err()
            .into_iter()
            .map(|v| v.field)
            .collect()
    }

    #[test]
    fn a_good_report_parses() {
        let r = NewReport::parse(good(), now()).unwrap();
        assert_eq!(r.grid.as_str(), "360102001001001");
        assert_eq!(
            r.fingerprint(),
            NewReport::parse(good(), now()).unwrap().fingerprint()
        );
        let mut other = good();
        other.title = "另一个".into();
        assert_ne!(
            r.fingerprint(),
            NewReport::parse(other, now()).unwrap().fingerprint()
        );
    }

    #[test]
    fn every_bad_field_is_named() {
        let cases: Vec<(Mutation, &str)> = vec![
            (|r| r.idempotency_key.clear(), "idempotency_key"),
            (|r| r.idempotency_key = "nope".into(), "idempotency_key"),
            (|r| r.grid_code = "360102001001".into(), "grid_code"),
            (|r| r.category = "5".into(), "category"),
            (|r| r.severity_unknown = Some(9), "severity"),
            (|r| r.title = "  ".into(), "title"),
            (|r| r.title = "字".repeat(201), "title"),
            (|r| r.description = "x".repeat(4001), "description"),
            (|r| r.location = None, "location"),
            (|r| r.location.as_mut().unwrap().lat = 91.0, "location.lat"),
            (
                |r| r.location.as_mut().unwrap().lon = f64::NAN,
                "location.lon",
            ),
            (|r| r.location.as_mut().unwrap().crs = None, "location.crs"),
            (|r| r.occurred_at = None, "occurred_at"),
            (
                |r| r.occurred_at = Some(now() + Duration::minutes(6)),
                "occurred_at",
            ),
            (
                |r| r.attachments[0].content_hash = "xyz".into(),
                "attachments[0].content_hash",
            ),
            (|r| r.attachments[0].size = 0, "attachments[0].size"),
            (
                |r| r.attachments[0].url = "ftp://x".into(),
                "attachments[0].url",
            ),
            (
                |r| r.attachments[0].media_type = "jpeg".into(),
                "attachments[0].media_type",
            ),
        ];
        for (mutate, field) in cases {
            let mut r = good();
            mutate(&mut r);
            assert_eq!(fields(r), vec![field.to_owned()], "{field}");
        }
        // exactly 200 characters and a clock 5 minutes ahead are fine
        let mut r = good();
        r.title = "字".repeat(200);
        r.occurred_at = Some(now() + Duration::minutes(5));
        assert!(NewReport::parse(r, now()).is_ok());
    }

    #[test]
    fn all_violations_at_once() {
        let f = fields(RawReport::default());
        for want in [
            "idempotency_key",
            "grid_code",
            "category",
            "title",
            "location",
            "occurred_at",
        ] {
            assert!(f.contains(&want.to_owned()), "{want} in {f:?}");
        }
    }

    #[test]
    fn gcj02_is_stored_as_wgs84() {
        let mut r = good();
        r.location = Some(RawLocation {
            lat: 28.68,
            lon: 115.89,
            crs: Some(Crs::Gcj02),
        });
        let p = NewReport::parse(r, now()).unwrap();
        assert_eq!(p.reported_crs, Crs::Gcj02);
        let moved = crate::geo::distance_m(
            p.location,
            LatLon {
                lat: 28.68,
                lon: 115.89,
            },
        );
        assert!((100.0..1000.0).contains(&moved), "moved {moved} m");
    }
}
