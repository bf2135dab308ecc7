//! The official `azure_security_keyvault_certificates` crate against kv-emulator.

use azure_security_keyvault_certificates::models::{
    CertificatePolicy, CreateCertificateParameters, ImportCertificateParameters, IssuerParameters,
    X509CertificateProperties,
};
use azure_security_keyvault_keys::models::{SignParameters, SignatureAlgorithm};
use base64::Engine;
use kv_contract::{Emulator, unique, version_of};
use openssl::hash::{MessageDigest, hash};
use openssl::sign::Verifier;
use openssl::x509::X509;

#[tokio::test]
async fn self_signed_certificate_is_created_and_linked_to_a_managed_key() {
    let emu = Emulator::from_env();
    let client = emu.certificate_client();
    let name = unique("rs-cert");
    let policy = CertificatePolicy {
        issuer_parameters: Some(IssuerParameters {
            name: Some("Self".into()),
            ..Default::default()
        }),
        x509_certificate_properties: Some(X509CertificateProperties {
            subject: Some("CN=contract".into()),
            ..Default::default()
        }),
        ..Default::default()
    };
    let params = CreateCertificateParameters {
        certificate_policy: Some(policy),
        ..Default::default()
    };
    let cert = client
        .begin_create_certificate(&name, params.try_into().unwrap(), None)
        .unwrap()
        .await
        .unwrap()
        .into_model()
        .unwrap();
    let id = cert.id.clone().unwrap();
    let version = version_of(&id);
    assert_eq!(version_of(cert.kid.as_ref().unwrap()), version);
    assert_eq!(version_of(cert.sid.as_ref().unwrap()), version);
    let der = cert.cer.unwrap();
    let x509 = X509::from_der(&der).expect("cer is DER");
    assert_eq!(
        cert.x509_thumbprint.unwrap(),
        hash(MessageDigest::sha1(), &der).unwrap().to_vec()
    );
    assert!(format!("{:?}", x509.subject_name()).contains("contract"));

    // The key of the certificate signs, and the certificate's public key verifies it.
    let keys = emu.key_client(false);
    let key = keys
        .get_key(&name, None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(key.managed, Some(true));
    let digest = hash(MessageDigest::sha256(), b"certificate key")
        .unwrap()
        .to_vec();
    let params = SignParameters {
        algorithm: Some(SignatureAlgorithm::Rs256),
        value: Some(digest),
    };
    let sig = keys
        .sign(&name, params.try_into().unwrap(), None)
        .await
        .unwrap()
        .into_model()
        .unwrap()
        .result
        .unwrap();
    let public = x509.public_key().unwrap();
    let mut v = Verifier::new(MessageDigest::sha256(), &public).unwrap();
    v.update(b"certificate key").unwrap();
    assert!(v.verify(&sig).unwrap());
}

#[tokio::test]
async fn pfx_import_keeps_the_key() {
    let emu = Emulator::from_env();
    let client = emu.certificate_client();
    let name = unique("rs-pfx");
    let key = openssl::pkey::PKey::from_rsa(openssl::rsa::Rsa::generate(2048).unwrap()).unwrap();
    let mut nb = openssl::x509::X509NameBuilder::new().unwrap();
    nb.append_entry_by_text("CN", "imported").unwrap();
    let subject = nb.build();
    let mut b = openssl::x509::X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&subject).unwrap();
    b.set_issuer_name(&subject).unwrap();
    b.set_pubkey(&key).unwrap();
    let (nbf, naf) = (
        openssl::asn1::Asn1Time::days_from_now(0).unwrap(),
        openssl::asn1::Asn1Time::days_from_now(30).unwrap(),
    );
    b.set_not_before(&nbf).unwrap();
    b.set_not_after(&naf).unwrap();
    b.sign(&key, MessageDigest::sha256()).unwrap();
    let cert = b.build();
    let pfx = openssl::pkcs12::Pkcs12::builder()
        .pkey(&key)
        .cert(&cert)
        .build2("pfx-pass")
        .unwrap()
        .to_der()
        .unwrap();
    let params = ImportCertificateParameters {
        base64_encoded_certificate: Some(base64::engine::general_purpose::STANDARD.encode(pfx)),
        password: Some("pfx-pass".into()),
        ..Default::default()
    };
    let imported = client
        .import_certificate(&name, params.try_into().unwrap(), None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(imported.cer.unwrap(), cert.to_der().unwrap());
    let keys = emu.key_client(false);
    let k = keys
        .get_key(&name, None)
        .await
        .unwrap()
        .into_model()
        .unwrap();
    assert_eq!(k.key.unwrap().n.unwrap(), key.rsa().unwrap().n().to_vec());
}
