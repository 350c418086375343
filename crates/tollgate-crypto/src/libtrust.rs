//! The key id Docker's libtrust gives a public key, which distribution's token authentication
//! matches a JWS `kid` against (the keys of the certificates in its `rootcertbundle`).

use aws_lc_rs::digest;

/// The libtrust key id of a public key given as DER `SubjectPublicKeyInfo`: the first 30 bytes
/// of its SHA-256, RFC 4648 base32 without padding (48 characters), in 12 groups of 4 joined
/// by `:`, e.g. `37WG:FYZK:LP4Q:LXI2:4YJR:A23T:YZBL:5I6W:43FD:6OEU:2LTG:7RMT`.
#[must_use]
pub fn libtrust_key_id(spki_der: &[u8]) -> String {
    let hash = digest::digest(&digest::SHA256, spki_der);
    let b32 = base32(&hash.as_ref()[..30]);
    let mut out = String::with_capacity(59);
    for (i, c) in b32.chars().enumerate() {
        if i > 0 && i % 4 == 0 {
            out.push(':');
        }
        out.push(c);
    }
    out
}

/// RFC 4648 §6 base32 (upper case) without padding.
fn base32(data: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut out = String::with_capacity(data.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &byte in data {
        buffer = (buffer << 8) | u32::from(byte);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
        buffer &= (1 << bits) - 1;
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A P-256 public key made with `openssl ecparam`/`genpkey`, as `openssl pkey -pubout
    /// -outform DER` writes it; the id was computed independently with Python's hashlib and
    /// base64.b32encode.
    const OPENSSL_P256_SPKI_HEX: &str = "3059301306072a8648ce3d020106082a8648ce3d03010703420004aa58d0b2fdf05b76730db4413130167ebbc3b4430c93f16f9d86274bb54df40419ef3c425577c66b714cd1a24cd79dcdfd2f986d073b99938adb1058b428b8dd";
    const OPENSSL_P256_KEY_ID: &str = "37WG:FYZK:LP4Q:LXI2:4YJR:A23T:YZBL:5I6W:43FD:6OEU:2LTG:7RMT";

    fn unhex(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex"))
            .collect()
    }

    #[test]
    fn matches_an_independently_computed_id() {
        assert_eq!(
            libtrust_key_id(&unhex(OPENSSL_P256_SPKI_HEX)),
            OPENSSL_P256_KEY_ID
        );
    }

    #[test]
    fn shape() {
        let id = libtrust_key_id(b"anything");
        assert_eq!(id.len(), 59);
        assert_eq!(id.split(':').count(), 12);
        assert!(id.split(':').all(|g| {
            g.len() == 4
                && g.bytes()
                    .all(|b| b.is_ascii_uppercase() || (b'2'..=b'7').contains(&b))
        }));
    }

    #[test]
    fn base32_rfc4648_vectors() {
        for (input, expected) in [
            ("", ""),
            ("f", "MY"),
            ("fo", "MZXQ"),
            ("foo", "MZXW6"),
            ("foob", "MZXW6YQ"),
            ("fooba", "MZXW6YTB"),
            ("foobar", "MZXW6YTBOI"),
        ] {
            assert_eq!(base32(input.as_bytes()), expected, "{input}");
        }
    }
}
