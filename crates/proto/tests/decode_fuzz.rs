//! Property tests over request decoding and validation: arbitrary bytes and hostile field values
//! must never panic the decoder, the wire conversions or the domain checks the server applies,
//! every rejection must name the field at fault, and whatever is accepted must hold the
//! documented constraints.

use chrono::{DateTime, TimeZone as _, Utc};
use domain::geo::Crs;
use domain::report::{
    ATTACHMENT_SIZE_MAX, ATTACHMENTS_MAX, DESCRIPTION_MAX, FUTURE_SKEW_MAX, FieldViolation,
    NewReport, TITLE_MAX, URL_MAX,
};
use gd_proto::{convert, v1};
use proptest::collection::vec;
use proptest::prelude::*;
use prost::Message;
use prost_types::Timestamp;

/// The fields a report rejection may name, besides `attachments[i].<field>`.
const REPORT_FIELDS: &str = "idempotency_key grid_code category severity title description \
    location location.lat location.lon location.crs occurred_at attachments source source_ref \
    reporter.name reporter.phone reporter.id_number reporter.email";

fn now() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 11, 26, 2, 0, 0).unwrap()
}

/// What the server does with a `ReportEventRequest` before it consults the registry.
fn validate(req: v1::ReportEventRequest) -> Result<NewReport, Vec<FieldViolation>> {
    NewReport::parse(convert::raw_report(req)?, now())
}

fn check_report(req: &v1::ReportEventRequest) -> Result<(), TestCaseError> {
    match validate(req.clone()) {
        Ok(r) => check_accepted(req, &r),
        Err(v) => {
            prop_assert!(!v.is_empty(), "rejected without a violation");
            for f in &v {
                prop_assert!(
                    REPORT_FIELDS.split_whitespace().any(|k| k == f.field)
                        || f.field.starts_with("attachments["),
                    "unexpected field {:?}",
                    f.field
                );
            }
            Ok(())
        }
    }
}

fn check_accepted(req: &v1::ReportEventRequest, r: &NewReport) -> Result<(), TestCaseError> {
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    // a hotline ticket or another system's record is its own key
    match r.source.identity_key() {
        Some(k) => prop_assert_eq!(r.idempotency_key, k),
        None => prop_assert_eq!(
            Ok(r.idempotency_key),
            uuid::Uuid::parse_str(req.idempotency_key.trim())
        ),
    }
    prop_assert!(r.grid.as_str().len() == 15 && digits(r.grid.as_str()));
    prop_assert!([2, 4].contains(&r.category.as_str().len()) && digits(r.category.as_str()));
    prop_assert_eq!(
        r.severity
            .map_or(0, |s| convert::severity_to_wire(s).into()),
        req.severity
    );
    prop_assert_eq!(r.title.as_str(), req.title.trim());
    prop_assert!(!r.title.is_empty() && r.title.chars().count() <= TITLE_MAX);
    prop_assert!(r.description.chars().count() <= DESCRIPTION_MAX);
    let Some(l) = req.location.as_ref() else {
        return Err(TestCaseError::fail("accepted without a location"));
    };
    prop_assert!((-90.0..=90.0).contains(&l.lat) && (-180.0..=180.0).contains(&l.lon));
    prop_assert_eq!(i32::from(convert::crs_to_wire(r.reported_crs)), l.crs);
    // The stored WGS-84 point is the converted one, and a valid position too.
    let (lat, lon) = (r.location.lat, r.location.lon);
    prop_assert!(
        lat.abs() <= 90.0 && lon.abs() <= 180.0,
        "stored {:?}",
        r.location
    );
    if matches!(r.reported_crs, Crs::Wgs84 | Crs::Cgcs2000) {
        prop_assert_eq!((r.location.lat, r.location.lon), (l.lat, l.lon));
    }
    prop_assert!(r.occurred_at <= now() + FUTURE_SKEW_MAX);
    prop_assert!(r.attachments.len() <= ATTACHMENTS_MAX);
    for a in &r.attachments {
        let hex = |b: u8| b.is_ascii_digit() || (b'a'..=b'f').contains(&b);
        prop_assert!(a.content_hash.len() == 64 && a.content_hash.bytes().all(hex));
        prop_assert!((1..=ATTACHMENT_SIZE_MAX).contains(&a.size));
        // empty: a file uploaded to this service
        prop_assert!(
            a.url.is_empty() || a.url.starts_with("https://") || a.url.starts_with("http://")
        );
        prop_assert!(a.url.len() <= URL_MAX && a.media_type.len() <= 100);
        let mt = a.media_type.split_once('/');
        prop_assert!(mt.is_some_and(|(t, s)| !t.is_empty() && !s.is_empty()));
    }
    Ok(())
}

fn check_policy(p: v1::Policy) -> Result<(), TestCaseError> {
    match convert::policy_from_wire(p) {
        Ok(policy) => {
            if let Err(e) = policy.validate() {
                prop_assert!(!e.field.is_empty());
            }
        }
        Err(v) => prop_assert!(v.field.starts_with("policy."), "field {:?}", v.field),
    }
    Ok(())
}

fn check_unit(u: v1::Unit) -> Result<(), TestCaseError> {
    let code = u.code.clone();
    match convert::unit_from_wire(u, "units[0]") {
        Ok(unit) => {
            prop_assert_eq!(unit.code.as_str(), code.as_str());
            if let Err((field, _)) = unit.validate() {
                prop_assert!(!field.is_empty());
            }
        }
        Err(v) => prop_assert!(v.field.starts_with("units[0]."), "field {:?}", v.field),
    }
    Ok(())
}

fn check_category(c: v1::Category) -> Result<(), TestCaseError> {
    match convert::category_from_wire(c, "categories[0]") {
        Ok(cat) => {
            prop_assert!([2, 4].contains(&cat.code.as_str().len()));
            prop_assert!(
                cat.accept_limit.validate().is_ok() && cat.handle_limit.validate().is_ok()
            );
        }
        Err(v) => prop_assert!(v.field.starts_with("categories[0]."), "field {:?}", v.field),
    }
    Ok(())
}

/// Field 1 of an enclosing message, length-delimited: the request that carries `inner`.
fn wrap(inner: &[u8]) -> Vec<u8> {
    let mut out = vec![0x0a];
    prost::encoding::encode_varint(inner.len() as u64, &mut out);
    out.extend_from_slice(inner);
    out
}

/// `b` decoded as a bare `M`, then the `M`s of a request `R` decoded from `b` and from `b`
/// wrapped as the request's first field.
fn decoded<M: Message + Default, R: Message + Default>(b: &[u8], items: fn(R) -> Vec<M>) -> Vec<M> {
    let mut out: Vec<M> = M::decode(b).into_iter().collect();
    for bytes in [b.to_vec(), wrap(b)] {
        out.extend(R::decode(bytes.as_slice()).into_iter().flat_map(items));
    }
    out
}

/// Arbitrary bytes, or a well-formed encoding with a few bytes overwritten and maybe truncated.
fn bytes(seed: &impl Message) -> impl Strategy<Value = Vec<u8>> {
    let seed = seed.encode_to_vec();
    let n = seed.len();
    let mutated = (vec((0..n, any::<u8>()), 0..8), proptest::option::of(0..=n)).prop_map(
        move |(edits, cut)| {
            let mut b = seed.clone();
            for (i, x) in edits {
                b[i] = x;
            }
            b.truncate(cut.unwrap_or(n));
            b
        },
    );
    prop_oneof![vec(any::<u8>(), 0..4096), mutated]
}

fn text(valid: &'static [&'static str], max: usize) -> impl Strategy<Value = String> {
    prop_oneof![
        6 => proptest::sample::select(valid).prop_map(str::to_owned),
        1 => Just(String::new()),
        1 => vec(any::<char>(), 0..max).prop_map(String::from_iter),
        1 => "[0-9]{0,20}",
        1 => "[\\x00-\\x1f \\u{3000}0-9a-zA-Z\\u{4e00}-\\u{9fff}]{0,24}",
    ]
}

/// A number in `lo..=hi`, often one of its ends.
fn in_range(lo: f64, hi: f64) -> impl Strategy<Value = f64> {
    prop_oneof![4 => lo..=hi, 1 => proptest::sample::select(vec![lo, hi, -0.0])]
}

fn float(lo: f64, hi: f64) -> impl Strategy<Value = f64> {
    let odd = vec![
        f64::NAN,
        f64::INFINITY,
        f64::NEG_INFINITY,
        lo - 1e-9,
        hi + 1e-9,
    ];
    prop_oneof![
        6 => in_range(lo, hi),
        1 => proptest::sample::select(odd),
        1 => any::<f64>(),
    ]
}

fn enum_num(max: i32) -> impl Strategy<Value = i32> {
    prop_oneof![6 => 0..=max, 1 => any::<i32>()]
}

fn timestamp() -> impl Strategy<Value = Timestamp> {
    let t = now().timestamp();
    let seconds = prop_oneof![6 => t - 400_000_000..t + 600, 1 => any::<i64>()];
    let nanos = prop_oneof![6 => 0..1_000_000_000, 1 => any::<i32>()];
    (seconds, nanos).prop_map(|(seconds, nanos)| Timestamp { seconds, nanos })
}

fn attachment() -> impl Strategy<Value = v1::Attachment> {
    let hash = prop_oneof![6 => "[0-9a-fA-F]{64}", 1 => "[0-9a-g]{0,70}", 1 => any::<String>()];
    let media = text(&["image/jpeg", "video/mp4", "audio/amr"], 120);
    let size = prop_oneof![6 => 1..=ATTACHMENT_SIZE_MAX, 1 => any::<u64>()];
    let url = prop_oneof![
        6 => "https?://[a-z]{1,12}\\.example/[a-z0-9]{0,30}",
        1 => "https://[a-z]{2100,2200}",
        1 => any::<String>(),
    ];
    (hash, media, size, url).prop_map(|(content_hash, media_type, size, url)| v1::Attachment {
        content_hash,
        media_type,
        size,
        url,
        ..Default::default()
    })
}

fn reporter() -> impl Strategy<Value = v1::Reporter> {
    let phone =
        prop_oneof![4 => "(\\+86 )?1[3-9][0-9]{9}", 2 => "0[1-9][0-9]{8,10}", 1 => any::<String>()];
    let id = prop_oneof![4 => "[0-9]{17}[0-9X]", 1 => "", 1 => any::<String>()];
    let name = prop_oneof![4 => text(&["", "王"], 10), 1 => ".{45,60}"];
    let email = prop_oneof![4 => "([a-z]{1,8}@[a-z]{1,8}\\.org)?", 1 => any::<String>()];
    (name, phone, id, email, any::<bool>()).prop_map(|(name, phone, id_number, email, masked)| {
        v1::Reporter {
            name,
            phone,
            id_number,
            email,
            masked,
        }
    })
}

fn report() -> impl Strategy<Value = v1::ReportEventRequest> {
    let key = prop_oneof![
        6 => "[ ]?[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}[ ]?",
        1 => any::<String>(),
    ];
    let grid = text(&["360102001001001", "360111002003004"], 20);
    let category = text(&["0501", "05", "1203"], 6);
    let title = prop_oneof![
        6 => text(&["暴露垃圾", " road  damage "], 30),
        1 => vec(any::<char>(), 190..2000).prop_map(String::from_iter),
        1 => "[\\u{4e00}-\\u{9fff}]{195,205}",
    ];
    let description = prop_oneof![6 => text(&["", "路口垃圾堆放"], 30), 1 => ".{3990,4010}"];
    let location = proptest::option::weighted(
        0.9,
        (float(-90.0, 90.0), float(-180.0, 180.0), enum_num(4))
            .prop_map(|(lat, lon, crs)| v1::Location { lat, lon, crs }),
    );
    let attachments = prop_oneof![6 => vec(attachment(), 0..4), 1 => vec(attachment(), 0..30)];
    (
        (key, grid, category, enum_num(4), title, description),
        (
            location,
            proptest::option::weighted(0.9, timestamp()),
            any::<bool>(),
            attachments,
        ),
        (
            enum_num(4),
            prop_oneof![4 => "", 4 => "[A-Z0-9-]{1,20}", 1 => ".{60,70}"],
            proptest::option::weighted(0.3, reporter()),
        ),
    )
        .prop_map(
            |(
                (k, g, c, severity, title, d),
                (location, occurred_at, s, a),
                (source, source_ref, reporter),
            )| {
                v1::ReportEventRequest {
                    source,
                    source_ref,
                    reporter,
                    idempotency_key: k,
                    grid_code: g,
                    category: c,
                    severity,
                    title,
                    description: d,
                    location,
                    occurred_at,
                    self_handled: s,
                    attachments: a,
                }
            },
        )
}

fn seed_report() -> v1::ReportEventRequest {
    v1::ReportEventRequest {
        idempotency_key: "0192f7a0-0000-7000-8000-000000000001".into(),
        grid_code: "360102001001001".into(),
        category: "0501".into(),
        severity: 2,
        title: "暴露垃圾".into(),
        description: "路口垃圾堆放".into(),
        location: Some(v1::Location {
            lat: 28.68,
            lon: 115.89,
            crs: 2,
        }),
        occurred_at: Some(convert::timestamp(now())),
        self_handled: false,
        attachments: vec![v1::Attachment {
            content_hash: "a".repeat(64),
            media_type: "image/jpeg".into(),
            size: 1000,
            url: "https://objects.example/1.jpg".into(),
            ..Default::default()
        }],
        ..Default::default()
    }
}

fn sample() -> domain::seed::Seed {
    domain::seed::parse(domain::seed::SAMPLE).unwrap()
}

fn seed_policy() -> v1::Policy {
    convert::policy_to_wire(&sample().policies[0], 3, now())
}

fn seed_unit() -> v1::Unit {
    let units = sample().units;
    convert::unit_to_wire(units.iter().rfind(|u| u.parent_code.is_some()).unwrap())
}

fn seed_category() -> v1::Category {
    let categories = sample().categories;
    convert::category_to_wire(
        categories
            .iter()
            .rfind(|c| c.parent_code.is_some())
            .unwrap(),
    )
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 2000,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn report_bytes_never_panic(b in bytes(&seed_report())) {
        if let Ok(req) = v1::ReportEventRequest::decode(b.as_slice()) {
            check_report(&req)?;
        }
        if let Ok(sync) = v1::SyncReportsRequest::decode(wrap(&b).as_slice()) {
            check_report(&sync.report.unwrap_or_default())?;
        }
    }

    #[test]
    fn registry_bytes_never_panic(
        p in bytes(&seed_policy()),
        u in bytes(&seed_unit()),
        c in bytes(&seed_category()),
    ) {
        for policy in decoded(&p, |r: v1::PutPolicyRequest| r.policy.into_iter().collect()) {
            check_policy(policy)?;
        }
        for unit in decoded(&u, |r: v1::UpsertUnitsRequest| r.units) {
            check_unit(unit)?;
        }
        for category in decoded(&c, |r: v1::UpsertCategoriesRequest| r.categories) {
            check_category(category)?;
        }
    }

    #[test]
    fn hostile_reports_are_checked_field_by_field(req in report()) {
        check_report(&req)?;
        let again = v1::ReportEventRequest::decode(req.encode_to_vec().as_slice()).unwrap();
        prop_assert_eq!(validate(again), validate(req));
    }

    #[test]
    fn valid_reports_survive_the_wire(
        seconds in now().timestamp() - 400_000_000..now().timestamp() + 300,
        nanos in 0..1_000_000_000,
        lat in in_range(-90.0, 90.0),
        lon in in_range(-180.0, 180.0),
        crs in 1..=4,
        severity in 0..=4,
        title in "[\\u{4e00}-\\u{9fff}a-z]{1,200}",
        attachments in vec(attachment(), 0..=ATTACHMENTS_MAX),
    ) {
        let with = |a: &v1::Attachment| v1::ReportEventRequest {
            attachments: vec![a.clone()],
            ..seed_report()
        };
        let attachments = attachments.into_iter().filter(|a| validate(with(a)).is_ok()).collect();
        let req = v1::ReportEventRequest {
            severity,
            title,
            location: Some(v1::Location { lat, lon, crs }),
            occurred_at: Some(Timestamp { seconds, nanos }),
            attachments,
            ..seed_report()
        };
        let direct = validate(req.clone());
        prop_assert!(direct.is_ok(), "{:?}", direct);
        check_report(&req)?;
        let bytes = v1::SyncReportsRequest { report: Some(req) }.encode_to_vec();
        let decoded = v1::SyncReportsRequest::decode(bytes.as_slice()).unwrap().report.unwrap();
        prop_assert_eq!(validate(decoded), direct);
    }
}
