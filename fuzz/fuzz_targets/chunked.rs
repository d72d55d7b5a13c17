//! The chunked-body framing follower: the end it finds must not depend on
//! how the bytes were split.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revoke_proxy::server::h1::body::Chunked;

fuzz_target!(|data: &[u8]| {
    let Some((&split, body)) = data.split_first() else {
        return;
    };
    let whole = Chunked::default().feed(body).ok().map(|n| {
        (n, {
            let mut c = Chunked::default();
            let _ = c.feed(body);
            c.done()
        })
    });
    let cut = usize::from(split).min(body.len());
    let mut c = Chunked::default();
    let parts = c.feed(&body[..cut]).and_then(|a| {
        if a < cut {
            Ok(a) // ended before the cut
        } else {
            c.feed(&body[cut..]).map(|b| a + b)
        }
    });
    if let (Some((n, done)), Ok(m)) = (whole, parts) {
        if done {
            assert_eq!(n, m, "end found at a different place when split");
        }
    }
});
