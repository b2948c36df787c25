//! The category picker: each category with the time limits of the caller's county.

use super::*;

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn list_categories_shows_the_local_limits(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let all = s
        .worker(GRID)
        .list_categories(v1::ListCategoriesRequest {
            region_code: String::new(),
        })
        .await
        .unwrap()
        .into_inner()
        .categories;
    assert!(all.len() >= 8);
    assert!(
        all.iter()
            .any(|c| c.code == "05" && c.parent_code.is_empty())
    );
    assert!(
        all.iter()
            .any(|c| c.code == "0501" && c.parent_code == "05")
    );
    let local = s
        .worker(GRID)
        .list_categories(v1::ListCategoriesRequest {
            region_code: GRID.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .categories;
    assert_eq!(local.len(), all.len());
    // the county's own rule for 0503 at the community: a one-minute accept clock
    let policy = community_limits(
        &s.store,
        "0503",
        domain::calendar::TimeLimit::natural(1),
        Some(domain::calendar::TimeLimit::working(90)),
    )
    .await;
    let local: Vec<domain::policy::Category> = s
        .worker(GRID)
        .list_categories(v1::ListCategoriesRequest {
            region_code: GRID.into(),
        })
        .await
        .unwrap()
        .into_inner()
        .categories
        .into_iter()
        .map(|c| proto::convert::category_from_wire(c, "category").unwrap())
        .collect();
    let catalogue: Vec<domain::policy::Category> = all
        .into_iter()
        .map(|c| proto::convert::category_from_wire(c, "category").unwrap())
        .collect();
    // each category shows the limits the county's policy gives its first tier
    for (l, c) in local.iter().zip(&catalogue) {
        assert_eq!(l.code, c.code);
        let route = policy.route(c, None);
        let want = policy.limits(c, route.severity, route.tier);
        assert_eq!(
            (l.accept_limit, l.handle_limit),
            (want.accept, want.handle),
            "{}",
            c.code
        );
    }
    let quick = local.iter().find(|c| c.code.as_str() == "0503").unwrap();
    let plain = catalogue
        .iter()
        .find(|c| c.code.as_str() == "0503")
        .unwrap();
    assert_eq!(quick.accept_limit, domain::calendar::TimeLimit::natural(1));
    assert_eq!(quick.handle_limit, domain::calendar::TimeLimit::working(90));
    assert_ne!(
        (quick.accept_limit, quick.handle_limit),
        (plain.accept_limit, plain.handle_limit),
        "the local limits are the county's, not the catalogue's"
    );
    let err = s
        .worker(GRID)
        .list_categories(v1::ListCategoriesRequest {
            region_code: "12x".into(),
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::InvalidArgument);
    s.stop().await;
}
