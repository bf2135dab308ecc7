//! How the Rust SDK meets the service's failure answers through the emulator: 429 with
//! Retry-After, a 503, a connection reset, disabled keys, and RSNULL. The faults are
//! global, so everything runs in one test, in order.

use std::time::{Duration, Instant};

use azure_security_keyvault_keys::models::{
    CreateKeyParameters, KeyAttributes, KeyType, SignParameters, SignatureAlgorithm,
    UpdateKeyPropertiesParameters,
};
use kv_contract::{Emulator, serde_json::json, unique};
use openssl::hash::{MessageDigest, hash};
use reqwest::Method;

fn count(stats: &kv_contract::serde_json::Value, group: &str, name: &str) -> u64 {
    stats[group][name].as_u64().unwrap_or(0)
}

#[tokio::test]
async fn sdk_behaviour_under_faults_and_refusals() {
    let emu = Emulator::from_env();
    let client = emu.key_client(false);
    assert_eq!(
        emu.admin_send(Method::DELETE, "/faults", json!({})).await,
        200
    );
    let digest = hash(MessageDigest::sha256(), b"behaviour")
        .unwrap()
        .to_vec();
    let sign = |alg: SignatureAlgorithm, value: Vec<u8>| SignParameters {
        algorithm: Some(alg),
        value: Some(value),
    };
    // Warm up: challenge and token.
    client
        .sign(
            "rsa2048",
            sign(SignatureAlgorithm::Rs256, digest.clone())
                .try_into()
                .unwrap(),
            None,
        )
        .await
        .unwrap();

    // 429 with Retry-After: 1 → the SDK waits and retries.
    assert_eq!(
        emu.admin_send(Method::POST, "/stats/reset", json!({}))
            .await,
        200
    );
    let shot = json!({"operation": "sign", "status": 429, "retry_after_s": 1});
    assert_eq!(
        emu.admin_send(Method::POST, "/faults/once", shot).await,
        200
    );
    let t0 = Instant::now();
    client
        .sign(
            "rsa2048",
            sign(SignatureAlgorithm::Rs256, digest.clone())
                .try_into()
                .unwrap(),
            None,
        )
        .await
        .unwrap();
    assert!(
        t0.elapsed() >= Duration::from_millis(900),
        "the SDK honoured Retry-After"
    );
    let stats = emu.admin_get("/stats").await;
    assert_eq!(count(&stats, "by_operation", "sign"), 2);
    assert_eq!(count(&stats, "by_status", "429"), 1);

    // 503 then a connection reset: retried by the SDK's default policy.
    let shots =
        json!([{"operation": "get_key", "status": 503}, {"operation": "get_key", "reset": true}]);
    assert_eq!(
        emu.admin_send(Method::POST, "/faults/once", shots).await,
        200
    );
    client
        .get_key("rsa2048", None)
        .await
        .expect("retried through 503 and a reset");
    let stats = emu.admin_get("/stats").await;
    assert_eq!(count(&stats, "by_operation", "get_key"), 3);
    assert_eq!(count(&stats, "by_status", "reset"), 1);

    // RSNULL signs the DigestInfo the client built: the same bytes as RS256.
    let mut info = vec![
        0x30, 0x31, 0x30, 0x0d, 0x06, 0x09, 0x60, 0x86, 0x48, 0x01, 0x65, 0x03, 0x04, 0x02, 0x01,
        0x05, 0x00, 0x04, 0x20,
    ];
    info.extend_from_slice(&digest);
    let raw = client
        .sign(
            "rsa2048",
            sign(SignatureAlgorithm::Rsnull, info).try_into().unwrap(),
            None,
        )
        .await
        .unwrap();
    let rs = client
        .sign(
            "rsa2048",
            sign(SignatureAlgorithm::Rs256, digest.clone())
                .try_into()
                .unwrap(),
            None,
        )
        .await
        .unwrap();
    assert_eq!(
        raw.into_model().unwrap().result,
        rs.into_model().unwrap().result
    );

    // A disabled key: GET and sign are 403 Forbidden.
    let name = unique("rs-disabled");
    let params = CreateKeyParameters {
        kty: Some(KeyType::Ec),
        ..Default::default()
    };
    client
        .create_key(&name, params.try_into().unwrap(), None)
        .await
        .unwrap();
    let update = UpdateKeyPropertiesParameters {
        key_attributes: Some(KeyAttributes {
            enabled: Some(false),
            ..Default::default()
        }),
        ..Default::default()
    };
    client
        .update_key_properties(&name, update.try_into().unwrap(), None)
        .await
        .unwrap();
    let err = client.get_key(&name, None).await.unwrap_err();
    assert_eq!(err.http_status().map(u16::from), Some(403), "{err}");
    let err = client
        .sign(
            &name,
            sign(SignatureAlgorithm::Es256, digest).try_into().unwrap(),
            None,
        )
        .await
        .unwrap_err();
    assert_eq!(err.http_status().map(u16::from), Some(403), "{err}");
    assert_eq!(
        emu.admin_send(Method::DELETE, "/faults", json!({})).await,
        200
    );
}
