//! Where a point falls: grid boundaries checked as they enter the registry, `LocatePoint`
//! inside a grid, on a shared edge, in GCJ-02, near the county and far from it, and residents'
//! and hotline reports that name no grid routed by their location.

use griddispatch_tests::*;
use proto::v1;
use serde_json::json;
use server::auth::Role;
use sqlx::PgPool;
use tonic::Code;

/// Where the fixtures report from: inside [`GRID`] (deploy/sample/generate.py checks it).
const LAT: f64 = 28.6832;
const LON: f64 = 115.8992;
/// The sample county's western edge (deploy/sample/generate.py).
const COUNTY_WEST: f64 = 115.8984;

fn at(lat: f64, lon: f64, crs: v1::Crs) -> v1::LocatePointRequest {
    v1::LocatePointRequest {
        location: Some(v1::Location {
            lat,
            lon,
            crs: crs.into(),
        }),
    }
}

async fn locate(
    s: &TestServer,
    req: v1::LocatePointRequest,
) -> Result<v1::LocatePointResponse, tonic::Status> {
    s.routing_with(TestServer::bearer(Role::Intake, COUNTY))
        .locate_point(req)
        .await
        .map(tonic::Response::into_inner)
}

fn ring(w: f64, s: f64, e: f64, n: f64) -> String {
    json!({"type": "Polygon", "coordinates": [[[w, s], [e, s], [e, n], [w, n], [w, s]]]})
        .to_string()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn boundaries_are_checked_before_anything_is_written(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let admin = s.admin_routing();
    let before = s.count("units").await;
    let grid = |code: &str, boundary: String| v1::Unit {
        code: code.into(),
        name: format!("{code}网格"),
        kind: v1::UnitKind::UnitGrid.into(),
        parent_code: COMMUNITY.into(),
        boundary,
    };
    let refused = |boundary: &str| {
        let admin = admin.clone();
        let unit = grid("360102001001099", boundary.to_owned());
        async move {
            let mut admin = admin;
            admin
                .upsert_units(v1::UpsertUnitsRequest { units: vec![unit] })
                .await
                .unwrap_err()
        }
    };
    let cases = [
        // a ring whose last position does not repeat its first
        r#"{"type":"Polygon","coordinates":[[[115.9,28.69],[115.901,28.69],[115.901,28.691],[115.9,28.691]]]}"#.to_owned(),
        // a bow tie: its edges cross
        r#"{"type":"Polygon","coordinates":[[[115.9,28.69],[115.901,28.691],[115.901,28.69],[115.9,28.691],[115.9,28.69]]]}"#.to_owned(),
        "not json".to_owned(),
        r#"{"type":"Point","coordinates":[115.9,28.69]}"#.to_owned(),
        // far outside its community's boundary
        ring(116.5, 29.0, 116.51, 29.01),
    ];
    for b in &cases {
        let e = refused(b).await;
        assert_eq!(e.code(), Code::InvalidArgument, "{b}: {e:?}");
        assert_eq!(
            violated_fields(&e),
            ["units[0].boundary"],
            "{b}: {}",
            e.message()
        );
    }
    let dept = v1::Unit {
        code: "360102-XXJ".into(),
        name: "某局".into(),
        kind: v1::UnitKind::UnitDepartment.into(),
        parent_code: COUNTY.into(),
        boundary: ring(115.9, 28.69, 115.901, 28.691),
    };
    let e = admin
        .clone()
        .upsert_units(v1::UpsertUnitsRequest { units: vec![dept] })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&e), ["units[0].boundary"]);
    assert_eq!(s.count("units").await, before, "nothing was written");

    // a grid inside its community is kept, listed with its boundary, and found at once
    let community = admin
        .clone()
        .list_units(v1::ListUnitsRequest {
            parent_code: "360102001".into(),
            page_size: 1,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .units
        .remove(0);
    assert_eq!(community.code, COMMUNITY);
    let outline: serde_json::Value = serde_json::from_str(&community.boundary).unwrap();
    let sw = &outline["coordinates"][0][0];
    let (w, south) = (sw[0].as_f64().unwrap(), sw[1].as_f64().unwrap());
    // a sliver along the community's south-west corner: the existing grids there now overlap
    // it, but the registry takes it (overlaps are the surveyor's to settle); the lower code
    // wins a point both hold, and this one's code is the highest
    let new = grid(
        "360102001001099",
        ring(w, south, w + 0.0002, south + 0.0002),
    );
    admin
        .clone()
        .upsert_units(v1::UpsertUnitsRequest {
            units: vec![new.clone()],
        })
        .await
        .unwrap();
    let listed = admin
        .clone()
        .list_units(v1::ListUnitsRequest {
            parent_code: COMMUNITY.into(),
            page_token: "360102001001098".into(),
            page_size: 5,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .units;
    assert_eq!(listed.len(), 1);
    let stored: serde_json::Value = serde_json::from_str(&listed[0].boundary).unwrap();
    let sent: serde_json::Value = serde_json::from_str(&new.boundary).unwrap();
    assert_eq!(stored, sent);

    // a region's subtree: the township, its communities and grids, nothing of its neighbours
    let township = admin
        .clone()
        .list_units(v1::ListUnitsRequest {
            region_code: "360102001".into(),
            page_size: 500,
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .units;
    assert!(township.iter().any(|u| u.code == "360102001"));
    assert!(township.iter().any(|u| u.code == COMMUNITY));
    assert!(township.iter().all(|u| u.code.starts_with("360102001")));
    let err = admin
        .clone()
        .list_units(v1::ListUnitsRequest {
            region_code: "36A".into(),
            ..Default::default()
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn points_fall_in_grids_on_edges_near_the_county_or_nowhere(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let inside = locate(&s, at(LAT, LON, v1::Crs::Wgs84)).await.unwrap();
    assert_eq!(inside.grid_code, GRID);
    assert_eq!(inside.community_code, COMMUNITY);
    assert!(inside.inside);
    assert_eq!(inside.distance_m, 0.0);

    // the same place as a Chinese map app gives it: converted first
    let gcj = domain::geo::wgs84_to_gcj02(domain::geo::LatLon::new(LAT, LON));
    let via_gcj = locate(&s, at(gcj.lat, gcj.lon, v1::Crs::Gcj02))
        .await
        .unwrap();
    assert_eq!(via_gcj.grid_code, GRID);
    let bd = domain::geo::gcj02_to_bd09(gcj);
    let via_bd = locate(&s, at(bd.lat, bd.lon, v1::Crs::Bd09)).await.unwrap();
    assert_eq!(via_bd.grid_code, GRID);

    // on the county's western edge, which is the first grid's own edge
    let edge = locate(&s, at(LAT, COUNTY_WEST, v1::Crs::Wgs84))
        .await
        .unwrap();
    assert_eq!(edge.grid_code, GRID);
    assert!(edge.inside);

    // on the edge two grids share: the lower code, whichever way it is asked
    let seed = domain::seed::parse(domain::seed::SAMPLE).unwrap();
    let second: serde_json::Value = seed
        .units
        .iter()
        .find(|u| u.code.as_str() == "360102001001002")
        .and_then(|u| u.boundary.as_ref())
        .unwrap()
        .to_geojson();
    let p0 = &second["coordinates"][0][0];
    let p3 = &second["coordinates"][0][3];
    // the divider between grids 001 and 002 runs from the second grid's first position to
    // its fourth; its midpoint lies on both
    let mid = |i: usize| f64::midpoint(p0[i].as_f64().unwrap(), p3[i].as_f64().unwrap());
    let shared = locate(&s, at(mid(1), mid(0), v1::Crs::Wgs84))
        .await
        .unwrap();
    assert_eq!(shared.grid_code, GRID, "{shared:?}");

    // 0.002° (about 195 m) west of the county: the nearest grid's community takes it
    let near = locate(&s, at(LAT, COUNTY_WEST - 0.002, v1::Crs::Wgs84))
        .await
        .unwrap();
    assert_eq!(near.grid_code, GRID);
    assert_eq!(near.community_code, COMMUNITY);
    assert!(!near.inside);
    assert!((150.0..250.0).contains(&near.distance_m), "{near:?}");

    // 0.05° (about 5 km) away: refused, with the reason
    let far = locate(&s, at(LAT, COUNTY_WEST - 0.05, v1::Crs::Wgs84))
        .await
        .unwrap_err();
    assert_eq!(far.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&far), ["location"]);
    let reason = {
        use tonic_types::StatusExt as _;
        far.get_details_bad_request().unwrap().field_violations[0]
            .description
            .clone()
    };
    assert!(reason.contains("outside every grid"), "{reason}");

    // bad coordinates are the caller's to fix
    let bad = locate(&s, at(91.0, LON, v1::Crs::Wgs84)).await.unwrap_err();
    assert_eq!(violated_fields(&bad), ["location.lat"]);
    let none = locate(&s, v1::LocatePointRequest { location: None })
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&none), ["location"]);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn reports_that_name_no_grid_are_placed_by_their_location(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let app = s.reporting_with(TestServer::bearer(Role::Intake, COUNTY));

    // a resident's report from the sample point: the grid it falls in, the community's queue
    let mut r = report("", "0501", "小区门口垃圾堆积");
    r.source = v1::ReportSource::Resident.into();
    let case = app
        .clone()
        .report_event(r)
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(case.grid_code, GRID);
    let id = case.case_id.clone();
    s.eventually(10, "the case is routed", || async {
        s.case_row(&id).await.0 == "PENDING_ACCEPT"
    })
    .await;
    let routed = s.get_case(&id).await.case.unwrap();
    assert_eq!(routed.holder_unit, COMMUNITY);

    // a hotline ticket given in BD-09, as Baidu maps hand it over
    let bd = domain::geo::gcj02_to_bd09(domain::geo::wgs84_to_gcj02(domain::geo::LatLon::new(
        LAT, LON,
    )));
    let mut hotline = report("", "0501", "路灯不亮");
    hotline.idempotency_key.clear();
    hotline.source = v1::ReportSource::Hotline12345.into();
    hotline.source_ref = format!("NC-{}", uuid::Uuid::now_v7().simple());
    hotline.location = Some(v1::Location {
        lat: bd.lat,
        lon: bd.lon,
        crs: v1::Crs::Bd09.into(),
    });
    let case = app
        .clone()
        .report_event(hotline)
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(case.grid_code, GRID);

    // a point no grid takes is refused and writes nothing
    let cases = s.count("cases").await;
    let mut lost = report("", "0501", "远处");
    lost.source = v1::ReportSource::Resident.into();
    lost.location.as_mut().unwrap().lon = COUNTY_WEST - 0.05;
    let e = app.clone().report_event(lost).await.unwrap_err();
    assert_eq!(violated_fields(&e), ["location"]);
    assert_eq!(s.count("cases").await, cases);

    // a grid worker names its grid: no location fills it in
    let e = s
        .reporting_with(TestServer::bearer(Role::GridWorker, GRID))
        .report_event(report("", "0501", "网格员未填网格"))
        .await
        .unwrap_err();
    assert_eq!(violated_fields(&e), ["grid_code"]);
    assert_eq!(s.count("cases").await, cases);
}
