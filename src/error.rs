//! The one error type of the module and its one total mapping to `CK_RV`.
//!
//! Every layer returns [`Error`]; only `ffi/` turns it into a return code, through
//! [`Error::rv`]. Variants carrying a message are logged where they are raised; the
//! message never contains a secret.

use cryptoki_sys::*;
use std::fmt;

pub type Result<T> = std::result::Result<T, Error>;

/// A failure, named as the PKCS#11 specification names it where it is a caller's mistake,
/// and by cause where it is the module's or a backend's.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    // --- library state (§5.4) ---
    NotInitialized,
    AlreadyInitialized,
    /// The application needs the library not to create threads, and it must.
    NeedToCreateThreads,
    /// Mutex callbacks without `CKF_OS_LOCKING_OK`: we only lock with OS primitives.
    CantLock,
    // --- arguments (§5.1) ---
    ArgumentsBad(&'static str),
    // --- slots, tokens, sessions ---
    SlotIdInvalid,
    TokenNotPresent,
    TokenWriteProtected,
    SessionHandleInvalid,
    SessionParallelNotSupported,
    SessionReadOnly,
    SessionReadWriteSoExists,
    // --- login ---
    PinIncorrect,
    PinLenRange,
    /// Too many wrong PINs in a row: the slot refuses logins until its lockout ends.
    PinLocked,
    UserAlreadyLoggedIn,
    UserNotLoggedIn,
    UserTypeInvalid,
    // --- objects and attributes ---
    ObjectHandleInvalid,
    KeyHandleInvalid,
    AttributeTypeInvalid,
    AttributeValueInvalid(String),
    AttributeReadOnly,
    AttributeSensitive,
    /// The store's policy forbids this change (v3.0 `CKR_ACTION_PROHIBITED`).
    ActionProhibited(String),
    TemplateIncomplete(&'static str),
    TemplateInconsistent(String),
    BufferTooSmall,
    // --- operations and mechanisms ---
    OperationActive,
    OperationNotInitialized,
    MechanismInvalid,
    MechanismParamInvalid(String),
    KeyTypeInconsistent,
    KeyFunctionNotPermitted,
    KeySizeRange,
    DataLenRange,
    DataInvalid,
    EncryptedDataInvalid,
    EncryptedDataLenRange,
    SignatureInvalid,
    SignatureLenRange,
    UnwrappingKeyHandleInvalid,
    UnwrappingKeyTypeInconsistent,
    WrappedKeyInvalid,
    WrappedKeyLenRange,
    FunctionNotSupported,
    RandomNoRng,
    RandomSeedNotSupported,
    // --- the module's own failures ---
    /// The configuration is wrong; the message names the file, the key and what is accepted.
    Config(String),
    /// The key store could not do what was asked (I/O, unreadable file, crypto library).
    Backend(String),
    /// The store refused because the object no longer exists there.
    ObjectGone(String),
    /// A remote key service failed (Key Vault, Managed HSM: backend/azure/errors.rs maps
    /// their answers to these kinds).
    Remote(ServiceFailure, String),
    /// Memory or a counter ran out.
    HostMemory,
    /// A bug: a broken invariant or a caught panic.
    Internal(String),
}

/// The classes of remote failure that map to distinct return codes and advice.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ServiceFailure {
    Auth,
    Denied,
    BadRequest,
    Throttled,
    Unavailable,
    Timeout,
    Tls,
}

impl ServiceFailure {
    /// What the operator can do about it, for the log line.
    pub fn advice(self) -> &'static str {
        match self {
            ServiceFailure::Auth => {
                "check the slot's [slot.credential]: tenant, client id and secret or certificate"
            }
            ServiceFailure::Denied => {
                "grant the principal what the message names, with the command it gives"
            }
            ServiceFailure::BadRequest => {
                "the service refused the request; check the key type and algorithm"
            }
            ServiceFailure::Throttled => {
                "the vault is throttling: lower the load or raise the vault's limits"
            }
            ServiceFailure::Unavailable => {
                "the service or the network is failing; it is retried within the deadline"
            }
            ServiceFailure::Timeout => {
                "no answer within deadline_seconds; check the network path to the vault"
            }
            ServiceFailure::Tls => {
                "the vault's TLS certificate is not trusted: check ca_file and the system roots"
            }
        }
    }
}

impl Error {
    /// The return code for this error. Total: every variant maps, and the unit test below
    /// checks each one.
    pub fn rv(&self) -> CK_RV {
        match self {
            Error::NotInitialized => CKR_CRYPTOKI_NOT_INITIALIZED,
            Error::AlreadyInitialized => CKR_CRYPTOKI_ALREADY_INITIALIZED,
            Error::NeedToCreateThreads => CKR_NEED_TO_CREATE_THREADS,
            Error::CantLock => CKR_CANT_LOCK,
            Error::ArgumentsBad(_) => CKR_ARGUMENTS_BAD,
            Error::SlotIdInvalid => CKR_SLOT_ID_INVALID,
            Error::TokenNotPresent => CKR_TOKEN_NOT_PRESENT,
            Error::TokenWriteProtected => CKR_TOKEN_WRITE_PROTECTED,
            Error::SessionHandleInvalid => CKR_SESSION_HANDLE_INVALID,
            Error::SessionParallelNotSupported => CKR_SESSION_PARALLEL_NOT_SUPPORTED,
            Error::SessionReadOnly => CKR_SESSION_READ_ONLY,
            Error::SessionReadWriteSoExists => CKR_SESSION_READ_WRITE_SO_EXISTS,
            Error::PinIncorrect => CKR_PIN_INCORRECT,
            Error::PinLenRange => CKR_PIN_LEN_RANGE,
            Error::PinLocked => CKR_PIN_LOCKED,
            Error::UserAlreadyLoggedIn => CKR_USER_ALREADY_LOGGED_IN,
            Error::UserNotLoggedIn => CKR_USER_NOT_LOGGED_IN,
            Error::UserTypeInvalid => CKR_USER_TYPE_INVALID,
            Error::ObjectHandleInvalid => CKR_OBJECT_HANDLE_INVALID,
            Error::KeyHandleInvalid => CKR_KEY_HANDLE_INVALID,
            Error::AttributeTypeInvalid => CKR_ATTRIBUTE_TYPE_INVALID,
            Error::AttributeValueInvalid(_) => CKR_ATTRIBUTE_VALUE_INVALID,
            Error::AttributeReadOnly => CKR_ATTRIBUTE_READ_ONLY,
            Error::AttributeSensitive => CKR_ATTRIBUTE_SENSITIVE,
            Error::ActionProhibited(_) => CKR_ACTION_PROHIBITED,
            Error::TemplateIncomplete(_) => CKR_TEMPLATE_INCOMPLETE,
            Error::TemplateInconsistent(_) => CKR_TEMPLATE_INCONSISTENT,
            Error::BufferTooSmall => CKR_BUFFER_TOO_SMALL,
            Error::OperationActive => CKR_OPERATION_ACTIVE,
            Error::OperationNotInitialized => CKR_OPERATION_NOT_INITIALIZED,
            Error::MechanismInvalid => CKR_MECHANISM_INVALID,
            Error::MechanismParamInvalid(_) => CKR_MECHANISM_PARAM_INVALID,
            Error::KeyTypeInconsistent => CKR_KEY_TYPE_INCONSISTENT,
            Error::KeyFunctionNotPermitted => CKR_KEY_FUNCTION_NOT_PERMITTED,
            Error::KeySizeRange => CKR_KEY_SIZE_RANGE,
            Error::DataLenRange => CKR_DATA_LEN_RANGE,
            Error::DataInvalid => CKR_DATA_INVALID,
            Error::EncryptedDataInvalid => CKR_ENCRYPTED_DATA_INVALID,
            Error::EncryptedDataLenRange => CKR_ENCRYPTED_DATA_LEN_RANGE,
            Error::SignatureInvalid => CKR_SIGNATURE_INVALID,
            Error::SignatureLenRange => CKR_SIGNATURE_LEN_RANGE,
            Error::UnwrappingKeyHandleInvalid => CKR_UNWRAPPING_KEY_HANDLE_INVALID,
            Error::UnwrappingKeyTypeInconsistent => CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT,
            Error::WrappedKeyInvalid => CKR_WRAPPED_KEY_INVALID,
            Error::WrappedKeyLenRange => CKR_WRAPPED_KEY_LEN_RANGE,
            Error::FunctionNotSupported => CKR_FUNCTION_NOT_SUPPORTED,
            Error::RandomNoRng => CKR_RANDOM_NO_RNG,
            Error::RandomSeedNotSupported => CKR_RANDOM_SEED_NOT_SUPPORTED,
            Error::Config(_) => CKR_FUNCTION_FAILED,
            Error::Backend(_) => CKR_DEVICE_ERROR,
            Error::ObjectGone(_) => CKR_KEY_HANDLE_INVALID,
            Error::Remote(kind, _) => {
                use ServiceFailure as K;
                match kind {
                    K::Auth | K::Denied | K::BadRequest | K::Tls => CKR_FUNCTION_FAILED,
                    K::Throttled | K::Unavailable | K::Timeout => CKR_DEVICE_ERROR,
                }
            }
            Error::HostMemory => CKR_HOST_MEMORY,
            Error::Internal(_) => CKR_GENERAL_ERROR,
        }
    }

    /// Whether a failure ends the active operation. Per §5.2 only a size answer and
    /// `CKR_BUFFER_TOO_SMALL` leave it active.
    pub fn keeps_operation(&self) -> bool {
        matches!(self, Error::BufferTooSmall)
    }

    pub fn backend(context: &str, e: impl fmt::Display) -> Error {
        Error::Backend(format!("{context}: {e}"))
    }
}

/// The message a caught panic carries (`panic!` with a literal or a formatted string).
pub fn panic_text(panic: &(dyn std::any::Any + Send)) -> String {
    panic
        .downcast_ref::<&str>()
        .map(std::string::ToString::to_string)
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_default()
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Error::ArgumentsBad(what) => write!(f, "bad arguments: {what}"),
            Error::AttributeValueInvalid(m) => write!(f, "attribute value invalid: {m}"),
            Error::TemplateIncomplete(m) => write!(f, "template incomplete: {m}"),
            Error::TemplateInconsistent(m) => write!(f, "template inconsistent: {m}"),
            Error::MechanismParamInvalid(m) => write!(f, "mechanism parameter invalid: {m}"),
            Error::Config(m) => write!(f, "configuration error: {m}"),
            Error::Backend(m) => write!(f, "key store error: {m}"),
            Error::ObjectGone(m) => write!(f, "object no longer in its store: {m}"),
            Error::Remote(kind, m) => write!(f, "{m} ({kind:?}: {})", kind.advice()),
            Error::Internal(m) => write!(f, "internal error: {m}"),
            Error::ActionProhibited(m) => write!(f, "action prohibited: {m}"),
            other => write!(f, "{other:?}"),
        }
    }
}

impl std::error::Error for Error {}

impl From<openssl::error::ErrorStack> for Error {
    fn from(e: openssl::error::ErrorStack) -> Self {
        Error::Backend(format!("openssl: {e}"))
    }
}

/// The name of a return code this module gives (audit log, metrics labels).
pub fn rv_name(rv: CK_RV) -> String {
    match rv {
        CKR_OK => "CKR_OK",
        CKR_ACTION_PROHIBITED => "CKR_ACTION_PROHIBITED",
        CKR_ARGUMENTS_BAD => "CKR_ARGUMENTS_BAD",
        CKR_ATTRIBUTE_READ_ONLY => "CKR_ATTRIBUTE_READ_ONLY",
        CKR_ATTRIBUTE_SENSITIVE => "CKR_ATTRIBUTE_SENSITIVE",
        CKR_ATTRIBUTE_TYPE_INVALID => "CKR_ATTRIBUTE_TYPE_INVALID",
        CKR_ATTRIBUTE_VALUE_INVALID => "CKR_ATTRIBUTE_VALUE_INVALID",
        CKR_BUFFER_TOO_SMALL => "CKR_BUFFER_TOO_SMALL",
        CKR_CANT_LOCK => "CKR_CANT_LOCK",
        CKR_CRYPTOKI_ALREADY_INITIALIZED => "CKR_CRYPTOKI_ALREADY_INITIALIZED",
        CKR_CRYPTOKI_NOT_INITIALIZED => "CKR_CRYPTOKI_NOT_INITIALIZED",
        CKR_DATA_INVALID => "CKR_DATA_INVALID",
        CKR_DATA_LEN_RANGE => "CKR_DATA_LEN_RANGE",
        CKR_DEVICE_ERROR => "CKR_DEVICE_ERROR",
        CKR_ENCRYPTED_DATA_INVALID => "CKR_ENCRYPTED_DATA_INVALID",
        CKR_ENCRYPTED_DATA_LEN_RANGE => "CKR_ENCRYPTED_DATA_LEN_RANGE",
        CKR_FUNCTION_FAILED => "CKR_FUNCTION_FAILED",
        CKR_FUNCTION_NOT_SUPPORTED => "CKR_FUNCTION_NOT_SUPPORTED",
        CKR_GENERAL_ERROR => "CKR_GENERAL_ERROR",
        CKR_HOST_MEMORY => "CKR_HOST_MEMORY",
        CKR_KEY_FUNCTION_NOT_PERMITTED => "CKR_KEY_FUNCTION_NOT_PERMITTED",
        CKR_KEY_HANDLE_INVALID => "CKR_KEY_HANDLE_INVALID",
        CKR_KEY_SIZE_RANGE => "CKR_KEY_SIZE_RANGE",
        CKR_KEY_TYPE_INCONSISTENT => "CKR_KEY_TYPE_INCONSISTENT",
        CKR_MECHANISM_INVALID => "CKR_MECHANISM_INVALID",
        CKR_MECHANISM_PARAM_INVALID => "CKR_MECHANISM_PARAM_INVALID",
        CKR_NEED_TO_CREATE_THREADS => "CKR_NEED_TO_CREATE_THREADS",
        CKR_OBJECT_HANDLE_INVALID => "CKR_OBJECT_HANDLE_INVALID",
        CKR_OPERATION_ACTIVE => "CKR_OPERATION_ACTIVE",
        CKR_OPERATION_NOT_INITIALIZED => "CKR_OPERATION_NOT_INITIALIZED",
        CKR_PIN_INCORRECT => "CKR_PIN_INCORRECT",
        CKR_PIN_LEN_RANGE => "CKR_PIN_LEN_RANGE",
        CKR_PIN_LOCKED => "CKR_PIN_LOCKED",
        CKR_RANDOM_NO_RNG => "CKR_RANDOM_NO_RNG",
        CKR_RANDOM_SEED_NOT_SUPPORTED => "CKR_RANDOM_SEED_NOT_SUPPORTED",
        CKR_SESSION_HANDLE_INVALID => "CKR_SESSION_HANDLE_INVALID",
        CKR_SESSION_PARALLEL_NOT_SUPPORTED => "CKR_SESSION_PARALLEL_NOT_SUPPORTED",
        CKR_SESSION_READ_ONLY => "CKR_SESSION_READ_ONLY",
        CKR_SESSION_READ_WRITE_SO_EXISTS => "CKR_SESSION_READ_WRITE_SO_EXISTS",
        CKR_SIGNATURE_INVALID => "CKR_SIGNATURE_INVALID",
        CKR_SIGNATURE_LEN_RANGE => "CKR_SIGNATURE_LEN_RANGE",
        CKR_SLOT_ID_INVALID => "CKR_SLOT_ID_INVALID",
        CKR_TEMPLATE_INCOMPLETE => "CKR_TEMPLATE_INCOMPLETE",
        CKR_TEMPLATE_INCONSISTENT => "CKR_TEMPLATE_INCONSISTENT",
        CKR_TOKEN_NOT_PRESENT => "CKR_TOKEN_NOT_PRESENT",
        CKR_TOKEN_WRITE_PROTECTED => "CKR_TOKEN_WRITE_PROTECTED",
        CKR_UNWRAPPING_KEY_HANDLE_INVALID => "CKR_UNWRAPPING_KEY_HANDLE_INVALID",
        CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT => "CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT",
        CKR_USER_ALREADY_LOGGED_IN => "CKR_USER_ALREADY_LOGGED_IN",
        CKR_USER_NOT_LOGGED_IN => "CKR_USER_NOT_LOGGED_IN",
        CKR_USER_TYPE_INVALID => "CKR_USER_TYPE_INVALID",
        CKR_WRAPPED_KEY_INVALID => "CKR_WRAPPED_KEY_INVALID",
        CKR_WRAPPED_KEY_LEN_RANGE => "CKR_WRAPPED_KEY_LEN_RANGE",
        other => return format!("CKR_{other:#x}"),
    }
    .to_string()
}

/// The causes of `e`, outermost first, joined by ": " (libraries often put the useful part,
/// e.g. "certificate verify failed", only in a source).
pub(crate) fn source_chain(e: &(dyn std::error::Error + 'static)) -> String {
    let mut out = Vec::new();
    let mut cur = e.source();
    while let Some(s) = cur {
        out.push(s.to_string());
        cur = s.source();
    }
    out.join(": ")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every variant, with the code the specification gives it. Adding a variant without
    /// extending this list fails `all_variants_listed` below via the match.
    fn table() -> Vec<(Error, CK_RV)> {
        let s = || String::from("x");
        vec![
            (Error::NotInitialized, CKR_CRYPTOKI_NOT_INITIALIZED),
            (Error::AlreadyInitialized, CKR_CRYPTOKI_ALREADY_INITIALIZED),
            (Error::NeedToCreateThreads, CKR_NEED_TO_CREATE_THREADS),
            (Error::CantLock, CKR_CANT_LOCK),
            (Error::ArgumentsBad("x"), CKR_ARGUMENTS_BAD),
            (Error::SlotIdInvalid, CKR_SLOT_ID_INVALID),
            (Error::TokenNotPresent, CKR_TOKEN_NOT_PRESENT),
            (Error::TokenWriteProtected, CKR_TOKEN_WRITE_PROTECTED),
            (Error::SessionHandleInvalid, CKR_SESSION_HANDLE_INVALID),
            (
                Error::SessionParallelNotSupported,
                CKR_SESSION_PARALLEL_NOT_SUPPORTED,
            ),
            (Error::SessionReadOnly, CKR_SESSION_READ_ONLY),
            (
                Error::SessionReadWriteSoExists,
                CKR_SESSION_READ_WRITE_SO_EXISTS,
            ),
            (Error::PinIncorrect, CKR_PIN_INCORRECT),
            (Error::PinLenRange, CKR_PIN_LEN_RANGE),
            (Error::PinLocked, CKR_PIN_LOCKED),
            (Error::UserAlreadyLoggedIn, CKR_USER_ALREADY_LOGGED_IN),
            (Error::UserNotLoggedIn, CKR_USER_NOT_LOGGED_IN),
            (Error::UserTypeInvalid, CKR_USER_TYPE_INVALID),
            (Error::ObjectHandleInvalid, CKR_OBJECT_HANDLE_INVALID),
            (Error::KeyHandleInvalid, CKR_KEY_HANDLE_INVALID),
            (Error::AttributeTypeInvalid, CKR_ATTRIBUTE_TYPE_INVALID),
            (
                Error::AttributeValueInvalid(s()),
                CKR_ATTRIBUTE_VALUE_INVALID,
            ),
            (Error::AttributeReadOnly, CKR_ATTRIBUTE_READ_ONLY),
            (Error::AttributeSensitive, CKR_ATTRIBUTE_SENSITIVE),
            (Error::ActionProhibited(s()), CKR_ACTION_PROHIBITED),
            (Error::TemplateIncomplete("x"), CKR_TEMPLATE_INCOMPLETE),
            (Error::TemplateInconsistent(s()), CKR_TEMPLATE_INCONSISTENT),
            (Error::BufferTooSmall, CKR_BUFFER_TOO_SMALL),
            (Error::OperationActive, CKR_OPERATION_ACTIVE),
            (
                Error::OperationNotInitialized,
                CKR_OPERATION_NOT_INITIALIZED,
            ),
            (Error::MechanismInvalid, CKR_MECHANISM_INVALID),
            (
                Error::MechanismParamInvalid(s()),
                CKR_MECHANISM_PARAM_INVALID,
            ),
            (Error::KeyTypeInconsistent, CKR_KEY_TYPE_INCONSISTENT),
            (
                Error::KeyFunctionNotPermitted,
                CKR_KEY_FUNCTION_NOT_PERMITTED,
            ),
            (Error::KeySizeRange, CKR_KEY_SIZE_RANGE),
            (Error::DataLenRange, CKR_DATA_LEN_RANGE),
            (Error::DataInvalid, CKR_DATA_INVALID),
            (Error::EncryptedDataInvalid, CKR_ENCRYPTED_DATA_INVALID),
            (Error::EncryptedDataLenRange, CKR_ENCRYPTED_DATA_LEN_RANGE),
            (Error::SignatureInvalid, CKR_SIGNATURE_INVALID),
            (Error::SignatureLenRange, CKR_SIGNATURE_LEN_RANGE),
            (
                Error::UnwrappingKeyHandleInvalid,
                CKR_UNWRAPPING_KEY_HANDLE_INVALID,
            ),
            (
                Error::UnwrappingKeyTypeInconsistent,
                CKR_UNWRAPPING_KEY_TYPE_INCONSISTENT,
            ),
            (Error::WrappedKeyInvalid, CKR_WRAPPED_KEY_INVALID),
            (Error::WrappedKeyLenRange, CKR_WRAPPED_KEY_LEN_RANGE),
            (Error::FunctionNotSupported, CKR_FUNCTION_NOT_SUPPORTED),
            (Error::RandomNoRng, CKR_RANDOM_NO_RNG),
            (Error::RandomSeedNotSupported, CKR_RANDOM_SEED_NOT_SUPPORTED),
            (Error::Config(s()), CKR_FUNCTION_FAILED),
            (Error::Backend(s()), CKR_DEVICE_ERROR),
            (Error::ObjectGone(s()), CKR_KEY_HANDLE_INVALID),
            (
                Error::Remote(ServiceFailure::Auth, s()),
                CKR_FUNCTION_FAILED,
            ),
            (
                Error::Remote(ServiceFailure::Denied, s()),
                CKR_FUNCTION_FAILED,
            ),
            (
                Error::Remote(ServiceFailure::BadRequest, s()),
                CKR_FUNCTION_FAILED,
            ),
            (Error::Remote(ServiceFailure::Tls, s()), CKR_FUNCTION_FAILED),
            (
                Error::Remote(ServiceFailure::Throttled, s()),
                CKR_DEVICE_ERROR,
            ),
            (
                Error::Remote(ServiceFailure::Unavailable, s()),
                CKR_DEVICE_ERROR,
            ),
            (
                Error::Remote(ServiceFailure::Timeout, s()),
                CKR_DEVICE_ERROR,
            ),
            (Error::HostMemory, CKR_HOST_MEMORY),
            (Error::Internal(s()), CKR_GENERAL_ERROR),
        ]
    }

    #[test]
    fn every_code_has_its_name() {
        for (e, rv) in table() {
            assert!(
                rv_name(rv).starts_with("CKR_") && !rv_name(rv).starts_with("CKR_0x"),
                "{e:?}"
            );
        }
        assert_eq!(rv_name(CKR_OK), "CKR_OK");
        assert_eq!(rv_name(CKR_DEVICE_ERROR), "CKR_DEVICE_ERROR");
    }

    #[test]
    fn every_variant_maps_to_its_code() {
        for (e, rv) in table() {
            assert_eq!(e.rv(), rv, "{e:?}");
            assert_ne!(e.rv(), CKR_OK, "{e:?} must not map to CKR_OK");
        }
    }

    #[test]
    fn all_variants_listed() {
        // A match without a wildcard: a new variant does not compile until it is added
        // here, and then to `table()` (the count below).
        fn index(e: &Error) -> usize {
            match e {
                Error::NotInitialized => 0,
                Error::AlreadyInitialized => 1,
                Error::NeedToCreateThreads => 2,
                Error::CantLock => 3,
                Error::ArgumentsBad(_) => 4,
                Error::SlotIdInvalid => 5,
                Error::TokenNotPresent => 6,
                Error::TokenWriteProtected => 7,
                Error::SessionHandleInvalid => 8,
                Error::SessionParallelNotSupported => 9,
                Error::SessionReadOnly => 10,
                Error::SessionReadWriteSoExists => 11,
                Error::PinIncorrect => 12,
                Error::PinLenRange => 13,
                Error::UserAlreadyLoggedIn => 14,
                Error::UserNotLoggedIn => 15,
                Error::UserTypeInvalid => 16,
                Error::ObjectHandleInvalid => 17,
                Error::KeyHandleInvalid => 18,
                Error::AttributeTypeInvalid => 19,
                Error::AttributeValueInvalid(_) => 20,
                Error::AttributeReadOnly => 21,
                Error::AttributeSensitive => 22,
                Error::TemplateIncomplete(_) => 23,
                Error::TemplateInconsistent(_) => 24,
                Error::BufferTooSmall => 25,
                Error::OperationActive => 26,
                Error::OperationNotInitialized => 27,
                Error::MechanismInvalid => 28,
                Error::MechanismParamInvalid(_) => 29,
                Error::KeyTypeInconsistent => 30,
                Error::KeyFunctionNotPermitted => 31,
                Error::KeySizeRange => 32,
                Error::DataLenRange => 33,
                Error::DataInvalid => 34,
                Error::EncryptedDataInvalid => 35,
                Error::EncryptedDataLenRange => 36,
                Error::SignatureInvalid => 37,
                Error::SignatureLenRange => 38,
                Error::FunctionNotSupported => 39,
                Error::RandomNoRng => 40,
                Error::Config(_) => 41,
                Error::Backend(_) => 42,
                Error::ObjectGone(_) => 43,
                Error::HostMemory => 44,
                Error::Internal(_) => 45,
                Error::ActionProhibited(_) => 46,
                Error::RandomSeedNotSupported => 47,
                Error::Remote(..) => 48,
                Error::UnwrappingKeyHandleInvalid => 49,
                Error::UnwrappingKeyTypeInconsistent => 50,
                Error::WrappedKeyInvalid => 51,
                Error::WrappedKeyLenRange => 52,
                Error::PinLocked => 53,
            }
        }
        let t = table();
        let mut seen: Vec<usize> = t.iter().map(|(e, _)| index(e)).collect();
        seen.sort_unstable();
        seen.dedup();
        assert_eq!(seen, (0..54).collect::<Vec<_>>());
    }

    #[test]
    fn only_buffer_too_small_keeps_the_operation() {
        for (e, _) in table() {
            assert_eq!(e.keeps_operation(), e == Error::BufferTooSmall, "{e:?}");
        }
    }
}
