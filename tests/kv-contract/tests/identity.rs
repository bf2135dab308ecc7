//! The official `azure_identity` credentials against the emulator's token endpoints.

use std::sync::Arc;

use azure_core::credentials::{SecretBytes, TokenCredential};
use azure_identity::{
    ClientAssertionCredentialOptions, ClientCertificateCredential,
    ClientCertificateCredentialOptions, ManagedIdentityCredential,
    ManagedIdentityCredentialOptions, WorkloadIdentityCredential,
    WorkloadIdentityCredentialOptions,
};
use kv_contract::Emulator;

async fn can_read_seeded_key(emu: &Emulator, credential: Arc<dyn TokenCredential>) {
    let client = emu.key_client_with(false, credential);
    let key = client
        .get_key("rsa2048", None)
        .await
        .expect("get_key with this credential")
        .into_model()
        .unwrap();
    assert!(key.key.unwrap().kid.unwrap().contains("/keys/rsa2048/"));
}

#[tokio::test]
async fn client_certificate_credential() {
    let emu = Emulator::from_env();
    let pfx = std::fs::read(emu.get("client_certificate_pfx")).expect("client PFX");
    let options = ClientCertificateCredentialOptions {
        client_options: emu.client_options(),
        ..Default::default()
    };
    let cred = ClientCertificateCredential::new(
        emu.get("tenant_id"),
        emu.get("client_id"),
        SecretBytes::new(pfx),
        Some(options),
    )
    .expect("ClientCertificateCredential");
    can_read_seeded_key(&emu, cred).await;
}

#[tokio::test]
async fn workload_identity_credential() {
    let emu = Emulator::from_env();
    let options = WorkloadIdentityCredentialOptions {
        credential_options: ClientAssertionCredentialOptions {
            client_options: emu.client_options(),
        },
        client_id: Some(emu.get("client_id")),
        tenant_id: Some(emu.get("tenant_id")),
        token_file_path: Some(emu.get("federated_token_file").into()),
    };
    let cred = WorkloadIdentityCredential::new(Some(options)).expect("WorkloadIdentityCredential");
    can_read_seeded_key(&emu, cred).await;
}

#[tokio::test]
async fn managed_identity_credential_app_service() {
    let emu = Emulator::from_env();
    // ManagedIdentityCredential reads IDENTITY_ENDPOINT / IDENTITY_HEADER from the process
    // environment only; ci.sh exports them from the ready file.
    assert_eq!(
        std::env::var("IDENTITY_ENDPOINT").ok(),
        Some(emu.get("identity_endpoint")),
        "export IDENTITY_ENDPOINT and IDENTITY_HEADER from the ready file (ci.sh does)"
    );
    let options = ManagedIdentityCredentialOptions {
        client_options: emu.client_options(),
        ..Default::default()
    };
    let cred = ManagedIdentityCredential::new(Some(options)).expect("ManagedIdentityCredential");
    can_read_seeded_key(&emu, cred).await;
}

#[tokio::test]
async fn wrong_secret_is_refused() {
    let emu = Emulator::from_env();
    let cred = emu.secret_credential(&emu.get("client_id"), "not-the-secret");
    let err = cred
        .get_token(&[&format!("{}/.default", emu.get("vault_resource"))], None)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("AADSTS7000215"), "{err}");
}
