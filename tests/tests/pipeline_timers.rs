//! The pipeline's timers and replicas against real PostgreSQL and Redis: escalation tier by
//! tier, supervision, working time across a holiday, accepts racing deadlines, replicas agreeing.

use std::collections::HashMap;

use griddispatch_tests::*;
use proto::convert;
use proto::v1;
use server::clock::Clock as _;
use sqlx::PgPool;
use tonic::Code;

const TOWNSHIP: &str = "360102001";
const CITY: &str = "3601";
const LEAD: &str = "360102-CGJ";
const HELP_A: &str = "360102-ZJJ";

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn unaccepted_cases_escalate_tier_by_tier_then_stay_flagged(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let case = s.routed_case(GRID, "0501").await;
    let id = case.case_id.clone();
    for (holder, tier) in [(TOWNSHIP, "TOWNSHIP"), (COUNTY, "COUNTY"), (CITY, "CITY")] {
        s.advance(chrono::Duration::days(40));
        s.eventually(10, &format!("escalated to {tier}"), || async {
            s.case_row(&id).await.1.as_deref() == Some(holder)
        })
        .await;
    }
    s.advance(chrono::Duration::days(40));
    s.eventually(10, "flagged at the top", || async {
        s.get_case(&id)
            .await
            .events
            .iter()
            .any(|e| e.event_type == "flagged")
    })
    .await;
    // nothing further fires, however long nobody acts
    s.advance(chrono::Duration::days(400));
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let file = s.get_case(&id).await;
    let c = file.case.unwrap();
    assert_eq!(
        (c.status(), c.tier(), c.holder_unit.as_str()),
        (v1::CaseStatus::PendingAccept, v1::Tier::City, CITY)
    );
    assert!(c.overdue);
    let kinds: Vec<&str> = file
        .events
        .iter()
        .map(|e| e.event_type.as_str())
        .filter(|t| *t != "warned")
        .collect();
    assert_eq!(
        kinds,
        [
            "reported",
            "routed",
            "escalated",
            "escalated",
            "escalated",
            "flagged"
        ]
    );
    let warned = file
        .events
        .iter()
        .filter(|e| e.event_type == "warned")
        .count();
    assert_eq!(warned, 4, "one yellow warning per tier's accept clock");
    let versions: Vec<u64> = file.events.iter().map(|e| e.version).collect();
    assert_eq!(versions, (1..=versions.len() as u64).collect::<Vec<_>>());
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn handle_deadlines_bring_supervision_to_the_tier_above(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let case = s.routed_case(GRID, "0501").await;
    let id = case.case_id.clone();
    s.escalation(TestServer::staff(COMMUNITY))
        .accept(v1::AcceptRequest {
            case_id: id.clone(),
            unit_code: COMMUNITY.into(),
            expected_version: 0,
        })
        .await
        .unwrap();
    s.advance(chrono::Duration::days(60));
    s.eventually(10, "overdue", || async {
        s.get_case(&id).await.case.unwrap().overdue
    })
    .await;
    let supervise: Vec<serde_json::Value> = {
        let key = s.queue.key(&griddispatch_tests::inbox_stream(TOWNSHIP));
        let entries = read_stream(&s, &key).await;
        entries
            .into_iter()
            .filter(|v| v["kind"] == "SUPERVISE")
            .collect()
    };
    assert_eq!(supervise.len(), 1, "督辦 item in the township's inbox");
    assert_eq!(supervise[0]["case_id"], id);
    s.stop().await;
}

/// Deadlines are never cancelled, so most find their clock stopped when they fall due. Those
/// are retired on a look at the case that takes no lock: a writer holding the case (a long
/// command, a stalled connection) delays only the deadlines that still mean something.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_stopped_clocks_deadlines_retire_while_a_writer_holds_the_case(pool: PgPool) {
    let s = TestServer::start(pool.clone()).await;
    let id = s.routed_case(GRID, "0501").await.case_id;
    s.escalation(TestServer::staff(COMMUNITY))
        .accept(v1::AcceptRequest {
            case_id: id.clone(),
            unit_code: COMMUNITY.into(),
            expected_version: 0,
        })
        .await
        .unwrap();
    let uuid: uuid::Uuid = id.parse().unwrap();
    let (accept_armed, accept_last, handle_first): (
        i64,
        chrono::DateTime<chrono::Utc>,
        chrono::DateTime<chrono::Utc>,
    ) = sqlx::query_as(
        "SELECT count(*) FILTER (WHERE clock = 'accept'),
                    max(fire_at) FILTER (WHERE clock = 'accept'),
                    min(fire_at) FILTER (WHERE clock = 'handle')
               FROM deadlines WHERE case_id = $1",
    )
    .bind(uuid)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert!(
        accept_last < handle_first,
        "the accept clock ends before the handle clock's first deadline"
    );
    let fired = |clock: &'static str| {
        let pool = pool.clone();
        async move {
            let rows: Vec<(Option<String>,)> = sqlx::query_as(
                "SELECT outcome FROM deadlines WHERE case_id = $1 AND clock = $2 AND fired_at IS NOT NULL",
            )
            .bind(uuid)
            .bind(clock)
            .fetch_all(&pool)
            .await
            .unwrap();
            rows.into_iter()
                .map(|(o,)| o.unwrap_or_default())
                .collect::<Vec<_>>()
        }
    };
    // a writer takes the case and keeps it
    let mut writer = pool.begin().await.unwrap();
    sqlx::query("SELECT 1 FROM cases WHERE case_id = $1 FOR UPDATE")
        .bind(uuid)
        .execute(&mut *writer)
        .await
        .unwrap();
    s.advance(accept_last - s.clock.now() + chrono::Duration::seconds(1));
    s.eventually(
        10,
        "the accepted case's accept deadlines retired under the writer's lock",
        || async {
            let out = fired("accept").await;
            out.len() as i64 == accept_armed && out.iter().all(|o| o == "stale")
        },
    )
    .await;
    // the handle clock runs: its first deadline waits for the writer, and then takes effect
    s.advance(handle_first - s.clock.now() + chrono::Duration::seconds(1));
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert!(
        fired("handle").await.is_empty(),
        "a running clock's deadline waits for the case's lock"
    );
    writer.rollback().await.unwrap();
    s.eventually(
        10,
        "the handle clock's warning once the writer let go",
        || async { fired("handle").await == ["warned"] },
    )
    .await;
    s.stop().await;
}

/// Every entry's JSON payload of a stream, waiting a moment for the relay.
async fn read_stream(s: &TestServer, key: &str) -> Vec<serde_json::Value> {
    let mut conn = s.queue.blocking_conn().await.unwrap();
    let mut out = Vec::new();
    for _ in 0..50 {
        out = s
            .queue
            .read_after(
                &mut conn,
                key,
                "0-0",
                10_000,
                std::time::Duration::from_millis(10),
            )
            .await
            .unwrap()
            .into_iter()
            .map(|e| serde_json::from_str(&e.payload).unwrap())
            .collect();
        if !out.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    out
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn accept_racing_the_deadline_with_two_timer_workers(pool: PgPool) {
    on_worker_threads(pool, accept_racing_the_deadline).await;
}

async fn accept_racing_the_deadline(pool: PgPool) {
    const N: usize = 1000;
    let s = TestServer::start(pool.clone()).await;
    let replica = TestServer::start_with(pool, s.queue.prefix(), s.clock.clone(), false).await;
    let batch: Vec<v1::SyncReportsRequest> = (0..N)
        .map(|i| v1::SyncReportsRequest {
            report: Some(report(GRID, "0501", &format!("竞争 {i}"))),
        })
        .collect();
    let mut replies = s
        .worker(GRID)
        .sync_reports(tokio_stream::iter(batch))
        .await
        .unwrap()
        .into_inner();
    let mut ids = Vec::new();
    while let Some(r) = replies.message().await.unwrap() {
        if let Some(v1::sync_reports_response::Result::Ok(ok)) = r.result {
            ids.push(ok.case.unwrap().case_id);
        }
    }
    assert_eq!(ids.len(), N);
    s.eventually(60, "every case routed", || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM cases WHERE status = 'PENDING_ACCEPT'")
            .fetch_one(&s.pool)
            .await
            .unwrap()
            == N as i64
    })
    .await;
    // the clock jumps past every accept deadline while the community accepts them all
    s.advance(chrono::Duration::days(40));
    replica.wake.timers.notify_one();
    let mut accepts = Vec::new();
    for chunk in ids.chunks(N / 16) {
        let mut client = if accepts.len() % 2 == 0 {
            s.escalation(TestServer::staff(COMMUNITY))
        } else {
            replica.escalation(TestServer::staff(COMMUNITY))
        };
        let chunk = chunk.to_vec();
        accepts.push(tokio::spawn(async move {
            let mut ok = 0;
            for id in chunk {
                match client
                    .accept(v1::AcceptRequest {
                        case_id: id,
                        unit_code: COMMUNITY.into(),
                        expected_version: 0,
                    })
                    .await
                {
                    Ok(_) => ok += 1,
                    Err(e) => assert_eq!(e.code(), Code::FailedPrecondition, "{e:?}"),
                }
            }
            ok
        }));
    }
    let mut accepted_ok = 0;
    for a in accepts {
        accepted_ok += a.await.unwrap();
    }
    s.eventually(60, "every community accept deadline fired", || async {
        sqlx::query_scalar::<_, i64>("SELECT count(*) FROM deadlines WHERE fired_at IS NULL AND unit_code = $1 AND clock = 'accept'")
            .bind(COMMUNITY)
            .fetch_one(&s.pool)
            .await
            .unwrap()
            == 0
    })
    .await;
    let rows: Vec<(uuid::Uuid, String, Option<String>)> =
        sqlx::query_as("SELECT case_id, event_type, actor_unit FROM case_events WHERE event_type IN ('accepted', 'escalated')")
            .fetch_all(&s.pool)
            .await
            .unwrap();
    let mut per_case: HashMap<uuid::Uuid, (usize, usize)> = HashMap::new();
    for (case, kind, _) in &rows {
        let e = per_case.entry(*case).or_default();
        if kind == "accepted" {
            e.0 += 1;
        } else {
            e.1 += 1;
        }
    }
    assert_eq!(per_case.len(), N);
    let mut escalated = 0;
    for (case, (acc, esc)) in &per_case {
        assert!(
            acc + esc == 1,
            "case {case}: accepted {acc} times and escalated {esc} times"
        );
        escalated += esc;
    }
    assert_eq!(accepted_ok + escalated, N);
    println!("race: {accepted_ok} accepted, {escalated} escalated, none both");
    replica.stop().await;
    s.stop().await;
}

/// A scripted day: one case through every stage and one left to escalate, with the calls
/// spread over `a` and `b` (the same server twice, or two replicas). Answers each case's
/// event types in order.
async fn scripted_day(a: &TestServer, b: &TestServer) -> Vec<Vec<String>> {
    let pick = |i: usize| if i.is_multiple_of(2) { a } else { b };
    let handled = a.routed_case(GRID, "0501").await.case_id;
    let idle = b.routed_case(OTHER_GRID, "0501").await.case_id;
    pick(0)
        .escalation(TestServer::staff(COMMUNITY))
        .accept(v1::AcceptRequest {
            case_id: handled.clone(),
            unit_code: COMMUNITY.into(),
            expected_version: 0,
        })
        .await
        .unwrap();
    pick(1)
        .escalation(TestServer::staff(COMMUNITY))
        .call_up(v1::CallUpRequest {
            case_id: handled.clone(),
            unit_code: COMMUNITY.into(),
            reason: "需街道协调".into(),
            expected_version: 0,
        })
        .await
        .unwrap();
    pick(2)
        .escalation(TestServer::staff(TOWNSHIP))
        .dispatch(v1::DispatchRequest {
            case_id: handled.clone(),
            unit_code: TOWNSHIP.into(),
            lead_unit: LEAD.into(),
            assisting_units: vec![HELP_A.into()],
            note: String::new(),
            expected_version: 0,
        })
        .await
        .unwrap();
    for (i, dept) in [HELP_A, LEAD].into_iter().enumerate() {
        pick(i)
            .escalation(TestServer::staff(dept))
            .accept(v1::AcceptRequest {
                case_id: handled.clone(),
                unit_code: dept.into(),
                expected_version: 0,
            })
            .await
            .unwrap();
    }
    for (i, dept) in [HELP_A, LEAD].into_iter().enumerate() {
        pick(i + 1)
            .handling(TestServer::staff(dept))
            .submit_result(v1::SubmitResultRequest {
                case_id: handled.clone(),
                unit_code: dept.into(),
                note: "完成".into(),
                ..Default::default()
            })
            .await
            .unwrap();
    }
    pick(0)
        .worker(GRID)
        .verify_case(v1::VerifyCaseRequest {
            case_id: handled.clone(),
            passed: true,
            ..Default::default()
        })
        .await
        .unwrap();
    pick(1)
        .worker(GRID)
        .rate_case(v1::RateCaseRequest {
            case_id: handled.clone(),
            score: 4,
            comment: String::new(),
        })
        .await
        .unwrap();
    // the idle case escalates to the top and is flagged; both replicas' timers are running
    for _ in 0..4 {
        // counted before the clock moves: the escalation may land at once
        let before = a.get_case(&idle).await.events.len();
        a.advance(chrono::Duration::days(40));
        b.wake.timers.notify_one();
        a.eventually(10, "the next escalation", || async {
            a.get_case(&idle).await.events.len() > before
        })
        .await;
        tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    }
    let mut out = Vec::new();
    for id in [handled, idle] {
        let events = a.get_case(&id).await.events;
        let versions: Vec<u64> = events.iter().map(|e| e.version).collect();
        assert_eq!(versions, (1..=events.len() as u64).collect::<Vec<_>>());
        out.push(events.into_iter().map(|e| e.event_type).collect());
    }
    out
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn two_replicas_give_the_same_results_as_one(pool: PgPool) {
    on_worker_threads(pool, two_replicas_and_one).await;
}

async fn two_replicas_and_one(pool: PgPool) {
    let one = TestServer::start(pool.clone()).await;
    let single = scripted_day(&one, &one).await;
    one.stop().await;

    let prefix = format!("gdtest-{}", uuid::Uuid::now_v7());
    let clock = std::sync::Arc::new(server::clock::OffsetClock::default());
    let r1 = TestServer::start_with(pool.clone(), &prefix, clock.clone(), false).await;
    let r2 = TestServer::start_with(pool, &prefix, clock, false).await;
    let double = scripted_day(&r1, &r2).await;
    assert_eq!(single, double);
    assert_eq!(single[1].iter().filter(|t| *t == "escalated").count(), 3);
    assert_eq!(single[1].iter().filter(|t| *t == "flagged").count(), 1);
    // each deadline fired exactly once, by one replica or the other
    let twice = invariants::fired_twice(&r1.pool).await;
    assert_eq!(twice, 0);
    r2.stop().await;
    r1.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_deadline_fires_at_its_working_time_across_a_holiday_not_before(pool: PgPool) {
    use server::clock::Clock as _;
    let s = TestServer::start(pool).await;
    // Thursday 10 December 2026 is a holiday in this county; 0503 must be accepted within two
    // working hours at the community
    let holiday = chrono::NaiveDate::from_ymd_opt(2026, 12, 10).unwrap();
    let seed = domain::seed::parse(domain::seed::SAMPLE).unwrap();
    let mut policy = seed.policies[0].clone();
    policy.calendar.holidays.push(holiday);
    policy.sla.push(domain::policy::SlaRule {
        tier: domain::Tier::Community,
        category: Some(domain::policy::CategoryCode::parse("0503").unwrap()),
        severity: None,
        accept: Some(domain::calendar::TimeLimit::working(120)),
        handle: None,
    });
    s.store
        .put_policy(&policy, &store::Actor::system())
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let cst = chrono::FixedOffset::east_opt(8 * 3600).unwrap();
    let at = |rfc: &str| {
        chrono::DateTime::parse_from_rfc3339(rfc)
            .unwrap()
            .with_timezone(&chrono::Utc)
    };
    // reported late on Wednesday afternoon
    s.advance(at("2026-12-09T16:30:00+08:00") - s.clock.now());
    let case = s.routed_case(GRID, "0503").await;
    let due = convert::from_timestamp(case.accept_due_at.as_ref().unwrap()).unwrap();
    assert_eq!(
        due.with_timezone(&cst).date_naive(),
        holiday.succ_opt().unwrap(),
        "the clock stops on the holiday and runs again on Friday: due {due}"
    );
    assert_eq!(
        policy
            .calendar
            .working_minutes_between(at("2026-12-09T16:30:00+08:00"), due),
        120
    );
    let escalated = || async {
        s.get_case(&case.case_id)
            .await
            .events
            .iter()
            .find(|e| e.event_type == "escalated")
            .map(|e| convert::from_timestamp(e.recorded_at.as_ref().unwrap()).unwrap())
    };
    // two minutes before its time, on Friday: nothing yet
    s.advance(due - chrono::Duration::minutes(2) - s.clock.now());
    s.wake.timers.notify_one();
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_eq!(escalated().await, None, "not before its time");
    // just after it: escalated, and not earlier than the due time
    s.advance(due + chrono::Duration::seconds(1) - s.clock.now());
    s.eventually(10, "escalated at its time", || async {
        escalated().await.is_some()
    })
    .await;
    assert!(escalated().await.unwrap() >= due);
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_registry_change_on_one_replica_reaches_the_other_within_the_cache_lifetime(
    pool: PgPool,
) {
    on_worker_threads(pool, registry_change_across_replicas).await;
}

async fn registry_change_across_replicas(pool: PgPool) {
    let prefix = format!("gdtest-{}", uuid::Uuid::now_v7());
    let clock = std::sync::Arc::new(server::clock::OffsetClock::default());
    let r1 = TestServer::start_with(pool.clone(), &prefix, clock.clone(), true).await;
    let r2 = TestServer::start_with(pool, &prefix, clock, false).await;
    // a case at the county (0302 starts there), known to replica 2's directory already
    let case = r2.routed_case(GRID, "0302").await;
    assert_eq!(case.holder_unit, COUNTY);
    let dispatch = |lead: &str| {
        let mut e = r2.escalation(TestServer::staff(COUNTY));
        let req = v1::DispatchRequest {
            case_id: case.case_id.clone(),
            unit_code: COUNTY.into(),
            lead_unit: lead.into(),
            assisting_units: Vec::new(),
            note: String::new(),
            expected_version: 0,
        };
        async move { e.dispatch(req).await }
    };
    let err = dispatch("360102-QXJ").await.unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument, "not a unit yet: {err:?}");
    // replica 1 adds the department
    r1.admin_routing()
        .upsert_units(v1::UpsertUnitsRequest {
            units: vec![v1::Unit {
                code: "360102-QXJ".into(),
                name: "区气象局".into(),
                kind: v1::UnitKind::UnitDepartment.into(),
                parent_code: COUNTY.into(),
                ..Default::default()
            }],
        })
        .await
        .unwrap();
    // replica 2 knows it within its directory's lifetime (200 ms in tests)
    let t = std::time::Instant::now();
    let c = loop {
        match dispatch("360102-QXJ").await {
            Ok(c) => break c.into_inner().case.unwrap(),
            Err(e) => {
                assert_eq!(e.code(), Code::InvalidArgument, "{e:?}");
                assert!(
                    t.elapsed() < std::time::Duration::from_millis(1000),
                    "replica 2 still does not know the unit after {:?}",
                    t.elapsed()
                );
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        }
    };
    assert_eq!(c.lead_unit, "360102-QXJ");
    r2.stop().await;
    r1.stop().await;
}
