//! The hash functions the module knows, for digests, DigestInfo and PSS/OAEP parameters.

use crate::error::Result;
use openssl::md::{Md, MdRef};
use openssl::md_ctx::MdCtx;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HashAlg {
    Sha1,
    Sha224,
    Sha256,
    Sha384,
    Sha512,
}

impl HashAlg {
    pub const ALL: [HashAlg; 5] = [
        HashAlg::Sha1,
        HashAlg::Sha224,
        HashAlg::Sha256,
        HashAlg::Sha384,
        HashAlg::Sha512,
    ];

    pub fn output_len(self) -> usize {
        match self {
            HashAlg::Sha1 => 20,
            HashAlg::Sha224 => 28,
            HashAlg::Sha256 => 32,
            HashAlg::Sha384 => 48,
            HashAlg::Sha512 => 64,
        }
    }

    /// OpenSSL's digest, for hashing and for the PSS/OAEP/MGF1 parameters of a context.
    pub fn md(self) -> &'static MdRef {
        match self {
            HashAlg::Sha1 => Md::sha1(),
            HashAlg::Sha224 => Md::sha224(),
            HashAlg::Sha256 => Md::sha256(),
            HashAlg::Sha384 => Md::sha384(),
            HashAlg::Sha512 => Md::sha512(),
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            HashAlg::Sha1 => "SHA-1",
            HashAlg::Sha224 => "SHA-224",
            HashAlg::Sha256 => "SHA-256",
            HashAlg::Sha384 => "SHA-384",
            HashAlg::Sha512 => "SHA-512",
        }
    }
}

/// A running hash (digest operations and the hashing sign/verify mechanisms).
pub struct Hashing {
    pub alg: HashAlg,
    ctx: MdCtx,
}

impl Hashing {
    pub fn new(alg: HashAlg) -> Result<Hashing> {
        let mut ctx = MdCtx::new()?;
        ctx.digest_init(alg.md())?;
        Ok(Hashing { alg, ctx })
    }

    pub fn update(&mut self, data: &[u8]) -> Result<()> {
        Ok(self.ctx.digest_update(data)?)
    }

    /// The digest; the context starts over, ready for the next input.
    pub fn finish(&mut self) -> Result<Vec<u8>> {
        let mut out = vec![0u8; self.alg.output_len()];
        let n = self.ctx.digest_final(&mut out)?;
        out.truncate(n);
        self.ctx.digest_init(self.alg.md())?;
        Ok(out)
    }
}

/// The digest of `data` in one call (the tests' and the fuzz targets' reference).
#[cfg(any(test, feature = "fuzzing"))]
pub fn hash(alg: HashAlg, data: &[u8]) -> Result<Vec<u8>> {
    let mut h = Hashing::new(alg)?;
    h.update(data)?;
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn digests_match_known_answers_and_restart() {
        // FIPS 180 "abc" vectors, first bytes.
        let abc = |h| hash(h, b"abc").unwrap();
        assert_eq!(
            crate::crypto::hex::encode(&abc(HashAlg::Sha1)[..4]),
            "a9993e36"
        );
        assert_eq!(
            crate::crypto::hex::encode(&abc(HashAlg::Sha256)[..4]),
            "ba7816bf"
        );
        assert_eq!(
            crate::crypto::hex::encode(&abc(HashAlg::Sha512)[..4]),
            "ddaf35a1"
        );
        for h in HashAlg::ALL {
            assert_eq!(abc(h).len(), h.output_len());
            let mut running = Hashing::new(h).unwrap();
            running.update(b"a").unwrap();
            running.update(b"bc").unwrap();
            assert_eq!(running.finish().unwrap(), abc(h));
            running.update(b"abc").unwrap();
            assert_eq!(running.finish().unwrap(), abc(h), "{h:?} starts over");
        }
    }
}
