//! The config reader: any text gives settings or a list of problems, never
//! a panic; settings it accepts describe themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revoke_proxy::config::Settings;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let env =
        |name: &str| (name == "SECRET").then(|| "fuzz-secret-0123456789-0123456789".to_string());
    match Settings::parse(text, std::path::Path::new("/nonexistent"), &env) {
        Ok(s) => {
            let _ = s.describe();
        }
        Err(e) => assert!(!e.0.is_empty()),
    }
});
