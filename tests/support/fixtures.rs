//! Fixtures shared by the tests: the sample county, reports, cases at a given stage.

use chrono::Utc;
use proto::{convert, v1};
use store::Store;

use crate::{COMMUNITY, GRID, TestServer};

/// Loads the sample county straight into the store.
pub async fn seed_sample(store: &Store) {
    let seed = domain::seed::parse(domain::seed::SAMPLE).unwrap();
    store
        .upsert_units(&seed.units, &store::Actor::system())
        .await
        .unwrap();
    store
        .upsert_categories(&seed.categories, &store::Actor::system())
        .await
        .unwrap();
    for p in &seed.policies {
        store.put_policy(p, &store::Actor::system()).await.unwrap();
    }
}

/// Stores the sample county's policy with one more rule: cases of `category` at the community
/// get these limits (short clocks make deadlines fall due within a test). Answers the policy
/// as stored. Servers see it once their directory's cache has expired (200 ms in tests).
pub async fn community_limits(
    store: &Store,
    category: &str,
    accept: domain::calendar::TimeLimit,
    handle: Option<domain::calendar::TimeLimit>,
) -> domain::policy::Policy {
    let seed = domain::seed::parse(domain::seed::SAMPLE).unwrap();
    let mut policy = seed.policies[0].clone();
    policy.sla.push(domain::policy::SlaRule {
        tier: domain::Tier::Community,
        category: Some(domain::policy::CategoryCode::parse(category).unwrap()),
        severity: None,
        accept: Some(accept),
        handle,
    });
    store
        .put_policy(&policy, &store::Actor::system())
        .await
        .unwrap();
    policy
}

/// A valid report from `grid`, with a fresh key.
pub fn report(grid: &str, category: &str, title: &str) -> v1::ReportEventRequest {
    v1::ReportEventRequest {
        idempotency_key: uuid::Uuid::now_v7().to_string(),
        grid_code: grid.to_owned(),
        category: category.to_owned(),
        severity: 0,
        title: title.to_owned(),
        description: "网格巡查发现".to_owned(),
        location: Some(v1::Location {
            lat: 28.6832,
            lon: 115.8992,
            crs: v1::Crs::Wgs84.into(),
        }),
        occurred_at: Some(convert::timestamp(
            Utc::now() - chrono::Duration::minutes(1),
        )),
        self_handled: false,
        attachments: Vec::new(),
        ..Default::default()
    }
}

/// The field names of an INVALID_ARGUMENT status's `BadRequest` details.
pub fn violated_fields(s: &tonic::Status) -> Vec<String> {
    use tonic_types::StatusExt as _;
    s.get_details_bad_request()
        .map(|b| b.field_violations.into_iter().map(|v| v.field).collect())
        .unwrap_or_default()
}

/// A case accepted by its community, with its result submitted: waiting for its grid's check.
pub async fn awaiting_check(s: &TestServer) -> String {
    let id = s.routed_case(GRID, "0501").await.case_id;
    let accepted = s
        .escalation(TestServer::staff(COMMUNITY))
        .accept(v1::AcceptRequest {
            case_id: id.clone(),
            unit_code: COMMUNITY.into(),
            expected_version: 0,
        })
        .await
        .unwrap();
    assert_eq!(
        accepted.into_inner().case.unwrap().status(),
        v1::CaseStatus::InProgress
    );
    s.handling(TestServer::staff(COMMUNITY))
        .submit_result(v1::SubmitResultRequest {
            case_id: id.clone(),
            unit_code: COMMUNITY.into(),
            note: "已处理".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    id
}

/// A JPEG whose EXIF says it was taken at `local` ("YYYY:MM:DD HH:MM:SS", the camera's clock
/// with no offset, as most phones write it) at `lat`, `lon` (WGS-84, northern and eastern).
#[must_use]
pub fn jpeg_with_exif(seed: u64, local: &str, lat: f64, lon: f64) -> Vec<u8> {
    use exif::{Field, In, Rational, Tag, Value};
    let dms = |d: f64| {
        let deg = d.trunc();
        let min = ((d - deg) * 60.0).trunc();
        let milli_sec = (((d - deg) * 60.0 - min) * 60.0 * 1000.0).round();
        Value::Rational(vec![
            Rational::from((deg as u32, 1)),
            Rational::from((min as u32, 1)),
            Rational::from((milli_sec as u32, 1000)),
        ])
    };
    let ascii = |s: &str| Value::Ascii(vec![s.as_bytes().to_vec()]);
    let fields = [
        (Tag::DateTimeOriginal, ascii(local)),
        (Tag::GPSLatitudeRef, ascii("N")),
        (Tag::GPSLatitude, dms(lat)),
        (Tag::GPSLongitudeRef, ascii("E")),
        (Tag::GPSLongitude, dms(lon)),
    ]
    .map(|(tag, value)| Field {
        tag,
        ifd_num: In::PRIMARY,
        value,
    });
    let mut w = exif::experimental::Writer::new();
    for f in &fields {
        w.push_field(f);
    }
    let mut tiff = std::io::Cursor::new(Vec::new());
    w.write(&mut tiff, false).expect("EXIF written");
    let tiff = tiff.into_inner();
    let mut b = vec![0xFF, 0xD8, 0xFF, 0xE1];
    b.extend_from_slice(&u16::try_from(2 + 6 + tiff.len()).unwrap().to_be_bytes());
    b.extend_from_slice(b"Exif\0\0");
    b.extend_from_slice(&tiff);
    // the rest of the picture: its own bytes, so that each seed is another file
    b.extend_from_slice(&[0xFF, 0xFE, 0x00, 0x0A]);
    b.extend_from_slice(&seed.to_be_bytes());
    b.extend_from_slice(&[0xFF, 0xD9]);
    b
}

/// A small JPEG of `n` bytes whose content differs with `seed`: the JPEG signature, then
/// filler (the type is read from the first bytes).
pub fn jpeg(seed: u64, n: usize) -> Vec<u8> {
    let mut b = vec![
        0xFF, 0xD8, 0xFF, 0xE0, 0x00, 0x10, b'J', b'F', b'I', b'F', 0x00,
    ];
    b.extend_from_slice(&seed.to_be_bytes());
    b.resize(n.max(b.len()), 0x5A);
    b
}

/// A unit's duty roster on the wire: two teams on 12-hour shifts around the clock, swapping
/// day and night each day, and the unit's head (staff ids, not people).
pub fn roster(unit: &str) -> v1::Roster {
    let person = |id: &str| v1::Person {
        id: id.into(),
        name: format!("值班员{id}"),
    };
    let shift = |name: &str, start: &str, rotation: [&str; 2]| v1::Shift {
        name: name.into(),
        start: start.into(),
        hours: 12,
        days: v1::ShiftDays::EveryDay.into(),
        anchor: "2026-12-01".into(),
        rotation: rotation.iter().map(|t| (*t).to_owned()).collect(),
    };
    v1::Roster {
        unit_code: unit.into(),
        teams: vec![
            v1::Team {
                name: "甲".into(),
                members: vec![person("S01"), person("S02")],
            },
            v1::Team {
                name: "乙".into(),
                members: vec![person("S03")],
            },
        ],
        shifts: vec![
            shift("白班", "08:00", ["甲", "乙"]),
            shift("夜班", "20:00", ["乙", "甲"]),
        ],
        head: Some(person("H01")),
        ..Default::default()
    }
}

/// A new Open311 key for a client of `region`, issued straight in the store.
pub async fn open311_key(s: &crate::TestServer, name: &str, region: &str) -> String {
    let k = server::open311::new_key();
    s.store
        .issue_open311_key(
            name,
            &domain::region::RegionCode::parse(region).unwrap(),
            &k,
            &store::Actor::system(),
        )
        .await
        .unwrap();
    k
}
