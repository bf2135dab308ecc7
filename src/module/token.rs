//! Slots and tokens (§5.5): C_GetSlotList, C_GetSlotInfo, C_GetTokenInfo and the
//! mechanism lists.

use super::{MAX_PIN_LEN, Module};
use crate::error::{Error, Result};
use crate::mechanism;
use crate::session::tries::PinState;
use cryptoki_sys::*;

impl Module {
    pub fn slot_ids(&self) -> Result<Vec<CK_SLOT_ID>> {
        (0..self.slots.len())
            .map(|i| CK_SLOT_ID::try_from(i).map_err(|e| Error::Internal(e.to_string())))
            .collect()
    }

    pub fn slot_info(&self, id: CK_SLOT_ID) -> Result<CK_SLOT_INFO> {
        let (_, slot) = self.slot(id)?;
        let mut info = CK_SLOT_INFO {
            slotDescription: [b' '; 64],
            manufacturerID: [b' '; 32],
            flags: CKF_TOKEN_PRESENT,
            hardwareVersion: version(),
            firmwareVersion: version(),
        };
        pad(
            &mut info.slotDescription,
            &format!(
                "identify-pkcs11 {} slot {}",
                slot.config.kind.as_str(),
                slot.config.label
            ),
        );
        pad(&mut info.manufacturerID, MANUFACTURER);
        Ok(info)
    }

    pub fn token_info(&self, id: CK_SLOT_ID) -> Result<CK_TOKEN_INFO> {
        let (index, slot) = self.slot(id)?;
        let (sessions, rw) = self.sessions.count(index)?;
        let mut flags = CKF_RNG | CKF_TOKEN_INITIALIZED | CKF_USER_PIN_INITIALIZED;
        if slot.config.pin_hash.is_some() {
            flags |= CKF_LOGIN_REQUIRED;
        }
        flags |= match self.pin_state(index) {
            None | Some(PinState::Clean) => 0,
            Some(PinState::CountLow) => CKF_USER_PIN_COUNT_LOW,
            Some(PinState::FinalTry) => CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_FINAL_TRY,
            Some(PinState::Locked) => CKF_USER_PIN_COUNT_LOW | CKF_USER_PIN_LOCKED,
        };
        if !self.backend(index)?.writable() {
            flags |= CKF_WRITE_PROTECTED;
        }
        let ul = |n: usize| CK_ULONG::try_from(n).map_err(|e| Error::Internal(e.to_string()));
        let mut info = CK_TOKEN_INFO {
            label: [b' '; 32],
            manufacturerID: [b' '; 32],
            model: [b' '; 16],
            serialNumber: [b' '; 16],
            flags,
            ulMaxSessionCount: CK_EFFECTIVELY_INFINITE,
            ulSessionCount: ul(sessions)?,
            ulMaxRwSessionCount: CK_EFFECTIVELY_INFINITE,
            ulRwSessionCount: ul(rw)?,
            ulMaxPinLen: ul(MAX_PIN_LEN)?,
            ulMinPinLen: 0,
            ulTotalPublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePublicMemory: CK_UNAVAILABLE_INFORMATION,
            ulTotalPrivateMemory: CK_UNAVAILABLE_INFORMATION,
            ulFreePrivateMemory: CK_UNAVAILABLE_INFORMATION,
            hardwareVersion: version(),
            firmwareVersion: version(),
            utcTime: [b' '; 16],
        };
        pad(&mut info.label, &slot.config.label);
        pad(&mut info.manufacturerID, MANUFACTURER);
        pad(&mut info.model, slot.config.kind.as_str());
        let serial = crate::crypto::hex::encode_upper(
            &openssl::sha::sha1(slot.config.label.as_bytes())[..8],
        );
        pad(&mut info.serialNumber, &serial);
        Ok(info)
    }

    pub fn mechanism_list(&self, id: CK_SLOT_ID) -> Result<Vec<CK_MECHANISM_TYPE>> {
        self.slot(id)?;
        Ok(mechanism::TABLE.iter().map(|(m, _)| *m).collect())
    }

    pub fn mechanism_info(
        &self,
        id: CK_SLOT_ID,
        m: CK_MECHANISM_TYPE,
    ) -> Result<CK_MECHANISM_INFO> {
        self.slot(id)?;
        let i = mechanism::info(m)?;
        Ok(CK_MECHANISM_INFO {
            ulMinKeySize: i.min_key_size,
            ulMaxKeySize: i.max_key_size,
            flags: i.flags,
        })
    }
}

const MANUFACTURER: &str = "identify-pkcs11";

fn version() -> CK_VERSION {
    let parse = |s: &str| s.parse::<u8>().unwrap_or(0);
    CK_VERSION {
        major: parse(env!("CARGO_PKG_VERSION_MAJOR")),
        minor: parse(env!("CARGO_PKG_VERSION_MINOR")),
    }
}

/// Blank-padded fixed-width PKCS#11 text, cut at a character boundary.
pub fn pad(field: &mut [u8], text: &str) {
    field.fill(b' ');
    let mut end = text.len().min(field.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    field[..end].copy_from_slice(&text.as_bytes()[..end]);
}
