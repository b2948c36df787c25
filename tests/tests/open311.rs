//! The Open311 GeoReport v2 facade over real HTTP/1.1 on gridd's listener: every endpoint in
//! JSON and XML, each error in the spec's envelope, keys and their rate, a resident following
//! a request to closure, and no personal field ever echoed back.

use griddispatch_tests::*;
use proto::v1;
use server::auth::Role;
use sqlx::PgPool;

#[path = "open311/client.rs"]
mod client;
#[path = "open311/photos.rs"]
mod photos;

use client::{get, key, post};

/// Where the fixtures report from: inside [`GRID`].
const LAT: &str = "28.6832";
const LON: &str = "115.8992";

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn every_endpoint_answers_in_json_and_xml(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let k = key(&s, "居民小程序", COUNTY).await;

    // discovery
    let d = get(&s, "discovery.json").await.json();
    assert_eq!(
        d["endpoints"][0]["specification"],
        "http://wiki.open311.org/GeoReport_v2"
    );
    assert_eq!(
        d["endpoints"][0]["url"],
        format!("http://{}/open311/v2", s.addr)
    );
    assert_eq!(d["endpoints"][0]["formats"][1], "text/xml");
    let x = get(&s, "discovery.xml").await;
    assert!(x.xml().contains("<discovery><changeset>"), "{}", x.body);
    assert!(
        x.body.contains(
            "<formats><format>application/json</format><format>text/xml</format></formats>"
        ),
        "{}",
        x.body
    );

    // the service list: the categories one may report, grouped by their parents
    let list = get(&s, "services.json").await.json();
    let garbage = list
        .as_array()
        .unwrap()
        .iter()
        .find(|v| v["service_code"] == "0501")
        .unwrap_or_else(|| panic!("{list}"));
    assert_eq!(garbage["metadata"], false);
    assert_eq!(garbage["type"], "realtime");
    assert!(!garbage["group"].as_str().unwrap().is_empty());
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .all(|v| v["service_code"] != "05"),
        "only leaves"
    );
    let x = get(&s, "services.xml").await;
    assert!(
        x.xml().contains("<services><service><service_code>"),
        "{}",
        x.body
    );
    assert!(x.body.contains("<service_code>0501</service_code>"));

    // a service's definition, and one that does not exist
    let def = get(&s, "services/0501.json").await.json();
    assert_eq!(def["service_code"], "0501");
    assert_eq!(def["attributes"], serde_json::json!([]));
    let x = get(&s, "services/0501.xml").await;
    assert!(
        x.xml()
            .contains("<service_definition><service_code>0501</service_code>"),
        "{}",
        x.body
    );
    get(&s, "services/9999.json").await.error(404);
    let x = get(&s, "services/9999.xml").await;
    assert_eq!(x.status, 404);
    assert!(
        x.xml()
            .contains("<errors><error><code>404</code><description>"),
        "{}",
        x.body
    );

    // filing: 201 with the id, a token and a notice; in XML too
    let filed = post(
        &s,
        "json",
        &[
            ("api_key", &k),
            ("service_code", "0501"),
            ("lat", LAT),
            ("long", LON),
            ("description", "小区门口垃圾堆积三天"),
        ],
    )
    .await;
    assert_eq!(filed.status, 201, "{}", filed.body);
    let filed = filed.json();
    let id = filed[0]["service_request_id"].as_str().unwrap().to_owned();
    let token = filed[0]["token"].as_str().unwrap().to_owned();
    assert!(
        filed[0]["service_notice"]
            .as_str()
            .unwrap()
            .contains("360102-")
    );
    let x = post(
        &s,
        "xml",
        &[
            ("api_key", &k),
            ("service_code", "0502"),
            ("lat", LAT),
            ("long", LON),
        ],
    )
    .await;
    assert_eq!(x.status, 201, "{}", x.body);
    assert!(
        x.xml()
            .contains("<service_requests><request><service_request_id>"),
        "{}",
        x.body
    );

    // the token names the request
    let t = get(&s, &format!("tokens/{token}.json?api_key={k}"))
        .await
        .json();
    assert_eq!(t[0]["service_request_id"], id.as_str());
    assert_eq!(t[0]["token"], token.as_str());
    let x = get(&s, &format!("tokens/{token}.xml?api_key={k}")).await;
    assert!(
        x.xml()
            .contains(&format!("<service_request_id>{id}</service_request_id>"))
    );
    get(
        &s,
        &format!("tokens/{}.json?api_key={k}", uuid::Uuid::now_v7()),
    )
    .await
    .error(404);

    // one request, by id
    let one = get(&s, &format!("requests/{id}.json?api_key={k}"))
        .await
        .json();
    let r = &one[0];
    assert_eq!(r["service_request_id"], id.as_str());
    assert_eq!(r["status"], "open");
    assert_eq!(r["service_code"], "0501");
    assert!(!r["service_name"].as_str().unwrap().is_empty());
    assert_eq!(r["description"], "小区门口垃圾堆积三天");
    assert_eq!(r["lat"].as_f64().unwrap(), 28.6832);
    assert!(!r["requested_datetime"].as_str().unwrap().is_empty());
    let x = get(&s, &format!("requests/{id}.xml?api_key={k}")).await;
    assert!(x.xml().contains("<status>open</status>"), "{}", x.body);
    get(
        &s,
        &format!("requests/{}.json?api_key={k}", uuid::Uuid::now_v7()),
    )
    .await
    .error(404);

    // the list and its filters
    let all = get(&s, &format!("requests.json?api_key={k}")).await.json();
    assert_eq!(all.as_array().unwrap().len(), 2, "{all}");
    let by_code = get(&s, &format!("requests.json?api_key={k}&service_code=0502"))
        .await
        .json();
    assert_eq!(by_code.as_array().unwrap().len(), 1);
    assert_eq!(by_code[0]["service_code"], "0502");
    let by_id = get(
        &s,
        &format!("requests.json?api_key={k}&service_request_id={id}&service_code=0502"),
    )
    .await
    .json();
    assert_eq!(by_id.as_array().unwrap().len(), 1, "ids answer alone");
    let closed = get(&s, &format!("requests.json?api_key={k}&status=closed"))
        .await
        .json();
    assert_eq!(closed, serde_json::json!([]));
    let open = get(&s, &format!("requests.json?api_key={k}&status=open"))
        .await
        .json();
    assert_eq!(open.as_array().unwrap().len(), 2);
    let later = get(
        &s,
        &format!("requests.json?api_key={k}&start_date=2099-01-01T00:00:00Z"),
    )
    .await
    .json();
    assert_eq!(later, serde_json::json!([]));
    let x = get(&s, &format!("requests.xml?api_key={k}&status=open")).await;
    assert_eq!(x.xml().matches("<request>").count(), 2, "{}", x.body);

    // a grid worker's case in the same county is not the residents' to read
    s.reporting_with(TestServer::bearer(Role::GridWorker, GRID))
        .report_event(report(GRID, "0501", "网格员发现"))
        .await
        .unwrap();
    let all = get(&s, &format!("requests.json?api_key={k}")).await.json();
    assert_eq!(all.as_array().unwrap().len(), 2);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn each_error_has_the_specs_envelope_and_writes_nothing(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let k = key(&s, "热线网页", COUNTY).await;
    let far_key = key(&s, "邻区小程序", "360103").await;
    let revoked = key(&s, "已停用", COUNTY).await;
    let id = s
        .store
        .list_open311_keys()
        .await
        .unwrap()
        .into_iter()
        .find(|c| c.name == "已停用")
        .unwrap()
        .id;
    assert!(
        s.store
            .revoke_open311_key(id, &store::Actor::system())
            .await
            .unwrap()
    );
    let cases = s.count("cases").await;
    let good = |key: &'static str| -> Vec<(&'static str, String)> {
        vec![
            ("api_key", key.to_owned()),
            ("service_code", "0501".into()),
            ("lat", LAT.into()),
            ("long", LON.into()),
        ]
    };
    let send = |fields: Vec<(&'static str, String)>, fmt: &'static str| {
        let s = &s;
        async move {
            let f: Vec<(&str, &str)> = fields.iter().map(|(a, b)| (*a, b.as_str())).collect();
            post(s, fmt, &f).await
        }
    };
    let without = |field: &str| {
        let mut f = good("");
        f[0].1 = k.clone();
        f.retain(|(n, _)| *n != field);
        f
    };
    let with = |field: &'static str, value: &str| {
        let mut f = without(field);
        f.push((field, value.to_owned()));
        f
    };

    assert!(
        send(without("api_key"), "json")
            .await
            .error(400)
            .contains("api_key")
    );
    let wrong = with("api_key", "o311_not-a-key");
    assert!(send(wrong, "json").await.error(403).contains("api_key"));
    assert!(
        send(with("api_key", &revoked), "json")
            .await
            .error(403)
            .contains("revoked")
    );
    assert!(
        send(without("service_code"), "json")
            .await
            .error(400)
            .contains("service_code")
    );
    assert!(
        send(with("service_code", "9999"), "json")
            .await
            .error(400)
            .contains("service_code")
    );
    let mut no_point = without("lat");
    no_point.retain(|(n, _)| *n != "long");
    no_point.push(("address_string", "八一大道 1 号".into()));
    let e = send(no_point, "json").await.error(400);
    assert!(e.contains("lat/long") && e.contains("not geocoded"), "{e}");
    assert!(
        send(with("lat", "north"), "json")
            .await
            .error(400)
            .contains("lat")
    );
    let far = with("long", "115.80");
    assert!(send(far, "json").await.error(400).contains("lat/long"));
    assert!(
        send(with("media_url", "https://example.org/a.jpg"), "json")
            .await
            .error(400)
            .contains("media_url")
    );
    assert!(
        send(with("phone", "12345"), "json")
            .await
            .error(400)
            .contains("phone")
    );
    // a key for the next county files only there
    let e = send(with("api_key", &far_key), "json").await.error(403);
    assert!(e.contains("outside"), "{e}");
    // the XML envelope
    let x = send(with("service_code", "9999"), "xml").await;
    assert_eq!(x.status, 400);
    assert!(
        x.xml()
            .contains("<errors><error><code>400</code><description>service_code"),
        "{}",
        x.body
    );
    // formats and endpoints
    get(&s, "requests.txt").await.error(404);
    get(&s, "nothing.json").await.error(404);
    get(&s, &format!("requests.json?api_key={k}&status=pending"))
        .await
        .error(400);
    get(
        &s,
        &format!("requests.json?api_key={k}&start_date=yesterday"),
    )
    .await
    .error(400);
    get(
        &s,
        &format!("requests.json?api_key={k}&service_request_id=x"),
    )
    .await
    .error(400);
    get(&s, "requests.json").await.error(400);
    assert_eq!(s.count("cases").await, cases, "no refusal wrote a case");
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_resident_follows_a_request_to_closure_and_sees_no_personal_field(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let k = key(&s, "居民小程序", COUNTY).await;
    let phone = "13912345678";
    let filed = post(
        &s,
        "json",
        &[
            ("api_key", &k),
            ("service_code", "0501"),
            ("lat", LAT),
            ("long", LON),
            ("description", "楼下垃圾没人清，联系我 13912345678"),
            ("first_name", "小明"),
            ("last_name", "王"),
            ("phone", phone),
            ("email", "wang.xm@example.org"),
        ],
    )
    .await;
    assert_eq!(filed.status, 201, "{}", filed.body);
    let id = filed.json()[0]["service_request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let follow = || {
        let (s, k, id) = (&s, k.clone(), id.clone());
        async move {
            let r = get(s, &format!("requests/{id}.json?api_key={k}")).await;
            for secret in [phone, "小明", "wang.xm@example.org", "13912345678"] {
                assert!(!r.body.contains(secret), "{secret} echoed: {}", r.body);
            }
            let x = get(s, &format!("requests/{id}.xml?api_key={k}")).await;
            assert!(!x.body.contains(phone), "{}", x.body);
            r.json()[0].clone()
        }
    };
    s.eventually(10, "the request is routed", || async {
        s.case_row(&id).await.0 == "PENDING_ACCEPT"
    })
    .await;
    let waiting = follow().await;
    assert_eq!(waiting["status"], "open");
    assert!(
        waiting["status_notes"]
            .as_str()
            .unwrap()
            .contains("等待受理"),
        "{waiting}"
    );
    assert!(
        !waiting["expected_datetime"].as_str().unwrap().is_empty(),
        "{waiting}"
    );
    assert_eq!(waiting["agency_responsible"], COMMUNITY);

    s.escalation(TestServer::staff(COMMUNITY))
        .accept(v1::AcceptRequest {
            case_id: id.clone(),
            unit_code: COMMUNITY.into(),
            expected_version: 0,
        })
        .await
        .unwrap();
    let working = follow().await;
    assert!(
        working["status_notes"]
            .as_str()
            .unwrap()
            .contains("正在处理"),
        "{working}"
    );
    assert!(
        working["updated_datetime"].as_str().unwrap()
            >= waiting["updated_datetime"].as_str().unwrap()
    );

    s.handling(TestServer::staff(COMMUNITY))
        .submit_result(v1::SubmitResultRequest {
            case_id: id.clone(),
            unit_code: COMMUNITY.into(),
            note: "已清运".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(
        follow().await["status_notes"]
            .as_str()
            .unwrap()
            .contains("核查")
    );
    s.reporting_with(TestServer::bearer(Role::GridWorker, GRID))
        .verify_case(v1::VerifyCaseRequest {
            case_id: id.clone(),
            passed: true,
            ..Default::default()
        })
        .await
        .unwrap();
    let done = follow().await;
    assert_eq!(done["status"], "closed", "{done}");
    assert!(
        done["status_notes"].as_str().unwrap().contains("已办结"),
        "{done}"
    );
    assert_eq!(done["expected_datetime"], "");
    let closed = get(&s, &format!("requests.json?api_key={k}&status=closed"))
        .await
        .json();
    assert_eq!(closed[0]["service_request_id"], id.as_str());
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn posting_is_limited_per_key(pool: PgPool) {
    let s = TestServer::start_with_call_limits(
        pool,
        server::CallLimits {
            per_sec: 0.5,
            burst: 2.0,
            max_streams: 16,
        },
    )
    .await;
    let noisy = key(&s, "刷单", COUNTY).await;
    let quiet = key(&s, "正常", COUNTY).await;
    let fields = |k: &str| -> Vec<(String, String)> {
        vec![
            ("api_key".into(), k.to_owned()),
            ("service_code".into(), "0501".into()),
            ("lat".into(), LAT.into()),
            ("long".into(), LON.into()),
        ]
    };
    let send = |k: String| {
        let s = &s;
        async move {
            let f = fields(&k);
            let f: Vec<(&str, &str)> = f.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
            post(s, "json", &f).await
        }
    };
    assert_eq!(send(noisy.clone()).await.status, 201);
    assert_eq!(send(noisy.clone()).await.status, 201);
    let over = send(noisy.clone()).await;
    assert!(over.error(429).contains("rate"));
    assert!(over.retry_after.is_some(), "Retry-After is sent");
    assert_eq!(send(quiet).await.status, 201, "another key is not affected");
}
