//! `[[slot]]` tables as written, one type per `kind`: which keys a kind takes comes from
//! its type (`deny_unknown_fields`), and a key of another kind is named with the kinds
//! that take it. Each table is read straight from the parsed document, so every value
//! keeps its span (the line in error messages).

use super::{RawCredential, SlotKind};
use serde::Deserialize;
use std::collections::BTreeMap;
use std::path::PathBuf;
use toml::Spanned;
use toml::de::{DeTable, DeValue, ValueDeserializer};

/// The settings every kind takes, borrowed from a kind's table.
pub(super) struct Common<'a> {
    pub label: &'a Spanned<String>,
    pub kind: &'a Spanned<SlotKind>,
    pub pin_hash: &'a Option<Spanned<String>>,
    pub pin_tries: &'a Option<Spanned<u32>>,
    pub pin_lockout_seconds: &'a Option<Spanned<u64>>,
    pub refresh_seconds: &'a Option<Spanned<u64>>,
}

/// Declares a kind's table: the common keys, then the kind's own (all optional here;
/// what a kind requires is checked where its message can say what to write).
macro_rules! slot_table {
    ($(#[$doc:meta])* $name:ident { $($(#[$fdoc:meta])* $field:ident: $ty:ty,)* }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Deserialize)]
        #[serde(deny_unknown_fields)]
        pub(super) struct $name {
            pub label: Spanned<String>,
            pub kind: Spanned<SlotKind>,
            #[serde(default)]
            pub pin_hash: Option<Spanned<String>>,
            #[serde(default)]
            pub pin_tries: Option<Spanned<u32>>,
            #[serde(default)]
            pub pin_lockout_seconds: Option<Spanned<u64>>,
            #[serde(default)]
            pub refresh_seconds: Option<Spanned<u64>>,
            $($(#[$fdoc])* #[serde(default)] pub $field: $ty,)*
        }

        impl $name {
            /// Every key this kind takes.
            const KEYS: &[&str] = &[
                "label",
                "kind",
                "pin_hash",
                "pin_tries",
                "pin_lockout_seconds",
                "refresh_seconds",
                $(stringify!($field),)*
            ];

            pub fn common(&self) -> Common<'_> {
                Common {
                    label: &self.label,
                    kind: &self.kind,
                    pin_hash: &self.pin_hash,
                    pin_tries: &self.pin_tries,
                    pin_lockout_seconds: &self.pin_lockout_seconds,
                    refresh_seconds: &self.refresh_seconds,
                }
            }
        }
    };
}

slot_table! {
    /// `kind = "cert-store"`: a directory of PKCS#12/PEM files, or a Windows store.
    CertStoreTable {
        path: Option<Spanned<PathBuf>>,
        /// A Windows certificate store, `CurrentUser/My`.
        store: Option<Spanned<String>>,
        writable: Option<bool>,
        pkcs12_password_file: Option<Spanned<PathBuf>>,
    }
}

/// Declares a key-vault or managed-hsm table: its own keys, then those both kinds take.
macro_rules! azure_table {
    ($(#[$doc:meta])* $name:ident { $($own:tt)* }) => {
        slot_table! {
            $(#[$doc])*
            $name {
                $($own)*
                ca_file: Option<Spanned<PathBuf>>,
                credential: Option<Spanned<RawCredential>>,
                key_names: Option<Vec<String>>,
                tags: Option<BTreeMap<String, String>>,
                hsm_keys: Option<bool>,
                allow_destroy: Option<bool>,
                deadline_seconds: Option<Spanned<u64>>,
                max_retries: Option<Spanned<u32>>,
                rate_budget: Option<Spanned<f64>>,
                full_refresh_seconds: Option<Spanned<u64>>,
                region: Option<Spanned<String>>,
                certificates: Option<Spanned<String>>,
                /// Replaced by `certificates`; named in the error.
                certificates_dir: Option<Spanned<PathBuf>>,
            }
        }
    };
}

azure_table! {
    /// `kind = "key-vault"`: an Azure Key Vault.
    KeyVaultTable {
        vault: Option<Spanned<String>>,
        require_hsm: Option<Spanned<bool>>,
    }
}

azure_table! {
    /// `kind = "managed-hsm"`: an Azure Managed HSM (its certificates in the database).
    ManagedHsmTable {
        hsm: Option<Spanned<String>>,
        hsm_random: Option<bool>,
    }
}

/// One `[[slot]]` table, typed by its kind.
pub(super) enum SlotTable {
    CertStore(CertStoreTable),
    KeyVault(KeyVaultTable),
    ManagedHsm(ManagedHsmTable),
}

impl SlotTable {
    pub fn common(&self) -> Common<'_> {
        match self {
            SlotTable::CertStore(t) => t.common(),
            SlotTable::KeyVault(t) => t.common(),
            SlotTable::ManagedHsm(t) => t.common(),
        }
    }
}

/// The keys each kind takes, for naming the kinds that take a misplaced key.
fn kinds_taking(key: &str) -> Vec<&'static str> {
    [
        (SlotKind::CertStore, CertStoreTable::KEYS),
        (SlotKind::KeyVault, KeyVaultTable::KEYS),
        (SlotKind::ManagedHsm, ManagedHsmTable::KEYS),
    ]
    .into_iter()
    .filter(|(_, keys)| keys.contains(&key))
    .map(|(k, _)| k.as_str())
    .collect()
}

/// A slot-table error: the span it points at and the message.
pub(super) struct TableError {
    pub span: Option<std::ops::Range<usize>>,
    pub message: String,
    /// The message is the parser's, which may quote a value (scrubbed where the line is
    /// secret-bearing); `false`: the module wrote it and it quotes no value.
    pub from_parser: bool,
}

impl From<toml::de::Error> for TableError {
    fn from(e: toml::de::Error) -> TableError {
        TableError {
            span: e.span(),
            message: e.message().trim_end().to_owned(),
            from_parser: true,
        }
    }
}

/// The `[[slot]]` tables of a parsed document, each read as its kind's type.
pub(super) fn slot_tables(doc: &Spanned<DeTable<'_>>) -> Result<Vec<SlotTable>, TableError> {
    let Some((_, slots)) = doc.get_ref().iter().find(|(k, _)| k.get_ref() == "slot") else {
        return Ok(Vec::new());
    };
    let not_tables = || TableError {
        span: Some(slots.span()),
        message: "`slot` must be `[[slot]]` tables".into(),
        from_parser: false,
    };
    let DeValue::Array(items) = slots.get_ref() else {
        return Err(not_tables());
    };
    items.iter().map(|item| table(item, &not_tables)).collect()
}

fn table(
    item: &Spanned<DeValue<'_>>,
    not_tables: &dyn Fn() -> TableError,
) -> Result<SlotTable, TableError> {
    let DeValue::Table(t) = item.get_ref() else {
        return Err(not_tables());
    };
    let Some((_, kind)) = t.iter().find(|(k, _)| k.get_ref() == "kind") else {
        return Err(TableError {
            span: Some(item.span()),
            message: "missing field `kind` (\"cert-store\", \"key-vault\" or \"managed-hsm\")"
                .into(),
            from_parser: false,
        });
    };
    let kind = SlotKind::deserialize(ValueDeserializer::from(kind.clone()))?;
    let de = || ValueDeserializer::from(item.clone());
    let read = match kind {
        SlotKind::CertStore => CertStoreTable::deserialize(de()).map(SlotTable::CertStore),
        SlotKind::KeyVault => KeyVaultTable::deserialize(de()).map(SlotTable::KeyVault),
        SlotKind::ManagedHsm => ManagedHsmTable::deserialize(de()).map(SlotTable::ManagedHsm),
    };
    let top_level = |key: &str| t.iter().any(|(k, _)| k.get_ref() == key);
    read.map_err(|e| misplaced_key(e, kind, &top_level))
}

/// "unknown field `vault`, expected …" on a managed-hsm slot becomes "`vault` is for
/// key-vault slots, not for kind = \"managed-hsm\"" (with how this kind says it, where
/// there is one); a key no kind takes keeps serde's list of the keys this kind takes, and
/// so does a key inside a nested table (`[slot.credential]`), which the message cannot
/// tell apart by itself: only a key of the slot table itself is rewritten.
fn misplaced_key(
    e: toml::de::Error,
    kind: SlotKind,
    top_level: &dyn Fn(&str) -> bool,
) -> TableError {
    let mut out = TableError::from(e);
    let Some(key) = out
        .message
        .strip_prefix("unknown field `")
        .and_then(|rest| rest.split_once('`'))
        .map(|(key, _)| key.to_owned())
    else {
        return out;
    };
    let kinds = kinds_taking(&key);
    if kinds.is_empty() || kinds.contains(&kind.as_str()) || !top_level(&key) {
        return out;
    }
    out.from_parser = false;
    let hint = match (kind, key.as_str()) {
        (SlotKind::ManagedHsm, "vault") => {
            "; a `managed-hsm` slot names its store with `hsm = \"https://…\"`"
        }
        (SlotKind::KeyVault, "hsm") => {
            "; a `key-vault` slot names its store with `vault = \"https://…\"`"
        }
        (SlotKind::KeyVault, "hsm_random") => " (a vault has no random number service)",
        _ => "",
    };
    out.message = format!(
        "`{key}` is for {} slots, not for kind = {:?}{hint}",
        kinds.join(" and "),
        kind.as_str()
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_key_belongs_to_the_kinds_whose_type_takes_it() {
        assert_eq!(kinds_taking("path"), ["cert-store"]);
        assert_eq!(kinds_taking("vault"), ["key-vault"]);
        assert_eq!(kinds_taking("hsm_random"), ["managed-hsm"]);
        assert_eq!(kinds_taking("credential"), ["key-vault", "managed-hsm"]);
        assert_eq!(
            kinds_taking("pin_hash"),
            ["cert-store", "key-vault", "managed-hsm"]
        );
        assert!(kinds_taking("colour").is_empty());
    }
}
