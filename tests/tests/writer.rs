//! The case writer has one path: the same plan applied one case at a time (`append`, as a
//! command does) and to every case in one batch (`append_many`, as the router does) leaves the
//! same rows in every table a case touches.

use chrono::{DateTime, Duration, TimeZone, Utc};
use domain::case::{Clock, Event};
use domain::record::CaseRecord;
use domain::region::{RegionCode, UnitCode};
use griddispatch_tests::*;
use sqlx::PgPool;
use store::{Actor, Append, Arm, BatchItem, Store};
use uuid::Uuid;

fn unit(code: &str) -> UnitCode {
    UnitCode::parse(code).unwrap()
}

fn report(title: &str, at: DateTime<Utc>) -> BatchItem {
    BatchItem {
        report: domain::report::NewReport {
            idempotency_key: Uuid::now_v7(),
            grid: RegionCode::parse(GRID).unwrap(),
            category: domain::policy::CategoryCode::parse("0501").unwrap(),
            severity: None,
            title: title.into(),
            description: "路口暴露垃圾".into(),
            location: domain::geo::LatLon {
                lat: 28.68,
                lon: 115.89,
            },
            reported_crs: domain::geo::Crs::Wgs84,
            occurred_at: at,
            self_handled: false,
            attachments: vec![],
            source: Default::default(),
            reporter: None,
        },
        severity: domain::Severity::General,
        actor: Actor {
            subject: "grid-worker".into(),
            role: "grid_worker".into(),
            unit: Some("360102001001001".into()),
        },
        trace: Default::default(),
        contact: None,
        repeat: None,
        spot_reports: 1,
    }
}

/// The steps every case goes through: routed to its community, accepted, sent to a lead with
/// two assisting units, accepted by all three, parts in, the result submitted. Each step's events, the
/// timers it arms and the queue entries it sends.
fn steps(at: DateTime<Utc>) -> Vec<(Vec<Event>, Vec<Arm>, Vec<queue::Message>)> {
    let community = unit(COMMUNITY);
    let due = at + Duration::minutes(30);
    let arm = |u: &UnitCode, clock| Arm {
        unit: u.clone(),
        clock,
        warn: false,
        fire_at: due,
        clock_due_at: due,
    };
    vec![
        (
            vec![Event::Routed {
                unit: community.clone(),
                tier: domain::Tier::Community,
                accept_due_at: due,
                reason: "grid's community".into(),
                admitted: true,
            }],
            vec![arm(&community, Clock::Accept)],
            vec![],
        ),
        (
            vec![Event::Accepted {
                unit: community.clone(),
                handle_due_at: due,
            }],
            vec![arm(&community, Clock::Handle)],
            vec![],
        ),
        (
            vec![Event::Dispatched {
                unit: community.clone(),
                lead: unit("360102-CGJ"),
                lead_tier: domain::Tier::County,
                assisting: vec![unit("360102-ZJJ"), unit("360102-GAFJ")],
                accept_due_at: due,
                note: "聯合處置".into(),
            }],
            vec![arm(&unit("360102-CGJ"), Clock::Accept)],
            vec![],
        ),
        (
            vec![
                Event::Accepted {
                    unit: unit("360102-CGJ"),
                    handle_due_at: due,
                },
                Event::Accepted {
                    unit: unit("360102-ZJJ"),
                    handle_due_at: due,
                },
                Event::PartSubmitted {
                    photos: Vec::new(),
                    unit: unit("360102-ZJJ"),
                    note: "已清運".into(),
                },
                Event::Accepted {
                    unit: unit("360102-GAFJ"),
                    handle_due_at: due,
                },
            ],
            vec![],
            vec![],
        ),
        (
            vec![
                Event::PartSubmitted {
                    photos: Vec::new(),
                    unit: unit("360102-GAFJ"),
                    note: "已疏導".into(),
                },
                Event::ResultSubmitted {
                    photos: Vec::new(),
                    unit: unit("360102-CGJ"),
                    note: "處置完畢".into(),
                },
            ],
            vec![],
            vec![],
        ),
    ]
}

/// Files `n` reports and answers their cases, oldest first.
async fn file(store: &Store, n: usize, at: DateTime<Utc>) -> Vec<CaseRecord> {
    let items: Vec<BatchItem> = (0..n).map(|i| report(&format!("案{i}"), at)).collect();
    store
        .report_batch(&items, at, &mut |_: &CaseRecord| None)
        .await
        .into_iter()
        .map(|r| r.unwrap().case)
        .collect()
}

/// Applies step `i` to `recs`, one transaction per case or one for all.
async fn apply(store: &Store, recs: &mut [CaseRecord], i: usize, at: DateTime<Utc>, batch: bool) {
    let (events, arms, outbox) = &steps(at)[i];
    let actor = Actor::system();
    let afters: Vec<_> = recs
        .iter()
        .map(|r| {
            events
                .iter()
                .try_fold(r.state.clone(), |s, e| s.apply(e, at))
                .unwrap()
        })
        .collect();
    let item = |before, after| Append {
        before,
        after,
        events,
        arms,
        outbox,
        actor: &actor,
        // step 0 is what the router does, and is audited as such
        action: if i == 0 { "route" } else { "step" },
    };
    let out = if batch {
        let mut tx = store.begin().await.unwrap();
        let items: Vec<Append<'_>> = recs.iter().zip(afters).map(|(r, a)| item(r, a)).collect();
        let out = tx.append_many(&items, at).await.unwrap();
        tx.commit().await.unwrap();
        out
    } else {
        let mut out = Vec::new();
        for (r, a) in recs.iter().zip(afters) {
            let mut tx = store.begin().await.unwrap();
            out.push(tx.append(item(r, a), at).await.unwrap());
            tx.commit().await.unwrap();
        }
        out
    };
    recs.clone_from_slice(&out);
}

/// Every row of the tables a case touches, for the cases of `recs` numbered by their place:
/// ids, sequence numbers and case numbers differ between two sets of cases, nothing else may.
async fn rows(pool: &PgPool, recs: &[CaseRecord]) -> Vec<String> {
    let ids: Vec<Uuid> = recs.iter().map(|r| r.case_id.uuid()).collect();
    let tables = [
        "SELECT c.case_id, to_jsonb(c) - 'case_id' - 'case_number' - 'title' FROM cases c
          WHERE case_id = ANY($1)",
        "SELECT case_id, to_jsonb(e) - 'case_id' - 'seq' - 'txid' FROM case_events e
          WHERE case_id = ANY($1) ORDER BY seq",
        "SELECT case_id, to_jsonb(a) - 'case_id' - 'assignment_id' FROM assignments a
          WHERE case_id = ANY($1) ORDER BY unit_code, role, created_at",
        "SELECT case_id, to_jsonb(d) - 'case_id' - 'id' FROM deadlines d
          WHERE case_id = ANY($1) ORDER BY id",
        "SELECT target::uuid, to_jsonb(a) - 'id' - 'target' FROM audit_log a
          WHERE target = ANY($1::uuid[]::text[]) ORDER BY id",
    ];
    let mut out = Vec::new();
    for (n, sql) in tables.iter().enumerate() {
        let got: Vec<(Uuid, serde_json::Value)> = sqlx::query_as(sql)
            .bind(&ids)
            .fetch_all(pool)
            .await
            .unwrap();
        let mut lines: Vec<String> = got
            .into_iter()
            .map(|(id, row)| {
                let place = ids.iter().position(|i| *i == id).unwrap();
                let row = row.to_string().replace(&id.to_string(), "<case>");
                format!("{n} case{place} {row}")
            })
            .collect();
        lines.sort();
        out.extend(lines);
    }
    out
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn one_case_at_a_time_and_a_batch_write_the_same_rows(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    seed_sample(&store).await;
    let at = Utc.with_ymd_and_hms(2026, 12, 2, 2, 0, 0).unwrap();
    let mut single = file(&store, 4, at).await;
    let mut batch = file(&store, 4, at).await;
    for i in 0..steps(at).len() {
        let at = at + Duration::minutes(i as i64 + 1);
        apply(&store, &mut single, i, at, false).await;
        apply(&store, &mut batch, i, at, true).await;
        assert_eq!(
            single.iter().map(|r| &r.state).collect::<Vec<_>>(),
            batch.iter().map(|r| &r.state).collect::<Vec<_>>(),
            "step {i}: the cases the writer answers"
        );
    }
    let (one, many) = (rows(&pool, &single).await, rows(&pool, &batch).await);
    assert!(one.len() > 4 * 10, "every table has rows: {}", one.len());
    for (a, b) in one.iter().zip(&many) {
        assert_eq!(a, b);
    }
    assert_eq!(one.len(), many.len());
    // and what was stored reads back as the case the writer answered
    for r in single.iter().chain(&batch) {
        let stored = store.get_case(r.case_id).await.unwrap().unwrap();
        assert_eq!(stored.state, r.state);
        assert_eq!(stored.updated_at, r.updated_at);
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_case_routed_in_its_report_transaction_has_the_rows_the_router_writes(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    seed_sample(&store).await;
    let at = Utc.with_ymd_and_hms(2026, 12, 2, 2, 0, 0).unwrap();
    // the router's way: filed, then routed by a second transaction
    let mut later = file(&store, 4, at).await;
    apply(&store, &mut later, 0, at, true).await;
    // the report writer's way: routed in the report's own transaction
    let (events, arms, outbox) = steps(at).swap_remove(0);
    let mut route = |rec: &CaseRecord| {
        Some(store::Routed {
            state: events
                .iter()
                .try_fold(rec.state.clone(), |s, e| s.apply(e, at))
                .unwrap(),
            events: events.clone(),
            arms: arms.clone(),
            outbox: outbox.clone(),
        })
    };
    let items: Vec<BatchItem> = (0..4).map(|i| report(&format!("案{i}"), at)).collect();
    let at_once: Vec<CaseRecord> = store
        .report_batch(&items, at, &mut route)
        .await
        .into_iter()
        .map(|r| r.unwrap().case)
        .collect();
    assert_eq!(
        later.iter().map(|r| &r.state).collect::<Vec<_>>(),
        at_once.iter().map(|r| &r.state).collect::<Vec<_>>()
    );
    let (two, one) = (rows(&pool, &later).await, rows(&pool, &at_once).await);
    assert!(two.iter().any(|r| r.starts_with("2 ")), "assignments");
    assert!(two.iter().any(|r| r.starts_with("3 ")), "deadlines");
    for (a, b) in two.iter().zip(&one) {
        assert_eq!(a, b);
    }
    assert_eq!(two.len(), one.len());
}

/// A claim answers when the next deadline falls due in the same statement, whether it took
/// any or not, and neither takes nor sleeps to the ones another claim holds.
#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_claim_answers_the_next_due_time_whether_or_not_anything_is_due(pool: PgPool) {
    let store = Store::from_pool(pool.clone());
    seed_sample(&store).await;
    let at = Utc.with_ymd_and_hms(2026, 12, 2, 2, 0, 0).unwrap();
    let case = file(&store, 1, at).await.remove(0);
    let s = |n: i64| at + Duration::seconds(n);
    for n in [10, 20, 30] {
        sqlx::query(
            "INSERT INTO deadlines (case_id, unit_code, clock, warn, fire_at, clock_due_at, armed_at)
             VALUES ($1, '360102', 'accept', false, $2, $2, $3)",
        )
        .bind(case.case_id.uuid())
        .bind(s(n))
        .bind(at)
        .execute(&pool)
        .await
        .unwrap();
    }
    let taken = |c: &store::Claim| c.due.iter().map(|d| d.fire_at).collect::<Vec<_>>();
    // nothing due yet: the claim still says when to look again
    let mut idle = store.begin().await.unwrap();
    let c = idle.claim_due(at, 200).await.unwrap();
    assert_eq!((taken(&c), c.next), (vec![], Some(s(10))));
    drop(idle);
    // one due, held by this transaction until it ends
    let mut first = store.begin().await.unwrap();
    let c = first.claim_due(s(15), 200).await.unwrap();
    assert_eq!((taken(&c), c.next), (vec![s(10)], Some(s(20))));
    // a second claim at the same moment takes nothing and sleeps past the held one
    let mut second = store.begin().await.unwrap();
    let c = second.claim_due(s(15), 200).await.unwrap();
    assert_eq!((taken(&c), c.next), (vec![], Some(s(20))));
    // later it takes what is due and free; with nothing armed after, no next
    let c = second.claim_due(s(25), 200).await.unwrap();
    assert_eq!((taken(&c), c.next), (vec![s(20)], Some(s(30))));
    let mut third = store.begin().await.unwrap();
    let c = third.claim_due(s(40), 200).await.unwrap();
    assert_eq!((taken(&c), c.next), (vec![s(30)], None));
}
