//! Photos, videos and voice notes: uploaded in chunks, named by their SHA-256, typed by their
//! bytes, bounded in size, referred to by reports (an unknown file refused), and downloaded
//! only by those who may see a case that refers to them.

use griddispatch_tests::*;
use proto::v1;
use server::auth::Role;
use sha2::Digest as _;
use sqlx::PgPool;
use tonic::Code;

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn uploads_are_content_addressed_typed_by_their_bytes_and_bounded(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let worker = || TestServer::bearer(Role::GridWorker, GRID);
    // 600 KiB in three chunks
    let photo = jpeg(42, 600 * 1024);
    let a = s.upload(worker(), &photo).await.unwrap();
    assert_eq!(a.content_hash, hex::encode(sha2::Sha256::digest(&photo)));
    assert_eq!(a.media_type, "image/jpeg");
    assert_eq!(a.size, photo.len() as u64);
    // kept in the object store under its hash
    let stored = s
        .media_dir
        .join("media")
        .join(&a.content_hash[..2])
        .join(&a.content_hash);
    assert_eq!(std::fs::read(&stored).unwrap(), photo);
    // the same bytes again: the same file
    let again = s
        .media(worker())
        .upload(tokio_stream::iter(vec![v1::UploadRequest {
            chunk: photo.clone(),
        }]))
        .await
        .unwrap()
        .into_inner();
    assert!(again.existed);
    assert_eq!(again.attachment.unwrap(), a);
    // a PNG by its signature, whatever a client might call it
    let png = [b"\x89PNG\r\n\x1a\n".as_slice(), &[0u8; 64]].concat();
    assert_eq!(
        s.upload(worker(), &png).await.unwrap().media_type,
        "image/png"
    );

    let before = s.count("media").await;
    for (what, bytes) in [
        ("text", b"just some text, not a photo".to_vec()),
        ("a PDF", [b"%PDF-1.7\n".as_slice(), &[0u8; 64]].concat()),
        ("nothing", Vec::new()),
        ("over the limit", jpeg(1, 1024 * 1024 + 1)),
    ] {
        let e = s.upload(worker(), &bytes).await.unwrap_err();
        assert_eq!(e.code(), Code::InvalidArgument, "{what}: {e:?}");
        assert_eq!(violated_fields(&e), ["chunk"], "{what}");
    }
    assert_eq!(
        s.count("media").await,
        before,
        "nothing refused was recorded"
    );
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_photo_is_downloaded_only_by_those_who_may_see_its_case(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let photo = jpeg(9, 200 * 1024);
    let a = s
        .upload(TestServer::bearer(Role::GridWorker, GRID), &photo)
        .await
        .unwrap();
    let mut r = report(GRID, "0501", "带照片的上报");
    r.attachments = vec![v1::Attachment {
        content_hash: a.content_hash.clone(),
        // what the client says is replaced by what was uploaded
        media_type: "image/png".into(),
        size: 1,
        url: String::new(),
        ..Default::default()
    }];
    let case = s
        .worker(GRID)
        .report_event(r)
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    assert_eq!(case.attachments, vec![a.clone()]);

    // the grid, its community and the county see the case, and so the photo
    for b in [
        TestServer::bearer(Role::GridWorker, GRID),
        TestServer::staff(COMMUNITY),
        TestServer::bearer(Role::Dispatcher, COUNTY),
    ] {
        let (media_type, size, bytes) =
            s.download(b, &case.case_id, &a.content_hash).await.unwrap();
        assert_eq!(media_type, "image/jpeg");
        assert_eq!(size, photo.len() as u64);
        assert_eq!(bytes, photo);
    }
    // another grid, a department not taking part: as if the case did not exist
    for b in [
        TestServer::bearer(Role::GridWorker, OTHER_GRID),
        TestServer::staff("360102-CGJ"),
    ] {
        assert_eq!(
            s.download(b, &case.case_id, &a.content_hash)
                .await
                .unwrap_err(),
            Code::NotFound
        );
    }
    // a file the case does not refer to, even one that exists
    let other = s
        .upload(TestServer::bearer(Role::GridWorker, GRID), &jpeg(10, 100))
        .await
        .unwrap();
    assert_eq!(
        s.download(
            TestServer::bearer(Role::GridWorker, GRID),
            &case.case_id,
            &other.content_hash
        )
        .await
        .unwrap_err(),
        Code::NotFound
    );
    assert_eq!(
        s.download(
            TestServer::bearer(Role::GridWorker, GRID),
            &case.case_id,
            "xyz"
        )
        .await
        .unwrap_err(),
        Code::InvalidArgument
    );
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn gridctl_reports_with_a_photo(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let photo = jpeg(5, 50 * 1024);
    let file = std::env::temp_dir().join(format!("gd-photo-{}.jpg", uuid::Uuid::now_v7()));
    std::fs::write(&file, &photo).unwrap();
    let gridctl = griddispatch_tests::cluster::gridd_binary()
        .parent()
        .unwrap()
        .join("gridctl");
    let out = tokio::process::Command::new(gridctl)
        .args([
            "--server",
            &format!("http://{}", s.addr),
            "report",
            "--grid",
            GRID,
        ])
        .args(["--category", "0501", "--title", "带照片", "--photo"])
        .arg(&file)
        .env("GRIDD_JWT_SECRET", std::str::from_utf8(SECRET).unwrap())
        .output()
        .await
        .expect("gridctl runs");
    let _ = std::fs::remove_file(&file);
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let hash = hex::encode(sha2::Sha256::digest(&photo));
    let attached: i64 = sqlx::query_scalar(
        "SELECT count(*) FROM cases WHERE attachments::text LIKE '%' || $1 || '%'",
    )
    .bind(&hash)
    .fetch_one(&s.pool)
    .await
    .unwrap();
    assert_eq!(attached, 1, "the case refers to the uploaded photo");
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_result_carries_its_after_photos(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let id = s.routed_case(GRID, "0501").await.case_id;
    s.escalation(TestServer::staff(COMMUNITY))
        .accept(v1::AcceptRequest {
            case_id: id.clone(),
            unit_code: COMMUNITY.into(),
            expected_version: 0,
        })
        .await
        .unwrap();
    let submit = |attachments: Vec<v1::Attachment>| {
        let s = &s;
        let id = id.clone();
        async move {
            s.handling(TestServer::staff(COMMUNITY))
                .submit_result(v1::SubmitResultRequest {
                    case_id: id,
                    unit_code: COMMUNITY.into(),
                    note: "已清运，附处置后照片".into(),
                    attachments,
                    ..Default::default()
                })
                .await
        }
    };
    // a photo never uploaded is refused, and the case does not move
    let ghost = v1::Attachment {
        content_hash: "ef".repeat(32),
        media_type: "image/jpeg".into(),
        size: 10,
        url: String::new(),
        ..Default::default()
    };
    let e = submit(vec![ghost]).await.unwrap_err();
    assert_eq!(violated_fields(&e), ["attachments[0].content_hash"]);
    assert_eq!(s.case_row(&id).await.0, "IN_PROGRESS");

    let after = jpeg(99, 30 * 1024);
    let a = s
        .upload(TestServer::staff(COMMUNITY), &after)
        .await
        .unwrap();
    submit(vec![a.clone()]).await.unwrap();
    // the grid that checks the result sees the photo of it
    let (media_type, _, bytes) = s
        .download(
            TestServer::bearer(Role::GridWorker, GRID),
            &id,
            &a.content_hash,
        )
        .await
        .unwrap();
    assert_eq!(media_type, "image/jpeg");
    assert_eq!(bytes, after);
    s.stop().await;
}

/// Where the EXIF fixtures were taken: inside [`GRID`].
const TAKEN_LAT: f64 = 28.6832;
const TAKEN_LON: f64 = 115.8992;

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn photos_go_up_and_down_over_http_with_the_same_rules(pool: PgPool) {
    use griddispatch_tests::plain_http::http;
    let s = TestServer::start(pool).await;
    let worker = TestServer::bearer(Role::GridWorker, GRID).header();
    let auth = |h: &str| vec![("Authorization", h.to_owned())];
    let post = |h: Vec<(&'static str, String)>, body: Vec<u8>| {
        let addr = s.addr;
        async move {
            let h: Vec<(&str, &str)> = h.iter().map(|(k, v)| (*k, v.as_str())).collect();
            http(addr, "POST", "/media", &h, &body).await
        }
    };
    let photo = jpeg_with_exif(1, "2026:12:03 09:30:00", TAKEN_LAT, TAKEN_LON);
    let before = s.count("media").await;

    // no token, a bad one, a role that does not upload: refused in HTTP's terms, nothing kept
    let r = post(vec![], photo.clone()).await;
    assert_eq!(r.status, 401, "{}", r.text());
    assert_eq!(r.json()["code"], "UNAUTHENTICATED");
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    let r = post(auth("Bearer not-a-token"), photo.clone()).await;
    assert_eq!(r.status, 401, "{}", r.text());
    let platform = TestServer::bearer(Role::Platform, "").header();
    let r = post(auth(&platform), photo.clone()).await;
    assert_eq!(r.status, 403, "{}", r.text());
    assert_eq!(r.json()["code"], "PERMISSION_DENIED");
    // not a photo; over the limit
    let r = post(auth(&worker), b"just some text".to_vec()).await;
    assert_eq!(r.status, 400, "{}", r.text());
    assert_eq!(r.json()["code"], "INVALID_ARGUMENT");
    let r = post(auth(&worker), jpeg(1, 1024 * 1024 + 1)).await;
    assert_eq!(r.status, 413, "{}", r.text());
    assert_eq!(r.json()["code"], "INVALID_ARGUMENT");
    assert_eq!(s.count("media").await, before, "nothing refused was kept");

    // a grid worker's photo: its hash, its type from its bytes, its EXIF read
    let r = post(auth(&worker), photo.clone()).await;
    assert_eq!(r.status, 201, "{}", r.text());
    let up = r.json();
    let hash = hex::encode(sha2::Sha256::digest(&photo));
    assert_eq!(up["content_hash"], hash.as_str());
    assert_eq!(up["media_type"], "image/jpeg");
    assert_eq!(up["size"], photo.len());
    assert_eq!(up["existed"], false);
    // 09:30 on the camera's clock, China Standard Time
    assert_eq!(up["taken_at"], "2026-12-03T01:30:00Z");
    assert!((up["taken_location"]["lat"].as_f64().unwrap() - TAKEN_LAT).abs() < 1e-5);
    assert!((up["taken_location"]["lon"].as_f64().unwrap() - TAKEN_LON).abs() < 1e-5);
    let r = post(auth(&worker), photo.clone()).await;
    assert_eq!(r.status, 200, "{}", r.text());
    assert_eq!(r.json()["existed"], true);

    // referred to by a report, downloaded by those who see the case
    let mut rep = report(GRID, "0501", "HTTP 上传的照片");
    rep.attachments = vec![v1::Attachment {
        content_hash: hash.clone(),
        media_type: "image/jpeg".into(),
        size: photo.len() as u64,
        ..Default::default()
    }];
    let case = s
        .worker(GRID)
        .report_event(rep)
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    let path = format!("/media/{}/{hash}", case.case_id);
    for who in [
        worker.clone(),
        TestServer::bearer(Role::Dispatcher, COUNTY).header(),
    ] {
        let r = http(s.addr, "GET", &path, &[("Authorization", &who)], b"").await;
        assert_eq!(r.status, 200, "{}", r.text());
        assert_eq!(r.body, photo);
        assert_eq!(r.header("content-type"), Some("image/jpeg"));
        assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
        assert_eq!(r.header("etag"), Some(format!("\"{hash}\"").as_str()));
    }
    // another grid: as if the case did not exist; no token: who are you
    let other = TestServer::bearer(Role::GridWorker, OTHER_GRID).header();
    let r = http(s.addr, "GET", &path, &[("Authorization", &other)], b"").await;
    assert_eq!(r.status, 404, "{}", r.text());
    assert_eq!(r.json()["code"], "NOT_FOUND");
    let r = http(s.addr, "GET", &path, &[], b"").await;
    assert_eq!(r.status, 401, "{}", r.text());
    // a path of nothing here answers an HTTP client in HTTP's terms; the public listener has
    // no metrics (they have a listener of their own)
    for path in ["/metrics", "/nothing/here"] {
        let r = http(s.addr, "GET", path, &[], b"").await;
        assert_eq!(r.status, 404, "{path}: {}", r.text());
    }
    let bad = format!("/media/{}/xyz", case.case_id);
    let r = http(s.addr, "GET", &bad, &[("Authorization", &worker)], b"").await;
    assert_eq!(r.status, 400, "{}", r.text());
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_photos_exif_time_and_place_stand_beside_the_report(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let worker = || TestServer::bearer(Role::GridWorker, GRID);
    let with = s
        .upload(
            worker(),
            &jpeg_with_exif(2, "2026:12:02 18:05:30", TAKEN_LAT, TAKEN_LON),
        )
        .await
        .unwrap();
    let taken_at = with.taken_at.expect("the EXIF time");
    assert_eq!(
        chrono::DateTime::from_timestamp(taken_at.seconds, 0)
            .unwrap()
            .to_rfc3339(),
        "2026-12-02T10:05:30+00:00"
    );
    let at = with.taken_location.expect("the EXIF point");
    assert!((at.lat - TAKEN_LAT).abs() < 1e-5 && (at.lon - TAKEN_LON).abs() < 1e-5);
    // a photo without EXIF says nothing of itself
    let without = s.upload(worker(), &jpeg(3, 300)).await.unwrap();
    assert!(without.taken_at.is_none() && without.taken_location.is_none());

    let mut rep = report(GRID, "0501", "现场照片");
    rep.attachments = [&with, &without]
        .iter()
        .map(|a| v1::Attachment {
            content_hash: a.content_hash.clone(),
            media_type: a.media_type.clone(),
            size: a.size,
            // a client's own say of when and where is not taken
            taken_location: Some(v1::Location {
                lat: 1.0,
                lon: 2.0,
                crs: v1::Crs::Wgs84.into(),
            }),
            ..Default::default()
        })
        .collect();
    let case = s
        .worker(GRID)
        .report_event(rep)
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    // kept on the case file, beside the report's own time and point
    let file = s.get_case(&case.case_id).await.case.unwrap();
    assert_eq!(file.attachments, vec![with, without]);
    assert!(file.occurred_at.is_some() && file.location.is_some());
    s.stop().await;
}
