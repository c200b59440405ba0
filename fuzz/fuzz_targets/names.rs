//! Names, keys and durations from arbitrary strings: `PeerName`, `identity::PublicKey`,
//! `identity::NoiseKey` and `duration::parse_timeout`.
//!
//! Checks: no panic; `PeerName` accepts exactly 1 to 32 characters of `A-Z a-z 0-9 _ - .`
//! that are not all dots, and says why otherwise (empty, the first bad character, too long,
//! only dots); keys accept exactly the 43-character canonical base64url form of 32 bytes and
//! print back as they were read, with a 128-bit fingerprint that `parse_fingerprint` reads
//! back, in any case and without colons;
//! serde reads names and keys exactly as `FromStr` does; a parsed timeout is within bounds.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use p2p_shared::duration::parse_timeout;
use p2p_shared::identity::{NoiseKey, PublicKey};
use p2p_shared::name::NameError;
use p2p_shared::PeerName;

fn name_model(s: &str) -> Result<(), NameError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if s.is_empty() {
        Err(NameError::Empty)
    } else if let Some(c) = s.chars().find(|&c| !allowed(c)) {
        Err(NameError::BadChar(c))
    } else if s.chars().count() > PeerName::MAX_LEN {
        Err(NameError::TooLong(s.chars().count()))
    } else if s.chars().all(|c| c == '.') {
        Err(NameError::OnlyDots(s.to_string()))
    } else {
        Ok(())
    }
}

/// Whether `s` is 32 bytes in base64url without padding, written the one canonical way.
fn is_key(s: &str) -> bool {
    let value = |c: u8| match c {
        b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' => Some(c),
        _ => None,
    };
    let last = |c: u8| match c {
        b'A'..=b'Z' => c - b'A',
        b'a'..=b'z' => c - b'a' + 26,
        b'0'..=b'9' => c - b'0' + 52,
        b'-' => 62,
        _ => 63,
    };
    // 43 characters carry 258 bits: the last character's 2 low bits are padding, zero.
    s.len() == 43 && s.bytes().all(|c| value(c).is_some()) && last(s.as_bytes()[42]) & 0b11 == 0
}

fuzz_target!(|data: &[u8]| {
    let s = String::from_utf8_lossy(data);
    let s: &str = &s;
    let json = serde_json::Value::String(s.to_owned());

    // Names.
    let name = s.parse::<PeerName>();
    assert_eq!(name.clone().map(|_| ()), name_model(s), "{s:?}");
    match &name {
        Ok(n) => {
            assert_eq!(n.as_str(), s);
            assert_eq!(n.to_string(), s);
            assert_eq!(serde_json::to_value(n).unwrap(), json);
        }
        Err(e) => assert!(!e.to_string().is_empty()),
    }
    let via_serde = serde_json::from_value::<PeerName>(json.clone());
    assert_eq!(
        via_serde.ok(),
        name.clone().ok(),
        "serde and FromStr disagree on {s:?}"
    );

    // Long-term keys.
    let key = s.parse::<PublicKey>();
    assert_eq!(key.is_ok(), is_key(s), "{s:?}");
    if let Ok(k) = &key {
        assert_eq!(k.to_string(), s, "a key prints otherwise than it was read");
        // 128 bits since `trust NAME FINGERPRINT` (eight groups of four hex digits).
        let fp = k.fingerprint();
        assert_eq!(fp.len(), 39);
        assert_eq!(fp.split(':').count(), 8);
        assert!(fp.split(':').all(|g| g.len() == 4
            && g.bytes()
                .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_uppercase())));
        assert_eq!(PublicKey::parse_fingerprint(&fp).as_ref(), Some(&fp));
        assert_eq!(
            PublicKey::parse_fingerprint(&fp.to_ascii_uppercase().replace(':', "")),
            Some(fp)
        );
        let _ = format!("{k:?}");
    }
    let via_serde = serde_json::from_value::<PublicKey>(json.clone()).ok();
    assert_eq!(via_serde, key.ok(), "serde and FromStr disagree on {s:?}");

    // Noise static keys (`known_peers`' third column), read as public keys are.
    let noise = s.parse::<NoiseKey>();
    assert_eq!(noise.is_ok(), is_key(s), "{s:?}");
    if let Ok(n) = noise {
        assert_eq!(n.to_string(), s);
    }

    // Timeouts.
    if let Ok(d) = parse_timeout(s) {
        assert!(
            d > Duration::ZERO && d <= Duration::from_secs(24 * 60 * 60),
            "{s:?} gave {d:?}"
        );
    }
});
