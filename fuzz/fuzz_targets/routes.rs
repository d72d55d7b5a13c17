//! Path normalization and route matching: normalizing is idempotent, the
//! result is a plain absolute path, and matching never panics.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revoke_proxy::config::{Action, RouteSettings, StatusMatch};
use revoke_proxy::routes::{normalize, RouteTable};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let (method, path) = text.split_once(' ').unwrap_or(("GET", text));
    let Ok(n) = normalize(path) else { return };
    assert!(n.strict.starts_with('/'));
    assert!(!n.strict.contains("//"), "{path:?} -> {:?}", n.strict);
    let again = normalize(&n.strict).expect("a normalized path normalizes");
    assert_eq!(again.strict, n.strict);
    let route = |path: &str, auth: bool, action: Option<Action>| RouteSettings {
        path: path.into(),
        methods: None,
        auth,
        action,
        apply_on: vec![StatusMatch::Class(2)],
        respond: None,
        upgrades: Vec::new(),
        clear_cookie: None,
    };
    let table = RouteTable::new(&[
        route("/login", false, None),
        route("/static/*", false, None),
        route("/logout", true, Some(Action::Revoke)),
    ]);
    let rule = table.find(method, &n);
    if n.loose == "/logout" {
        assert_eq!(
            rule.action,
            Some(Action::Revoke),
            "{path:?} dodged the logout"
        );
    }
    if !rule.auth {
        assert!(n.strict == "/login" || n.strict == "/static" || n.strict.starts_with("/static/"));
    }
});
