//! Digest operations (§5.12): local, so the whole state machine runs under the session's
//! lock.

use super::{Output, deliver};
use crate::crypto::HashAlg;
use crate::crypto::Hashing;
use crate::error::{Error, Result};

pub struct DigestOp {
    pub hashing: Hashing,
    pub multi_part: bool,
}

impl DigestOp {
    pub fn new(alg: HashAlg) -> Result<DigestOp> {
        Ok(DigestOp {
            hashing: Hashing::new(alg)?,
            multi_part: false,
        })
    }

    /// C_Digest (`data: Some`) and C_DigestFinal (`None`): not C_Digest after
    /// C_DigestUpdate; a size query or short buffer keeps the operation.
    pub fn digest(
        slot: &mut Option<DigestOp>,
        data: Option<&[u8]>,
        capacity: Option<usize>,
    ) -> Result<Output> {
        let op = slot.as_mut().ok_or(Error::OperationNotInitialized)?;
        if data.is_some() && op.multi_part {
            *slot = None;
            return Err(Error::OperationActive);
        }
        if let Some(out) = deliver(op.hashing.alg.output_len(), capacity) {
            return Ok(out);
        }
        let mut op = slot.take().ok_or(Error::OperationNotInitialized)?;
        if let Some(d) = data {
            op.hashing.update(d)?;
        }
        Ok(Output::Data(op.hashing.finish()?))
    }

    /// C_DigestUpdate: an error ends the operation.
    pub fn update(slot: &mut Option<DigestOp>, data: &[u8]) -> Result<()> {
        let op = slot.as_mut().ok_or(Error::OperationNotInitialized)?;
        op.multi_part = true;
        if let Err(e) = op.hashing.update(data) {
            *slot = None;
            return Err(e);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sha256() -> Option<DigestOp> {
        Some(DigestOp::new(HashAlg::Sha256).unwrap())
    }

    #[test]
    fn size_query_and_short_buffer_keep_the_operation() {
        let mut slot = sha256();
        assert_eq!(
            DigestOp::digest(&mut slot, Some(b"abc"), None).unwrap(),
            Output::Length(32)
        );
        assert_eq!(
            DigestOp::digest(&mut slot, Some(b"abc"), Some(31)).unwrap(),
            Output::TooSmall(32)
        );
        assert_eq!(
            DigestOp::digest(&mut slot, Some(b"abc"), Some(32)).unwrap(),
            Output::Data(openssl::sha::sha256(b"abc").to_vec())
        );
        assert!(slot.is_none());
        assert_eq!(
            DigestOp::digest(&mut slot, None, Some(32)).unwrap_err(),
            Error::OperationNotInitialized
        );
    }

    #[test]
    fn multi_part_digests_the_parts_and_refuses_single_part() {
        let mut slot = sha256();
        DigestOp::update(&mut slot, b"ab").unwrap();
        DigestOp::update(&mut slot, b"c").unwrap();
        assert_eq!(
            DigestOp::digest(&mut slot, None, Some(64)).unwrap(),
            Output::Data(openssl::sha::sha256(b"abc").to_vec())
        );
        let mut slot = sha256();
        DigestOp::update(&mut slot, b"ab").unwrap();
        assert_eq!(
            DigestOp::digest(&mut slot, Some(b"c"), Some(64)).unwrap_err(),
            Error::OperationActive
        );
        assert!(slot.is_none());
        assert_eq!(
            DigestOp::update(&mut slot, b"c").unwrap_err(),
            Error::OperationNotInitialized
        );
    }
}
