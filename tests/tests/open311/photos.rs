//! A resident attaches a photo: uploaded to the facade, named in the request by its URL.

use super::client::*;
use super::*;

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_resident_attaches_a_photo_through_media_url(pool: PgPool) {
    use griddispatch_tests::plain_http::http as raw;
    let s = TestServer::start(pool).await;
    let k = key(&s, "居民小程序", COUNTY).await;
    let photo = jpeg(77, 2048);
    let hash = {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(&photo))
    };
    let upload = |fmt: &str, key: &str| {
        let (addr, body) = (s.addr, photo.clone());
        let path = format!("/open311/v2/media.{fmt}?api_key={key}");
        async move { raw(addr, "POST", &path, &[], &body).await }
    };
    // without a key, nothing is taken
    let media_rows = s.count("media").await;
    let r = upload("json", "").await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()[0]["description"]
            .as_str()
            .unwrap()
            .contains("api_key")
    );
    let r = raw(
        s.addr,
        "POST",
        &format!("/open311/v2/media.json?api_key={k}"),
        &[],
        b"not a photo at all",
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert!(
        r.json()[0]["description"]
            .as_str()
            .unwrap()
            .starts_with("media:")
    );
    assert_eq!(s.count("media").await, media_rows);

    // uploaded: the answer names the media_url to send with the request, in JSON and XML
    let r = upload("json", &k).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let media_url = r.json()[0]["media_url"].as_str().unwrap().to_owned();
    assert!(
        media_url.ends_with(&format!("/open311/v2/media/{hash}")),
        "{media_url}"
    );
    let r = upload("xml", &k).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert!(
        r.text()
            .contains(&format!("<content_hash>{hash}</content_hash>")),
        "{}",
        r.text()
    );

    // a media_url elsewhere is not fetched, an unknown one of ours is refused, and so is a
    // file someone else uploaded (a hash names no one else's photo): no case written
    let cases = s.count("cases").await;
    let theirs = s
        .upload(TestServer::bearer(Role::GridWorker, GRID), &jpeg(78, 512))
        .await
        .unwrap()
        .content_hash;
    for url in [
        "https://elsewhere.example/p.jpg".to_owned(),
        format!("http://{}/open311/v2/media/{}", s.addr, "ab".repeat(32)),
        format!("http://{}/open311/v2/media/{theirs}", s.addr),
    ] {
        let d = post(
            &s,
            "json",
            &[
                ("api_key", &k),
                ("service_code", "0501"),
                ("lat", LAT),
                ("long", LON),
                ("media_url", &url),
            ],
        )
        .await
        .error(400);
        assert!(d.starts_with("media_url"), "{d}");
    }
    assert_eq!(s.count("cases").await, cases);

    // a request with its photo: the case carries it, and GET requests answers a media_url
    let filed = post(
        &s,
        "json",
        &[
            ("api_key", &k),
            ("service_code", "0501"),
            ("lat", LAT),
            ("long", LON),
            ("description", "井盖破损"),
            ("media_url", &media_url),
        ],
    )
    .await;
    assert_eq!(filed.status, 201, "{}", filed.body);
    let id = filed.json()[0]["service_request_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let file = s.get_case(&id).await.case.unwrap();
    assert_eq!(file.attachments.len(), 1);
    assert_eq!(file.attachments[0].content_hash, hash);
    let seen = get(&s, &format!("requests/{id}.json?api_key={k}"))
        .await
        .json();
    let shown = seen[0]["media_url"].as_str().unwrap().to_owned();
    assert!(shown.contains(&hash) && shown.contains(&id), "{shown}");

    // the client fetches it with its key; another region's key, or another request, finds none
    let path = shown.split_once(&s.addr.to_string()).unwrap().1.to_owned();
    let r = raw(s.addr, "GET", &format!("{path}&api_key={k}"), &[], b"").await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.body, photo);
    assert_eq!(r.header("content-type"), Some("image/jpeg"));
    let stranger = key(&s, "别的街道", "360102002").await;
    let r = raw(
        s.addr,
        "GET",
        &format!("{path}&api_key={stranger}"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, 404, "{}", r.text());
    let r = raw(
        s.addr,
        "GET",
        &format!("{path}&api_key=o311_nope"),
        &[],
        b"",
    )
    .await;
    assert_eq!(r.status, 403, "{}", r.text());
    s.stop().await;
}
