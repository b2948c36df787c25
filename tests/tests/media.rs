//! Photos, videos and voice notes: uploaded in chunks, named by their SHA-256, typed by their
//! bytes, bounded in size, referred to by reports (an unknown file refused), and downloaded
//! only by those who may see a case that refers to them.

use griddispatch_tests::*;
use proto::v1;
use server::auth::Role;
use sha2::Digest as _;
use sqlx::PgPool;
use tonic::Code;

async fn download(
    s: &TestServer,
    b: Bearer,
    case_id: &str,
    hash: &str,
) -> Result<(String, u64, Vec<u8>), Code> {
    let mut stream = s
        .media(b)
        .download(v1::DownloadRequest {
            case_id: case_id.into(),
            content_hash: hash.into(),
        })
        .await
        .map_err(|e| e.code())?
        .into_inner();
    let (mut media_type, mut size, mut bytes) = (String::new(), 0, Vec::new());
    while let Some(m) = stream.message().await.map_err(|e| e.code())? {
        if media_type.is_empty() {
            media_type = m.media_type;
            size = m.size;
        }
        bytes.extend_from_slice(&m.chunk);
    }
    Ok((media_type, size, bytes))
}

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
        let (media_type, size, bytes) = download(&s, b, &case.case_id, &a.content_hash)
            .await
            .unwrap();
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
            download(&s, b, &case.case_id, &a.content_hash)
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
        download(
            &s,
            TestServer::bearer(Role::GridWorker, GRID),
            &case.case_id,
            &other.content_hash
        )
        .await
        .unwrap_err(),
        Code::NotFound
    );
    assert_eq!(
        download(
            &s,
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
    let (media_type, _, bytes) = download(
        &s,
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
