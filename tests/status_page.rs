//! `/` on the admin listener, loaded in a real browser: headless Chromium
//! (Debian's `chromium`, installed by scripts/test.sh) renders the status
//! page of a proxy that has served and revoked; the rendered text carries
//! version, upstream, store and health, live and pending revocations,
//! outcomes and the last revocations — a subject that looks like markup
//! stays text, no token appears, nothing is loaded from elsewhere. The test
//! leaves a screenshot in `target/tmp/status-page.png`.

mod support;

use std::path::{Path, PathBuf};
use std::time::Duration;
use support::*;

/// The Chromium binary, from PATH.
fn chromium() -> PathBuf {
    for name in ["chromium", "chromium-browser", "google-chrome"] {
        if let Some(found) = std::env::var_os("PATH").and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join(name))
                .find(|p| p.is_file())
        }) {
            return found;
        }
    }
    panic!("Chromium is missing: `apt-get install chromium` (scripts/test.sh does it)");
}

/// Runs headless Chromium on `url` with `args` (bounded: killed after
/// 90 s); its stdout.
async fn browse(profile: &Path, url: &str, args: &[String]) -> String {
    use std::io::Read;
    let mut child = std::process::Command::new(chromium())
        .args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-dev-shm-usage",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-default-apps",
            "--disable-sync",
            "--hide-scrollbars",
            "--window-size=1100,1000",
        ])
        .arg(format!("--user-data-dir={}", profile.display()))
        .args(args)
        .arg(url)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("Chromium runs");
    let mut stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        let mut out = String::new();
        let _ = stdout.read_to_string(&mut out);
        out
    });
    let mut status = None;
    for _ in 0..900 {
        if let Some(s) = child.try_wait().expect("wait") {
            status = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let Some(status) = status else {
        let _ = child.kill();
        let _ = child.wait();
        panic!("Chromium did not finish within 90 s");
    };
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut err);
    }
    assert!(status.success(), "Chromium failed: {err}");
    reader.join().unwrap_or_default()
}

/// The text a reader sees: tags dropped, entities decoded.
fn visible_text(dom: &str) -> String {
    let mut text = String::new();
    let mut in_tag = false;
    for c in dom.chars() {
        match c {
            '<' => in_tag = true,
            '>' if in_tag => {
                in_tag = false;
                text.push(' ');
            }
            c if !in_tag => text.push(c),
            _ => {}
        }
    }
    text.replace("&lt;", "<")
        .replace("&gt;", ">")
        .replace("&quot;", "\"")
        .replace("&#39;", "'")
        .replace("&amp;", "&")
}

#[tokio::test]
async fn the_status_page_renders_in_a_browser_and_shows_no_secret() {
    let up = TestUpstream::start().await;
    let proxy = TestProxy::start(BASIC, &up.url(), &[]).await;
    let admin = proxy.admin.expect("admin listener");
    let carol = hs256(&claims("carol"));
    let sneaky_subject = "<img src=x onerror=alert(1)>";
    let sneaky = hs256(&claims(sneaky_subject));
    assert_eq!(get(proxy.addr, "/api", Some(&carol)).await.status, 200);
    assert_eq!(post(proxy.addr, "/logout", &carol).await.status, 200);
    assert_eq!(get(proxy.addr, "/api", Some(&carol)).await.status, 401);
    assert_eq!(
        post(proxy.addr, "/account/password", &sneaky).await.status,
        200
    );
    assert_eq!(get(proxy.addr, "/api", None).await.status, 401);

    let page = get(admin, "/", None).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        page.header("content-type"),
        Some("text/html; charset=utf-8")
    );
    let csp = page.header("content-security-policy").unwrap_or_default();
    assert!(csp.contains("default-src 'none'"), "{csp}");
    assert_eq!(page.header("cache-control"), Some("no-store"));
    // Self-contained: only these elements, links only to itself, no
    // url() or @import in the style.
    let allowed = [
        "!doctype", "html", "head", "meta", "title", "style", "body", "h1", "h2", "table", "tr",
        "th", "td", "span", "p", "footer", "a",
    ];
    for tag in page.body.split('<').skip(1) {
        let name = tag
            .trim_start_matches('/')
            .split(|c: char| c.is_whitespace() || c == '>')
            .next()
            .unwrap_or_default();
        assert!(
            allowed.contains(&name),
            "<{name}> on the page: {}",
            page.body
        );
        if name == "a" && !tag.starts_with('/') {
            assert!(tag.starts_with("a href=\"/"), "a link elsewhere: <{tag}");
        }
    }
    assert!(!page.body.contains("url(") && !page.body.contains("@import"));
    assert!(
        page.body.contains("http-equiv=\"refresh\""),
        "refreshes itself"
    );

    let profile = tempfile::tempdir().unwrap();
    let url = format!("http://{admin}/");
    let dom = browse(profile.path(), &url, &["--dump-dom".to_string()]).await;
    assert!(dom.contains("<h1>"), "Chromium rendered the page: {dom}");
    assert!(!dom.contains("<img"), "a subject became an element: {dom}");
    let text = visible_text(&dom);
    for want in [
        concat!("revoke-proxy ", env!("CARGO_PKG_VERSION")),
        &up.url(),
        "memory",
        "available",
        "ready",
        "Live revocations",
        "Pending writes",
        "Requests by outcome",
        "revoked",
        "Last revocations",
        "carol",
        sneaky_subject,
        "route",
        "subject",
        "stored",
    ] {
        assert!(text.contains(want), "{want:?} not on the page:\n{text}");
    }
    let count = |label: &str| -> String {
        let at = text
            .find(label)
            .unwrap_or_else(|| panic!("{label}: {text}"));
        text[at + label.len()..]
            .split_whitespace()
            .next()
            .unwrap_or_default()
            .to_string()
    };
    assert_eq!(count("Live revocations"), "3", "token, token and subject");
    assert_eq!(count("Pending writes"), "0");
    for secret in [carol.as_str(), sneaky.as_str(), SECRET] {
        assert!(!dom.contains(secret), "a token or secret on the page");
    }

    let shot = Path::new(env!("CARGO_TARGET_TMPDIR")).join("status-page.png");
    let _ = std::fs::remove_file(&shot);
    browse(
        profile.path(),
        &url,
        &[format!("--screenshot={}", shot.display())],
    )
    .await;
    let png = std::fs::read(&shot).expect("a screenshot");
    assert!(png.starts_with(b"\x89PNG"), "a PNG");
    assert!(
        png.len() > 10_000,
        "more than a blank page: {} bytes",
        png.len()
    );
    println!("screenshot: {}", shot.display());
    proxy.stop().await;
}
