//! ROCA (CVE-2017-15361): RSA keys made by a flawed library (Infineon
//! RSALib) have primes of a structure that lets their private key be
//! recovered from the public key. Their moduli carry a fingerprint: for
//! each small prime `p` below, `n mod p` lies in the subgroup that 65537
//! generates modulo `p` (Nemec et al., "The Return of Coppersmith's Attack",
//! CCS 2017). Such keys are refused: a token signed with one proves nothing.

/// The primes of the published fingerprint test.
const PRIMES: [u32; 38] = [
    3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89, 97,
    101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167,
];

/// The residues 65537 generates modulo `p`, as a bit set (bit r = residue r).
fn subgroup(p: u32) -> u256 {
    let g = 65537 % p;
    let mut set = u256::default();
    let mut x = 1 % p;
    loop {
        set.set(x);
        x = x * g % p;
        if x == 1 % p {
            return set;
        }
    }
}

/// 256 bits, enough for residues below 167.
#[derive(Default, Clone, Copy)]
#[allow(non_camel_case_types)]
struct u256([u64; 4]);

impl u256 {
    fn set(&mut self, bit: u32) {
        if let Some(w) = self.0.get_mut((bit / 64) as usize) {
            *w |= 1 << (bit % 64);
        }
    }
    fn has(&self, bit: u32) -> bool {
        self.0
            .get((bit / 64) as usize)
            .is_some_and(|w| w >> (bit % 64) & 1 == 1)
    }
}

/// `n mod p` for a big-endian unsigned integer.
fn rem(n: &[u8], p: u32) -> u32 {
    n.iter().fold(0u32, |r, &b| (r * 256 + u32::from(b)) % p)
}

/// The modulus (big-endian) has the ROCA fingerprint.
pub fn fingerprinted(modulus: &[u8]) -> bool {
    let n = strip_zeros(modulus);
    n.len() >= 64 && PRIMES.iter().all(|&p| subgroup(p).has(rem(n, p)))
}

fn strip_zeros(n: &[u8]) -> &[u8] {
    let first = n.iter().position(|&b| b != 0).unwrap_or(n.len());
    n.get(first..).unwrap_or_default()
}

/// The RSA modulus in a PEM public key (SubjectPublicKeyInfo, PKCS#1, or a
/// certificate): the largest INTEGER found in its DER.
pub fn modulus_from_pem(pem: &[u8]) -> Option<Vec<u8>> {
    use base64::Engine;
    let text = std::str::from_utf8(pem).ok()?;
    let body: String = text
        .lines()
        .filter(|l| !l.starts_with("-----") && !l.contains(':'))
        .collect();
    let der = base64::engine::general_purpose::STANDARD
        .decode(body.trim())
        .ok()?;
    let mut largest: Option<&[u8]> = None;
    integers(&der, 0, &mut |i| {
        let i = strip_zeros(i);
        if largest.is_none_or(|l| i.len() > l.len()) {
            largest = Some(i);
        }
    });
    largest.map(<[u8]>::to_vec)
}

/// Walks DER, descending into SEQUENCEs and BIT STRINGs, calling `found`
/// with every INTEGER's content.
fn integers<'a>(mut der: &'a [u8], depth: u8, found: &mut impl FnMut(&'a [u8])) {
    if depth > 8 {
        return;
    }
    while let Some((tag, content, rest)) = tlv(der) {
        match tag {
            0x02 => found(content),
            0x30 | 0xa0..=0xa3 => integers(content, depth + 1, found),
            0x03 => integers(content.get(1..).unwrap_or_default(), depth + 1, found),
            _ => {}
        }
        der = rest;
    }
}

/// One DER tag-length-value: (tag, content, what follows).
fn tlv(der: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = der.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return None;
        }
        let (bytes, after) = (rest.get(..n)?, rest.get(n..)?);
        rest = after;
        bytes.iter().fold(0usize, |l, &b| (l << 8) | usize::from(b))
    };
    Some((tag, rest.get(..len)?, rest.get(len..)?))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subgroups_match_the_published_fingerprint_masks() {
        // The first masks of the reference detector (crocs-muni/roca).
        assert_eq!(subgroup(3).0[0], 6);
        assert_eq!(subgroup(5).0[0], 30);
        assert_eq!(subgroup(7).0[0], 126);
        assert_eq!(subgroup(11).0[0], 1026);
        assert_eq!(subgroup(13).0[0], 5658);
    }

    fn fixture(name: &str) -> Vec<u8> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/keys");
        std::fs::read(dir.join(name)).unwrap()
    }

    #[test]
    fn a_roca_structured_key_is_found_and_ordinary_keys_are_not() {
        let roca = modulus_from_pem(&fixture("roca.pub")).unwrap();
        assert!(roca.len() >= 255);
        assert!(fingerprinted(&roca));
        for ok in ["rsa.pub", "rsa-other.pub"] {
            let n = modulus_from_pem(&fixture(ok)).unwrap();
            assert_eq!(n.len(), 256, "{ok}");
            assert!(!fingerprinted(&n), "{ok}");
        }
    }
}
