//! Base64 as Key Vault uses it: base64url without padding for key material and crypto
//! values, standard base64 for certificates (`cer`, `csr`, `x5c`). Decoding is lenient
//! about the alphabet and padding, as the service is.

use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// base64url without padding.
pub fn url(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// Standard base64 with padding.
pub fn std(bytes: &[u8]) -> String {
    STANDARD.encode(bytes)
}

/// Decodes base64url or standard base64, padded or not. `None` when it is neither.
pub fn decode(text: &str) -> Option<Vec<u8>> {
    let normalized: String = text
        .trim_end_matches('=')
        .chars()
        .map(|c| match c {
            '+' => '-',
            '/' => '_',
            other => other,
        })
        .collect();
    URL_SAFE_NO_PAD.decode(normalized.as_bytes()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_both_alphabets_with_and_without_padding() {
        assert_eq!(decode("cGxhaW50ZXh0").unwrap(), b"plaintext");
        assert_eq!(decode("+/8=").unwrap(), vec![0xfb, 0xff]);
        assert_eq!(decode("-_8").unwrap(), vec![0xfb, 0xff]);
        assert!(decode("not base64!").is_none());
        assert_eq!(url(&[0xfb, 0xff]), "-_8");
        assert_eq!(std(&[0xfb, 0xff]), "+/8=");
    }
}
