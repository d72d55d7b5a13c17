//! What shared stores answer: memcached retrieval replies, and Redis keys,
//! values and feed messages read back into entries. An entry read back (a
//! backend may write escapes in either case) round-trips through its
//! canonical key and value, and merging never shortens.
#![no_main]

use libfuzzer_sys::fuzz_target;
use revoke_proxy::revocation::store::keys;
use revoke_proxy::revocation::store::memcached::{parse_retrieval, Retrieved};

fuzz_target!(|data: &[u8]| {
    if let Ok(Retrieved::Done(_, used)) = parse_retrieval(data) {
        assert!(used <= data.len());
    }
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let Some((key, value)) = text.split_once(' ') else {
        return;
    };
    if let Some(entry) = keys::entry_from("rp:", key, value) {
        let canonical = keys::key_of("rp:", &entry);
        let again = keys::entry_from("rp:", &canonical, &keys::value_of(&entry));
        assert_eq!(again.as_ref(), Some(&entry), "{canonical}");
        let merged = keys::merge_values(Some(value), &entry);
        let (_, until) = keys::parse_value(&merged).expect("merged values parse");
        assert!(until >= entry.until());
    }
});
