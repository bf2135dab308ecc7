//! DER DigestInfo (RFC 8017 §9.2 note 1): the prefix before the digest, per hash.

use crate::crypto::HashAlg;

fn prefix(h: HashAlg) -> &'static [u8] {
    match h {
        HashAlg::Sha1 => &[
            0x30, 0x21, 0x30, 0x09, 0x06, 0x05, 0x2b, 0x0e, 0x03, 0x02, 0x1a, 0x05, 0x00, 0x04,
            0x14,
        ],
        HashAlg::Sha224 => &[
            0x30, 0x2d, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x04, 0x05, 0x00, 0x04, 0x1c,
        ],
        HashAlg::Sha256 => &[
            0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x01, 0x05, 0x00, 0x04, 0x20,
        ],
        HashAlg::Sha384 => &[
            0x30, 0x41, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x02, 0x05, 0x00, 0x04, 0x30,
        ],
        HashAlg::Sha512 => &[
            0x30, 0x51, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02,
            0x03, 0x05, 0x00, 0x04, 0x40,
        ],
    }
}

/// The DigestInfo for `digest` of hash `h`.
pub fn encode(h: HashAlg, digest: &[u8]) -> Vec<u8> {
    let mut out = prefix(h).to_vec();
    out.extend_from_slice(digest);
    out
}

/// Recognises a DigestInfo in its canonical encoding (the one `encode` produces), so that
/// re-encoding gives back the same bytes. Anything else is `None` and is signed as is.
pub fn parse(data: &[u8]) -> Option<(HashAlg, &[u8])> {
    HashAlg::ALL.into_iter().find_map(|h| {
        let p = prefix(h);
        (data.len() == p.len() + h.output_len() && data.starts_with(p))
            .then(|| (h, &data[p.len()..]))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefixes_match_openssl_digestinfo() {
        // OpenSSL builds DigestInfo itself when a signature digest is set; recovering the
        // padded block with the public key shows what it signed.
        use openssl::pkey::PKey;
        use openssl::rsa::{Padding, Rsa};
        let rsa = Rsa::generate(1024).unwrap();
        let pkey = PKey::from_rsa(rsa.clone()).unwrap();
        for h in HashAlg::ALL {
            let digest = vec![0xabu8; h.output_len()];
            let mut ctx = openssl::pkey_ctx::PkeyCtx::new(&pkey).unwrap();
            ctx.sign_init().unwrap();
            ctx.set_rsa_padding(Padding::PKCS1).unwrap();
            ctx.set_signature_md(openssl::md::Md::from_nid(h.md().type_()).unwrap())
                .unwrap();
            let mut sig = Vec::new();
            ctx.sign_to_vec(&digest, &mut sig).unwrap();
            let mut recovered = vec![0u8; 128];
            let n = rsa
                .public_decrypt(&sig, &mut recovered, Padding::PKCS1)
                .unwrap();
            assert_eq!(&recovered[..n], encode(h, &digest).as_slice(), "{h:?}");
            assert_eq!(parse(&recovered[..n]), Some((h, digest.as_slice())));
        }
    }

    #[test]
    fn non_canonical_or_truncated_is_not_recognised() {
        let mut d = encode(HashAlg::Sha256, &[1u8; 32]);
        d.pop();
        assert_eq!(parse(&d), None);
        assert_eq!(parse(&[]), None);
        let md5_sha1 = [0u8; 36];
        assert_eq!(parse(&md5_sha1), None);
    }
}
