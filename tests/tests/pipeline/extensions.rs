//! 延期: a unit asks the tier above for more time, before its deadline.

use proto::convert;

use super::*;

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn extensions_move_the_handling_deadline(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let case = s.routed_case(GRID, "0501").await;
    let id = case.case_id.clone();
    let c = s
        .escalation(TestServer::staff(COMMUNITY))
        .accept(v1::AcceptRequest {
            case_id: id.clone(),
            unit_code: COMMUNITY.into(),
            expected_version: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    let due = c.handle_due_at.unwrap();
    let until = prost_types::Timestamp {
        seconds: due.seconds + 7 * 86_400,
        nanos: 0,
    };
    s.handling(TestServer::staff(COMMUNITY))
        .request_extension(v1::RequestExtensionRequest {
            case_id: id.clone(),
            unit_code: COMMUNITY.into(),
            until: Some(until),
            reason: "等待材料".into(),
            expected_version: 0,
        })
        .await
        .unwrap();
    let c = s
        .handling(TestServer::staff(TOWNSHIP))
        .decide_extension(v1::DecideExtensionRequest {
            case_id: id.clone(),
            unit_code: TOWNSHIP.into(),
            approved: true,
            note: String::new(),
            expected_version: 0,
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(c.handle_due_at.unwrap().seconds, until.seconds);
    let old_due = convert::from_timestamp(&due).unwrap();
    let new_due = convert::from_timestamp(&until).unwrap();
    // the handle clock's deadlines, by the due time they were armed for: (warn, outcome)
    let deadlines = |at: chrono::DateTime<chrono::Utc>| {
        let pool = s.pool.clone();
        let id = id.clone();
        async move {
            sqlx::query_as::<_, (bool, Option<String>)>(
                "SELECT warn, outcome FROM deadlines
                  WHERE case_id = $1::uuid AND clock = 'handle'
                    AND date_trunc('second', clock_due_at) = date_trunc('second', $2::timestamptz)
                  ORDER BY warn DESC",
            )
            .bind(id)
            .bind(at)
            .fetch_all(&pool)
            .await
            .unwrap()
        }
    };
    assert_eq!(
        deadlines(old_due).await.len(),
        2,
        "the old clock's warning and deadline"
    );
    assert_eq!(
        deadlines(new_due).await.len(),
        2,
        "the new clock's warning and deadline"
    );
    // the old deadline passes: it fires as a no-op, and the case is not overdue
    s.advance(chrono::Duration::seconds(
        due.seconds - chrono::Utc::now().timestamp() + 3600,
    ));
    s.eventually(10, "the old deadlines retired as stale", || async {
        deadlines(old_due)
            .await
            .iter()
            .all(|(_, o)| o.as_deref() == Some("stale"))
    })
    .await;
    assert!(!s.get_case(&id).await.case.unwrap().overdue);
    assert!(
        deadlines(new_due).await.iter().all(|(_, o)| o.is_none()),
        "the new deadline has not fired early"
    );
    // the new one passes: the case is overdue, and not before its time
    s.advance(chrono::Duration::seconds(until.seconds - due.seconds + 60));
    s.eventually(10, "overdue on the new clock", || async {
        s.get_case(&id).await.case.unwrap().overdue
    })
    .await;
    assert_eq!(
        deadlines(new_due).await,
        [
            (true, Some("warned".to_owned())),
            (false, Some("overdue".to_owned()))
        ]
    );
    let file = s.get_case(&id).await;
    let overdue = file
        .events
        .iter()
        .find(|e| e.event_type == "overdue")
        .unwrap();
    assert!(convert::from_timestamp(overdue.recorded_at.as_ref().unwrap()).unwrap() >= new_due);
    s.stop().await;
}
