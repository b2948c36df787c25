//! The command-centre board in a browser (ADR 0040): gridd serves the page; Debian's headless
//! `chromium`, driven over WebDriver by Debian's `chromedriver` (through `fantoccini`), signs in
//! with a county dispatcher's token, sees a case reported through the API arrive live, opens it
//! with its photo, dispatches it to a lead and an assisting department from the page, and sees
//! the case change. Screenshots at a wall's size (1920×1080) and a desk's (1280×800) are saved
//! into `docs/img/`. `./scripts/test` installs Chromium when it is missing.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder, Locator};
use griddispatch_tests::plain_http::http;
use griddispatch_tests::*;
use proto::v1;
use server::auth::{Role, mint_hs256};
use sqlx::PgPool;

const CHROMIUM: &str = "/usr/bin/chromium";
const CHROMEDRIVER: &str = "/usr/bin/chromedriver";
const TOWNSHIP: &str = "360102001";
const LEAD: &str = "360102-CGJ";
const HELP: &str = "360102-ZJJ";
const WAIT: Duration = Duration::from_secs(20);

/// A headless Chromium of its own (its own profile, its own chromedriver), quit when dropped.
struct Browser {
    client: Option<Client>,
    _driver: tokio::process::Child,
    profile: PathBuf,
}

impl Browser {
    async fn start() -> Browser {
        for bin in [CHROMIUM, CHROMEDRIVER] {
            assert!(
                Path::new(bin).exists(),
                "{bin} is missing: ./scripts/test installs Debian's chromium and chromium-driver"
            );
        }
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let driver = tokio::process::Command::new(CHROMEDRIVER)
            .arg(format!("--port={port}"))
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("chromedriver starts");
        let profile = std::env::temp_dir().join(format!("gd-board-{}", uuid::Uuid::now_v7()));
        // as root, without a GPU, and without Chromium's own calls to the outside (this network
        // is closed: they would fail, many at a time)
        let serde_json::Value::Object(caps) = serde_json::json!({
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                    "--disable-quic", "--no-first-run", "--disable-background-networking",
                    "--disable-component-update", "--disable-sync", "--disable-extensions",
                    "--force-device-scale-factor=1", "--lang=zh-CN", "--window-size=1920,1080",
                    format!("--user-data-dir={}", profile.display()),
                ],
            }
        }) else {
            unreachable!()
        };
        let url = format!("http://127.0.0.1:{port}");
        let started = Instant::now();
        let client = loop {
            let connector = hyper_util::client::legacy::connect::HttpConnector::new();
            match ClientBuilder::new(connector)
                .capabilities(caps.clone())
                .connect(&url)
                .await
            {
                Ok(c) => break c,
                Err(e) if started.elapsed() > WAIT => panic!("no browser session: {e}"),
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        };
        Browser {
            client: Some(client),
            _driver: driver,
            profile,
        }
    }

    fn c(&self) -> &Client {
        self.client.as_ref().unwrap()
    }

    async fn wait_for(&self, css: &str) -> fantoccini::elements::Element {
        match self
            .c()
            .wait()
            .at_most(WAIT)
            .for_element(Locator::Css(css))
            .await
        {
            Ok(e) => e,
            Err(e) => panic!("the page never showed {css}: {e}"),
        }
    }

    async fn click(&self, css: &str) {
        let e = self.c().find(Locator::Css(css)).await;
        e.unwrap_or_else(|e| panic!("no {css}: {e}"))
            .click()
            .await
            .unwrap_or_else(|e| panic!("{css} cannot be clicked: {e}"));
    }

    async fn fill(&self, css: &str, text: &str) {
        let e = self.c().find(Locator::Css(css)).await;
        e.unwrap_or_else(|e| panic!("no {css}: {e}"))
            .send_keys(text)
            .await
            .unwrap();
    }

    /// Waits until the element's text holds `want`.
    async fn wait_text(&self, css: &str, want: &str) {
        self.wait_until(css, want, |text| text.contains(want)).await;
    }

    /// Waits until the element's text is exactly `want` (a count).
    async fn wait_exact(&self, css: &str, want: &str) {
        self.wait_until(css, want, |text| text.trim() == want).await;
    }

    async fn wait_until(&self, css: &str, want: &str, ok: impl Fn(&str) -> bool) {
        let started = Instant::now();
        loop {
            let text = match self.c().find(Locator::Css(css)).await {
                Ok(e) => e.text().await.unwrap_or_default(),
                Err(_) => String::new(),
            };
            if ok(&text) {
                return;
            }
            assert!(
                started.elapsed() < WAIT,
                "{css} never said {want:?} (it says {text:?})"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Saves what the page shows in a viewport of `width`×`height` (the window is that much
    /// bigger than its viewport) into `docs/img/`.
    async fn screenshot(&self, width: u32, height: u32, name: &str) -> PathBuf {
        let c = self.c();
        c.set_window_size(width, height).await.unwrap();
        let inner = c
            .execute("return [window.innerWidth, window.innerHeight]", vec![])
            .await
            .unwrap();
        let (w, h) = (inner[0].as_u64().unwrap(), inner[1].as_u64().unwrap());
        let grow = |want: u32, got: u64| want + want.saturating_sub(u32::try_from(got).unwrap());
        c.set_window_size(grow(width, w), grow(height, h))
            .await
            .unwrap();
        // let the layout settle at the new size
        tokio::time::sleep(Duration::from_millis(400)).await;
        let png = self.c().screenshot().await.unwrap();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/img");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, png).unwrap();
        path
    }

    async fn quit(mut self) {
        if let Some(c) = self.client.take() {
            c.close().await.unwrap();
        }
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        // a failed test leaves no browser behind: its processes are the ones with its profile
        let _ = std::process::Command::new("pkill")
            .args(["-KILL", "-f", &self.profile.display().to_string()])
            .status();
        // a killed browser's last writes land before its profile goes
        std::thread::sleep(Duration::from_millis(200));
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}

/// A morning's cases across the county, so that the board has queues, lights and a map.
async fn morning(s: &TestServer) {
    let grids: Vec<String> =
        sqlx::query_scalar("SELECT code FROM units WHERE kind = 'GRID' ORDER BY code")
            .fetch_all(&s.pool)
            .await
            .unwrap();
    let kinds = [
        ("0501", "小区门口垃圾堆放未清运"),
        ("0604", "消防通道车辆乱停放"),
        ("0303", "夜间施工噪声扰民"),
        ("0504", "路面污水外溢"),
        ("0603", "早市占道经营"),
        ("0201", "楼道堆放杂物堵塞消防通道"),
        ("0103", "物业与业主停车费纠纷"),
    ];
    let mut reporting = s.admin_reporting();
    for i in 0..36 {
        let (category, title) = kinds[i % kinds.len()];
        let grid = &grids[(i * 37) % grids.len()];
        reporting
            .report_event(report(grid, category, title))
            .await
            .unwrap();
    }
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn a_dispatcher_sees_a_case_arrive_live_and_dispatches_it_from_the_board(pool: PgPool) {
    let s = TestServer::start(pool).await;
    morning(&s).await;
    // the command centre's duty roster: the board says who is on duty now
    let duty = proto::convert::roster_from_wire(roster(COUNTY)).unwrap();
    s.store
        .put_roster(&duty, &store::Actor::system())
        .await
        .unwrap();
    let b = Browser::start().await;
    let c = b.c();

    // sign in with a county dispatcher's token; the page keeps it in memory only
    c.goto(&format!("http://{}/board/?lang=zh", s.addr))
        .await
        .unwrap();
    b.wait_for("#sign-in:not([disabled])").await;
    let token = mint_hs256(SECRET, "dispatcher@360102", Role::Dispatcher, COUNTY, 600).unwrap();
    b.fill("#token", &token).await;
    b.click("#sign-in").await;
    b.wait_for("#status.live-ok").await;
    b.wait_for("#case-table tr.case").await;
    b.wait_for("#map path.grid.heat-1").await;
    b.wait_text("#duty", "当前值班: 值班员S0").await;
    let kept = c
        .execute(
            "return [localStorage.length, sessionStorage.length, document.cookie]",
            vec![],
        )
        .await
        .unwrap();
    assert_eq!(
        kept,
        serde_json::json!([0, 0, ""]),
        "nothing kept in the page's storage"
    );

    // a grid worker reports a street lamp with a photo; community and township call it up
    let worker = TestServer::bearer(Role::GridWorker, GRID);
    let photo = include_bytes!("../support/media/street-lamp.png");
    let attachment = s.upload(worker.clone(), photo).await.unwrap();
    let mut lamp = report(GRID, "0204", "路口路灯损坏，夜间通行有隐患");
    lamp.attachments = vec![attachment];
    let id = s
        .reporting_with(worker)
        .report_event(lamp)
        .await
        .unwrap()
        .into_inner()
        .case
        .unwrap()
        .case_id;
    s.eventually(10, "the case is routed", || async {
        s.case_row(&id).await.0 == "PENDING_ACCEPT"
    })
    .await;
    // it appears live, at its community, before anyone touches the page
    b.wait_for(&format!("#live-list li.ev-routed[data-case='{id}']"))
        .await;
    b.wait_for(&format!("#case-table tr[data-case='{id}']"))
        .await;
    for (unit, reason) in [
        (COMMUNITY, "路灯产权不明，需街道协调"),
        (TOWNSHIP, "需区城管局牵头处置"),
    ] {
        s.escalation(TestServer::staff(unit))
            .call_up(v1::CallUpRequest {
                case_id: id.clone(),
                unit_code: unit.into(),
                reason: reason.into(),
                expected_version: 0,
            })
            .await
            .unwrap();
    }
    b.wait_for(&format!("#live-list li.ev-called_up[data-case='{id}']"))
        .await;
    b.wait_exact(".queue[data-tier='4'] .q-count", "1").await;

    // the dispatcher opens it: events, assignments, the photo, and the dispatch form
    b.click(&format!("#case-table tr[data-case='{id}']")).await;
    b.wait_for(&format!("#case-file[data-case='{id}'] #dispatch-lead"))
        .await;
    b.wait_for("#case-file .photos img").await;
    b.wait_text("#case-file .events", "呼叫上级").await;
    // how many reported it (one: the county keeps no repeat rule here)
    b.wait_exact("#case-reports", "1").await;
    c.find(Locator::Id("dispatch-lead"))
        .await
        .unwrap()
        .select_by_value(LEAD)
        .await
        .unwrap();
    b.click(&format!("#dispatch-assisting input[value='{HELP}']"))
        .await;
    b.fill("#dispatch-note", "城管局牵头，住建局配合").await;
    b.click("#dispatch-submit").await;

    // the page shows the change, live and in the case file
    b.wait_text("#case-message", "已派遣").await;
    b.wait_for(&format!("#live-list li.ev-dispatched[data-case='{id}']"))
        .await;
    b.wait_text("#case-lead", "城市管理").await;
    // out of the county's queue, into its lead department's
    b.wait_exact(".queue[data-tier='dept'] .q-count", "1").await;
    b.wait_exact(".queue[data-tier='4'] .q-count", "0").await;
    // and the record says the same: the county dispatched it to the lead and its helper
    let r = s.get_case(&id).await;
    let case = r.case.unwrap();
    assert_eq!(case.lead_unit, LEAD);
    assert_eq!(case.assisting_units, vec![HELP.to_owned()]);
    let last = r.events.last().unwrap();
    assert_eq!(
        (last.event_type.as_str(), last.actor_unit.as_str()),
        ("dispatched", COUNTY)
    );

    // today's indicators of the lamp's township count it among its reports
    b.wait_for(&format!("#indicators tr[data-unit='{TOWNSHIP}']"))
        .await;
    // a wall in Chinese with the case file closed; a desk in English with it open
    b.click("#case-file button.close").await;
    let wall = b.screenshot(1920, 1080, "board-1920x1080.png").await;
    b.click("#lang").await;
    b.wait_text("#board h2", "Waiting to be accepted").await;
    b.click(&format!("#case-table tr[data-case='{id}']")).await;
    b.wait_for("#case-file .photos img").await;
    b.wait_text("#case-file .events", "dispatched").await;
    let desk = b.screenshot(1280, 800, "board-1280x800-case.png").await;
    b.click("#case-file button.close").await;
    let overview = b.screenshot(1280, 800, "board-1280x800.png").await;
    for p in [&wall, &desk, &overview] {
        let png = std::fs::read(p).unwrap();
        assert!(png.starts_with(b"\x89PNG"), "{} is a PNG", p.display());
    }
    println!(
        "screenshots: {} {} {}",
        wall.display(),
        overview.display(),
        desk.display()
    );
    b.quit().await;
    s.stop().await;
}

#[sqlx::test(migrator = "store::MIGRATOR")]
async fn the_page_is_served_whole_from_gridd_under_a_strict_policy(pool: PgPool) {
    let s = TestServer::start(pool).await;
    let get = |path: &'static str| http(s.addr, "GET", path, &[], b"");
    let moved = get("/board").await;
    assert_eq!(
        (moved.status, moved.header("location")),
        (308, Some("/board/"))
    );
    let page = get("/board/").await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap();
    for rule in [
        "default-src 'none'",
        "script-src 'self'",
        "connect-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(csp.contains(rule), "{csp} lacks {rule}");
    }
    assert_eq!(page.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(page.header("x-frame-options"), Some("DENY"));
    // every asset from gridd itself: nothing names another server (the SVG namespace is a
    // name, not a download)
    for path in [
        "/board/",
        "/board/board.css",
        "/board/board.js",
        "/board/views.js",
        "/board/api.js",
        "/board/i18n.js",
    ] {
        let r = get(path).await;
        assert_eq!(r.status, 200, "{path}");
        let text = r.text().replace("http://www.w3.org/2000/svg", "");
        assert!(
            !text.contains("http://") && !text.contains("https://"),
            "{path} names another server"
        );
    }
    let schema = get("/board/schema.json").await.json();
    assert!(schema["messages"]["griddispatch.v1.CaseChange"].is_array());
    // nothing else under /board, and no neighbour of it, is served without a token
    assert_eq!(get("/board/secret.json").await.status, 404);
    let next_door = get("/boardroom").await;
    assert_ne!(next_door.status, 200);
    s.stop().await;
}
