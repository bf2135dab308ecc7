//! Key Vault / Managed HSM answer bodies into the backend's decoding: key bundles (JWK
//! n/e/crv/x/y, kid, key_ops, attributes, tags) into key records, list pages (ids,
//! attributes, tags, nextLink), certificate bundles (cer into certificate attributes), and
//! error bodies through the service → module error table (src/backend/azure/errors.rs).
#![no_main]

use identify_pkcs11::fuzzing;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the decoder, so that each seed lands where it was recorded;
    // the error table also takes a status from the second and third bytes.
    let Some((&which, body)) = data.split_first() else {
        return;
    };
    match which % 4 {
        0 => fuzzing::key_bundle(body),
        1 => fuzzing::key_page(body),
        2 => fuzzing::certificate_bundle(body),
        _ => {
            let (status, body) = match body {
                [a, b, rest @ ..] => (u16::from_be_bytes([*a, *b]), rest),
                _ => (0, body),
            };
            fuzzing::error_body(status, body);
        }
    }
});
