//! Intake beyond the grid and reporters' personal data: report sources, the 12345 hotline's
//! ticket as its own key, filters by source, and the contact a resident leaves — sealed at
//! rest, shown in full only to those who call back, absent in clear from the database, the
//! logs, the traces, errors and the platform's feed, purged after retention, resealed after a
//! key rotation.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use griddispatch_tests::*;
use proto::v1;
use server::auth::Role;
use sqlx::PgPool;
use tokio_stream::StreamExt as _;
use tonic::Code;

const HOTLINE_CITY: &str = "3601";

/// Everything this test binary's code logs, as JSON lines with each event's spans.
fn captured() -> &'static Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOG.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .json()
            .with_span_list(true)
            .with_current_span(true)
            .with_env_filter("debug,h2=info,hyper=info,tower=info")
            .with_writer(move || Sink(sink.clone()))
            .finish();
        tracing::subscriber::set_global_default(subscriber).expect("one subscriber per binary");
        buf
    })
}

struct Sink(Arc<Mutex<Vec<u8>>>);

impl Write for Sink {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(b);
        Ok(b.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A contact made up for this run: a mobile number, an ID number with a valid check digit,
/// a name and an address no other test uses.
struct Person {
    name: String,
    phone: String,
    id_number: String,
    email: String,
}

fn person() -> Person {
    let n = uuid::Uuid::new_v4().as_u128();
    let phone = format!("139{:08}", n % 100_000_000);
    let body = format!(
        "36010219{:02}0101{:03}",
        60 + (n >> 40) % 40,
        (n >> 20) % 1000
    );
    const WEIGHTS: [u32; 17] = [7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2];
    let sum: u32 = body
        .bytes()
        .zip(WEIGHTS)
        .map(|(d, w)| u32::from(d - b'0') * w)
        .sum();
    let check = b"10X98765432"[(sum % 11) as usize] as char;
    Person {
        name: format!("居民{:x}", (n >> 64) % 0xffff_ffff),
        phone,
        id_number: format!("{body}{check}"),
        email: format!("r{:x}@example.org", n % 0xffff_ffff),
    }
}

impl Person {
    fn wire(&self) -> v1::Reporter {
        v1::Reporter {
            name: self.name.clone(),
            phone: self.phone.clone(),
            id_number: self.id_number.clone(),
            email: self.email.clone(),
            masked: false,
        }
    }

    /// The values that must never appear in clear outside a caller who calls back.
    fn secrets(&self) -> [&str; 4] {
        [&self.name, &self.phone, &self.id_number, &self.email]
    }
}

fn hotline(s: &TestServer) -> v1::reporting_service_client::ReportingServiceClient<Authed> {
    s.reporting_with(TestServer::bearer(Role::Intake, HOTLINE_CITY))
}

fn hotline_report(ticket: &str, title: &str) -> v1::ReportEventRequest {
    let mut r = report(GRID, "0501", title);
    r.idempotency_key.clear();
    r.source = v1::ReportSource::Hotline12345.into();
    r.source_ref = ticket.into();
    r
}

/// The reporter of `case_id` as GetCase shows it to `b`.
async fn reporter_seen_by(s: &TestServer, b: Bearer, case_id: &str) -> Option<v1::Reporter> {
    s.console(b)
        .get_case(v1::GetCaseRequest {
            case_id: case_id.to_owned(),
        })
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap()
        .reporter
}

fn assert_no_secret(what: &str, text: &str, p: &Person) {
    for secret in p.secrets() {
        assert!(
            !text.contains(secret),
            "{what} holds a reporter's value in clear"
        );
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_hotline_ticket_sent_twice_makes_one_case(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let ticket = format!("NC12345-{}", uuid::Uuid::now_v7().simple());
    let sent = hotline_report(&ticket, "路灯不亮");
    let first = hotline(&s)
        .report_event(sent.clone())
        .await
        .unwrap()
        .into_inner();
    let case = first.case.unwrap();
    assert!(!first.replayed);
    assert_eq!(case.source(), v1::ReportSource::Hotline12345);
    assert_eq!(case.source_ref, ticket);
    // the hotline retries with a key of its own: the ticket still names the same case
    let mut again = sent.clone();
    again.idempotency_key = uuid::Uuid::now_v7().to_string();
    let second = hotline(&s).report_event(again).await.unwrap().into_inner();
    assert!(second.replayed);
    assert_eq!(second.case.unwrap().case_id, case.case_id);
    // the same ticket saying something else is refused, and writes nothing
    let other = hotline(&s)
        .report_event(hotline_report(&ticket, "井盖缺失"))
        .await
        .unwrap_err();
    assert_eq!(other.code(), Code::AlreadyExists);
    assert_eq!(s.count("cases").await, 1);

    // a ticket is required, and each source belongs to its callers
    let e = hotline(&s)
        .report_event(hotline_report("", "无单号"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&e), ["source_ref"]);
    let mut claimed = report(GRID, "0501", "冒充热线");
    claimed.source = v1::ReportSource::Hotline12345.into();
    claimed.source_ref = "NC-1".into();
    let e = s.worker(GRID).report_event(claimed).await.unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let e = hotline(&s)
        .report_event(report(GRID, "0501", "未注明来源"))
        .await
        .unwrap_err();
    assert_eq!(e.code(), Code::PermissionDenied);
    let mut unknown = hotline_report("NC-2", "未知来源");
    unknown.source = 99;
    unknown.idempotency_key = uuid::Uuid::now_v7().to_string();
    let e = hotline(&s).report_event(unknown).await.unwrap_err();
    assert_eq!(violated_fields(&e), ["source"]);
    assert_eq!(s.count("cases").await, 1);

    // the hotline follows its own tickets
    let mine = hotline(&s)
        .list_my_reports(v1::ListMyReportsRequest::default())
        .await
        .unwrap()
        .into_inner();
    assert_eq!(mine.cases.len(), 1);
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn consoles_and_indicators_filter_by_source(pool: PgPool) {
    let s = TestServer::start(pool).await;
    s.worker(GRID)
        .report_event(report(GRID, "0501", "网格发现"))
        .await
        .unwrap();
    let mut resident = report(GRID, "0501", "居民反映");
    resident.source = v1::ReportSource::Resident.into();
    hotline(&s).report_event(resident).await.unwrap();
    hotline(&s)
        .report_event(hotline_report("NC-77", "热线转办"))
        .await
        .unwrap();
    let list = |source: v1::ReportSource| {
        let mut c = s.console(TestServer::staff(COUNTY));
        async move {
            c.list_cases(v1::ListCasesRequest {
                region_code: COUNTY.into(),
                source: source.into(),
                ..Default::default()
            })
            .await
            .unwrap()
            .into_inner()
            .cases
        }
    };
    assert_eq!(list(v1::ReportSource::Unspecified).await.len(), 3);
    for (source, title) in [
        (v1::ReportSource::GridWorker, "网格发现"),
        (v1::ReportSource::Resident, "居民反映"),
        (v1::ReportSource::Hotline12345, "热线转办"),
    ] {
        let got = list(source).await;
        assert_eq!(got.len(), 1, "{source:?}");
        assert_eq!(got[0].title, title);
        assert_eq!(got[0].source(), source);
    }
    assert!(list(v1::ReportSource::OtherSystem).await.is_empty());

    let stats = |source: v1::ReportSource| {
        let mut c = s.console(TestServer::staff(COUNTY));
        async move {
            let now = chrono::Utc::now();
            c.get_stats(v1::GetStatsRequest {
                region_code: COUNTY.into(),
                from: Some(proto::convert::timestamp(now - chrono::Duration::hours(1))),
                to: Some(proto::convert::timestamp(now + chrono::Duration::hours(1))),
                source: source.into(),
            })
            .await
            .unwrap()
            .into_inner()
            .total
            .unwrap()
            .reported
        }
    };
    assert_eq!(stats(v1::ReportSource::Unspecified).await, 3);
    assert_eq!(stats(v1::ReportSource::Hotline12345).await, 1);
    assert_eq!(stats(v1::ReportSource::OtherSystem).await, 0);
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_reporters_contact_is_shown_only_to_those_who_call_back(pool: PgPool) {
    let log = captured().clone();
    let s = TestServer::start(pool).await;
    let p = person();
    let mut r = hotline_report("NC-PII-1", "噪音扰民");
    r.reporter = Some(p.wire());
    let case = hotline(&s)
        .report_event(r)
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap();
    // the reply of a report and every list carry no contact at all
    assert!(case.reporter.is_none());

    // a dispatcher and the community's staff call back: in full
    for b in [TestServer::staff(COUNTY), TestServer::staff(COMMUNITY)] {
        let full = reporter_seen_by(&s, b, &case.case_id).await.unwrap();
        assert!(!full.masked);
        assert_eq!(full.phone, p.phone);
        assert_eq!(full.id_number, p.id_number);
        assert_eq!(full.name, p.name);
        assert_eq!(full.email, p.email);
    }
    // the grid worker sees the case and a masked contact
    let masked = reporter_seen_by(
        &s,
        TestServer::bearer(Role::GridWorker, GRID),
        &case.case_id,
    )
    .await
    .unwrap();
    assert!(masked.masked);
    assert_eq!(masked.phone, domain::pii::mask(&p.phone));
    assert_eq!(masked.phone.len(), 11);
    assert_no_secret("the masked contact", &format!("{masked:?}"), &p);

    // a wrong number is refused without repeating it, and writes nothing
    let mut bad = hotline_report("NC-PII-2", "错误号码");
    let mut wrong = p.wire();
    wrong.phone = format!("{}9", p.phone);
    bad.reporter = Some(wrong.clone());
    let e = hotline(&s).report_event(bad).await.unwrap_err();
    assert_eq!(e.code(), Code::InvalidArgument);
    assert_eq!(violated_fields(&e), ["reporter.phone"]);
    assert!(!format!("{e:?}").contains(&wrong.phone));
    assert_no_secret("an error", &format!("{e:?}"), &p);
    assert_eq!(s.count("cases").await, 1);

    // the platform's feed of the case's events
    let mut feed = v1::export_service_client::ExportServiceClient::with_interceptor(
        s.channel.clone(),
        TestServer::bearer(Role::Platform, ""),
    )
    .stream_events(v1::StreamEventsRequest::default())
    .await
    .unwrap()
    .into_inner();
    let mut exported = String::new();
    let mut n = 0;
    while let Ok(Some(Ok(e))) = tokio::time::timeout(Duration::from_secs(2), feed.next()).await {
        exported.push_str(&format!("{e:?}\n"));
        n += 1;
    }
    assert!(n >= 2, "the feed carried {n} events");
    assert!(exported.contains(&case.case_id));
    assert_no_secret("the export feed", &exported, &p);

    // every table, every column, as text
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT tablename::text FROM pg_tables WHERE schemaname = 'public' ORDER BY 1",
    )
    .fetch_all(&s.pool)
    .await
    .unwrap();
    assert!(tables.iter().any(|t| t == "case_contacts"));
    for t in &tables {
        let rows: Vec<String> = sqlx::query_scalar(&format!("SELECT t::text FROM {t} t"))
            .fetch_all(&s.pool)
            .await
            .unwrap();
        assert_no_secret(&format!("table {t}"), &rows.join("\n"), &p);
    }
    s.stop().await;

    // and what the server logged and traced meanwhile
    let text = String::from_utf8_lossy(&log.lock().unwrap()).into_owned();
    assert!(
        text.contains("report filed") && text.contains("reporter's contact shown"),
        "the log capture missed the server's lines"
    );
    assert!(text.contains("\"spans\""), "no span fields captured");
    assert_no_secret("the logs and traces", &text, &p);
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn contacts_are_purged_after_retention_and_resealed_after_rotation(pool: PgPool) {
    let k1 = server::contacts::ContactKeys::new_line("k1");
    let s = TestServer::start_with_contact_keys(pool, &k1).await;
    let p = person();
    let file = |ticket: &str, self_handled: bool| {
        let mut r = hotline_report(ticket, "占道经营");
        r.reporter = Some(p.wire());
        r.self_handled = self_handled;
        let mut c = hotline(&s);
        async move {
            c.report_event(r)
                .await
                .unwrap()
                .into_inner()
                .case
                .unwrap()
                .case_id
        }
    };
    // closed at once (settled on the spot), and one that stays open
    let closed = file("NC-RET-1", true).await;
    let open = file("NC-RET-2", false).await;
    assert_eq!(s.count("case_contacts").await, 2);

    // rotation: k2 seals from now on; k1 still opens what it sealed until the sweep moves it
    let k2 = server::contacts::ContactKeys::new_line("k2");
    let both = Arc::new(server::contacts::ContactKeys::parse(&format!("{k2}\n{k1}")).unwrap());
    let sweeper = server::contacts::Sweeper {
        store: s.store.clone(),
        clock: s.clock.clone(),
        policy: server::contacts::ContactPolicy {
            keys: Some(both),
            retention: chrono::Duration::days(30),
            sweep: Duration::from_secs(3600),
        },
    };
    assert_eq!(sweeper.sweep_once().await.unwrap(), (0, 2));
    assert_eq!(sweeper.sweep_once().await.unwrap(), (0, 0), "nothing left");
    let k2_only = server::contacts::ContactKeys::parse(&k2).unwrap();
    for id in [&closed, &open] {
        let row = s.store.contact(id.parse().unwrap()).await.unwrap().unwrap();
        assert_eq!(row.contact.key_id, "k2");
        assert_eq!(k2_only.open(&row.contact).unwrap().phone, p.phone);
    }

    // retention: 30 days after the closed case last changed, its contact goes; the open
    // case keeps its own (the server's sweep runs every 200 ms here)
    s.advance(chrono::Duration::days(31));
    s.eventually(10, "the closed case's contact purged", || async {
        s.count("case_contacts").await == 1
    })
    .await;
    assert!(
        s.store
            .contact(closed.parse().unwrap())
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.store
            .contact(open.parse().unwrap())
            .await
            .unwrap()
            .is_some()
    );
    assert!(
        reporter_seen_by(&s, TestServer::staff(COUNTY), &closed)
            .await
            .is_none(),
        "purged, not shown"
    );
    s.stop().await;
}
