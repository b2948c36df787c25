//! 網格事項準入 (ADR 0041): a county's list of matters admitted for grid staff. A matter not on
//! it never lands on a grid: it starts at the tier the policy names, a grid worker may not settle
//! it on the spot, and a dispatch down to a grid is refused naming the rule. The list is part of
//! the county's policy, so it is versioned and audited with it, and the indicators count the
//! admitted and the other matters apart.

use griddispatch_tests::*;
use proto::v1;
use sqlx::PgPool;
use tonic::Code;

const TOWNSHIP: &str = "360102001";
/// 消防隐患: not on the list below.
const FIRE_HAZARD: &str = "0201";
/// 暴露垃圾: on it (its top-level category 05 is).
const RUBBISH: &str = "0501";

async fn admit_only_environment_and_order(s: &TestServer) -> v1::Policy {
    let before = s.county_policy().await;
    let mut policy = before.clone();
    policy.admission = Some(v1::MatterAdmission {
        categories: vec!["05".into(), "06".into()],
        non_admitted_tier: v1::Tier::Township.into(),
    });
    let after = s.put_county_policy(policy).await;
    assert_eq!(
        after.version,
        before.version + 1,
        "versioned like any policy"
    );
    assert_eq!(after.admission.as_ref().unwrap().categories, ["05", "06"]);
    after
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_matter_not_admitted_skips_the_grid_and_is_never_handed_down(pool: PgPool) {
    let s = TestServer::start(pool).await;
    admit_only_environment_and_order(&s).await;
    // the change is in the policy's audit trail
    let trail = s
        .store
        .audit_trail(&format!("policy:{COUNTY}"))
        .await
        .unwrap();
    assert_eq!(trail.last().unwrap().role, "admin");

    // ResolveRoute says where each starts, and why
    let resolve = |category: &'static str| {
        let mut routing = s.admin_routing();
        async move {
            routing
                .resolve_route(v1::ResolveRouteRequest {
                    grid_code: GRID.into(),
                    category: category.into(),
                    ..Default::default()
                })
                .await
                .unwrap()
                .into_inner()
        }
    };
    let fire = resolve(FIRE_HAZARD).await;
    assert!(!fire.admitted);
    assert_eq!(
        (fire.tier(), fire.unit_code.as_str()),
        (v1::Tier::Township, TOWNSHIP)
    );
    assert!(
        fire.reasons.iter().any(|r| r.contains("網格事項準入")),
        "{:?}",
        fire.reasons
    );
    let rubbish = resolve(RUBBISH).await;
    assert!(rubbish.admitted);
    assert_eq!(rubbish.tier(), v1::Tier::Community);

    // a grid worker may not settle it on the spot: refused, nothing written
    let rows = s.report_rows().await;
    let mut on_the_spot = report(GRID, FIRE_HAZARD, "楼道堆放杂物");
    on_the_spot.self_handled = true;
    let err = s.worker(GRID).report_event(on_the_spot).await.unwrap_err();
    assert_eq!(err.code(), Code::FailedPrecondition);
    assert!(err.message().contains("網格事項準入"), "{}", err.message());
    assert!(err.message().contains(FIRE_HAZARD), "{}", err.message());
    assert_eq!(
        s.report_rows().await,
        rows,
        "a refused report writes nothing"
    );
    // an admitted matter still may be
    let mut settled = report(GRID, RUBBISH, "路边垃圾已清理");
    settled.self_handled = true;
    s.worker(GRID).report_event(settled).await.unwrap();

    // reported normally, it starts at the township, past the community and the grid
    let fire_case = s.routed_case(GRID, FIRE_HAZARD).await;
    assert_eq!(
        (fire_case.tier(), fire_case.holder_unit.as_str()),
        (v1::Tier::Township, TOWNSHIP)
    );
    let routed = s.get_case(&fire_case.case_id).await.events;
    assert!(
        routed[1].data_json.contains("\"admitted\":false"),
        "{}",
        routed[1].data_json
    );

    // the township may not hand it down to a grid, as lead or as helper
    let mut township = s.escalation(TestServer::staff(TOWNSHIP));
    for (lead, assisting) in [(GRID, vec![]), ("360102-CGJ", vec![GRID.to_owned()])] {
        let err = township
            .dispatch(v1::DispatchRequest {
                case_id: fire_case.case_id.clone(),
                unit_code: TOWNSHIP.into(),
                lead_unit: lead.into(),
                assisting_units: assisting,
                note: "下派网格处置".into(),
                expected_version: 0,
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::FailedPrecondition);
        assert!(
            err.message().contains("網格事項準入") && err.message().contains(GRID),
            "{}",
            err.message()
        );
    }
    assert_eq!(
        s.case_row(&fire_case.case_id).await,
        (
            "PENDING_ACCEPT".to_owned(),
            Some(TOWNSHIP.to_owned()),
            fire_case.version as i64
        ),
        "a refused dispatch changes nothing"
    );
    // to a department it goes
    township
        .dispatch(v1::DispatchRequest {
            case_id: fire_case.case_id.clone(),
            unit_code: TOWNSHIP.into(),
            lead_unit: "360102-XFJY".into(),
            note: "消防救援大队处置".into(),
            ..Default::default()
        })
        .await
        .unwrap();

    // an admitted matter the township holds may go down to the grid
    let rubbish_case = s.routed_case(GRID, RUBBISH).await;
    s.escalation(TestServer::staff(COMMUNITY))
        .call_up(v1::CallUpRequest {
            case_id: rubbish_case.case_id.clone(),
            unit_code: COMMUNITY.into(),
            reason: "需街道协调".into(),
            expected_version: 0,
        })
        .await
        .unwrap();
    let down = township
        .dispatch(v1::DispatchRequest {
            case_id: rubbish_case.case_id.clone(),
            unit_code: TOWNSHIP.into(),
            lead_unit: GRID.into(),
            note: "网格员就近清理".into(),
            ..Default::default()
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(down.holder_unit, GRID);

    // today's indicators count the matters apart: three reported, one not admitted
    let stats = s.recent_indicators().await;
    assert_eq!(
        (
            stats.reported,
            stats.admitted_matters,
            stats.non_admitted_matters
        ),
        (3, 2, 1)
    );
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_list_that_would_start_a_matter_at_the_grid_is_refused(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let mut admin = s.admin_routing();
    let mut policy = s.county_policy().await;
    let version = policy.version;
    for (categories, tier, field) in [
        (
            vec!["05".to_owned()],
            v1::Tier::Grid,
            "policy.admission.non_admitted_tier",
        ),
        (
            vec!["5".to_owned()],
            v1::Tier::Township,
            "policy.admission.categories[0]",
        ),
    ] {
        policy.admission = Some(v1::MatterAdmission {
            categories,
            non_admitted_tier: tier.into(),
        });
        let err = admin
            .put_policy(v1::PutPolicyRequest {
                policy: Some(policy.clone()),
            })
            .await
            .unwrap_err();
        assert_eq!(err.code(), Code::InvalidArgument, "{}", err.message());
        assert_eq!(violated_fields(&err), [field]);
    }
    let now = s.county_policy().await;
    assert_eq!(now.version, version, "a refused policy is not stored");
    assert!(now.admission.is_none());
    s.stop().await;
}
