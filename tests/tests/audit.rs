//! The audit trail: every change writes its row in its own transaction, gridd's role can only
//! append to it, and `gridctl audit` shows a case's trail.

use griddispatch_tests::*;
use proto::v1;
use server::auth::Role;
use sqlx::PgPool;

/// A pool acting as gridd's serving role on the test's database.
async fn as_gridd(pool: &PgPool) -> PgPool {
    sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(
            store::Store::session_options((*pool.connect_options()).clone(), Some("gridd_app"))
                .unwrap(),
        )
        .await
        .unwrap()
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn gridd_role_only_appends_to_the_audit_trail(pool: PgPool) {
    let gridd = as_gridd(&pool).await;
    let role: String = sqlx::query_scalar("SELECT current_user::text")
        .fetch_one(&gridd)
        .await
        .unwrap();
    assert_eq!(role, "gridd_app");
    sqlx::query(
        "INSERT INTO audit_log (principal, role, action, target, result)
         VALUES ('w1', 'grid_worker', 'report', 'x', 'ok')",
    )
    .execute(&gridd)
    .await
    .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&gridd)
        .await
        .unwrap();
    assert_eq!(n, 1);
    for sql in [
        "UPDATE audit_log SET result = 'changed'",
        "DELETE FROM audit_log",
        "TRUNCATE audit_log",
        "ALTER TABLE audit_log DISABLE TRIGGER audit_log_no_update",
        "DROP TRIGGER audit_log_no_update ON audit_log",
        "DROP TABLE audit_log",
        "ALTER TABLE cases DROP COLUMN status",
        "DROP FUNCTION audit_log_append_only() CASCADE",
    ] {
        let err = sqlx::query(sql).execute(&gridd).await.unwrap_err();
        let code = err
            .as_database_error()
            .and_then(|e| e.code())
            .map(|c| c.to_string());
        // 42501: insufficient privilege (42501 is also "must be owner")
        assert_eq!(code.as_deref(), Some("42501"), "{sql}: {err}");
    }
    // the deployment's login for serving is a member of gridd_app and nothing stronger: it
    // cannot leave the role for the owner's
    let login = format!("gd_serve_{}", uuid::Uuid::now_v7().simple());
    sqlx::query(&format!("CREATE ROLE {login} LOGIN IN ROLE gridd_app"))
        .execute(&pool)
        .await
        .unwrap();
    let serve = sqlx::postgres::PgPoolOptions::new()
        .max_connections(1)
        .connect_with(
            store::Store::session_options(
                (*pool.connect_options()).clone().username(&login),
                Some("gridd_app"),
            )
            .unwrap(),
        )
        .await
        .unwrap();
    for sql in ["RESET ROLE", "SET ROLE postgres"] {
        let _ = sqlx::query(sql).execute(&serve).await;
        let err = sqlx::query("DELETE FROM audit_log")
            .execute(&serve)
            .await
            .unwrap_err();
        assert!(
            err.to_string().contains("permission denied"),
            "{sql}: {err}"
        );
    }
    serve.close().await;
    sqlx::query(&format!("DROP ROLE {login}"))
        .execute(&pool)
        .await
        .unwrap();
    let n: i64 = sqlx::query_scalar("SELECT count(*) FROM audit_log")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(n, 1, "the row is still there");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn every_change_writes_its_audit_row_and_gridctl_shows_a_case_trail(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let case = s.routed_case(GRID, "0501").await;
    s.escalation(TestServer::staff(COMMUNITY))
        .accept(v1::AcceptRequest {
            case_id: case.case_id.clone(),
            unit_code: COMMUNITY.into(),
            expected_version: 0,
        })
        .await
        .unwrap();
    let trail = s.store.audit_trail(&case.case_id).await.unwrap();
    let actions: Vec<(&str, &str, Option<&str>)> = trail
        .iter()
        .map(|r| (r.action.as_str(), r.role.as_str(), r.unit.as_deref()))
        .collect();
    assert_eq!(
        actions,
        [
            ("report", "admin", None),
            ("route", "system", None),
            ("accept", "unit_staff", Some(COMMUNITY)),
        ],
        "{trail:?}"
    );
    assert!(trail.iter().all(|r| r.result == "ok"));
    // a registry change and a policy change, each with its row
    let seed = domain::seed::parse(domain::seed::SAMPLE).unwrap();
    s.routing_with(TestServer::bearer(Role::Admin, COUNTY))
        .upsert_units(v1::UpsertUnitsRequest {
            units: vec![proto::convert::unit_to_wire(
                seed.units.iter().find(|u| u.code.as_str() == GRID).unwrap(),
            )],
        })
        .await
        .unwrap();
    let units = s.store.audit_trail(GRID).await.unwrap();
    assert_eq!(units.len(), 1);
    assert_eq!(
        (units[0].action.as_str(), units[0].unit.as_deref()),
        ("upsert_units", Some(COUNTY))
    );
    let policy = seed.policies[0].clone();
    s.routing_with(TestServer::bearer(Role::Admin, ""))
        .put_policy(v1::PutPolicyRequest {
            policy: Some(proto::convert::policy_to_wire(
                &policy,
                0,
                chrono::Utc::now(),
            )),
        })
        .await
        .unwrap();
    // the seeding's row (system), then the admin's
    let policies = s
        .store
        .audit_trail(&format!("policy:{COUNTY}"))
        .await
        .unwrap();
    let by: Vec<&str> = policies.iter().map(|r| r.role.as_str()).collect();
    assert_eq!(by, ["system", "admin"]);

    // gridctl reads the trail as the operator does
    let db: String = sqlx::query_scalar("SELECT current_database()::text")
        .fetch_one(&s.pool)
        .await
        .unwrap();
    let base = std::env::var("DATABASE_URL").unwrap();
    let url = format!("{}/{db}", base.rsplit_once('/').unwrap().0);
    let gridctl = gridd_binary_dir().join("gridctl");
    let out = std::process::Command::new(gridctl)
        .args(["audit", "--case", &case.case_id, "--database-url", &url])
        .output()
        .expect("gridctl runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("3 rows"), "{text}");
    assert!(
        text.contains("accept") && text.contains(COMMUNITY),
        "{text}"
    );
    s.stop().await;
}

fn gridd_binary_dir() -> std::path::PathBuf {
    griddispatch_tests::cluster::gridd_binary()
        .parent()
        .unwrap()
        .to_path_buf()
}
