//! The directory store's tests: listing, PKCS#12/PEM pairing, writes, private-key operations.

use super::*;

fn backend(dir: &Path) -> DirectoryBackend {
    DirectoryBackend::new(DirectoryConfig {
        path: dir.to_owned(),
        pkcs12_password: None,
        writable: true,
    })
}

#[test]
fn generate_list_update_delete() {
    let dir = tempfile::tempdir().unwrap();
    let b = backend(dir.path());
    let rec = b
        .generate_key(
            "my key/1",
            &KeySpec::Ec(Curve::P256),
            &ObjectUpdate {
                label: Some("my key/1".into()),
                id: Some(vec![1, 2]),
            },
            KeyUsage::ALL,
        )
        .unwrap();
    assert_eq!(rec.name, "my_key_1");
    assert_eq!(rec.label.as_deref(), Some("my key/1"));
    assert_eq!(rec.id, Some(vec![1, 2]));
    assert!(rec.local);
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join("my_key_1.key.pem"))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let listing = b.list().unwrap();
    assert_eq!(listing.keys, vec![rec.clone()]);
    let sig = b
        .sign(&rec, &SignRequest::Ecdsa { curve: Curve::P256 }, &[7u8; 32])
        .unwrap();
    assert_eq!(sig.len(), 64);

    b.update(
        &rec.stable_id,
        &ObjectUpdate {
            label: Some("renamed".into()),
            id: None,
        },
    )
    .unwrap();
    let listing = b.list().unwrap();
    assert_eq!(listing.keys[0].label.as_deref(), Some("renamed"));
    assert_eq!(listing.keys[0].id, Some(vec![1, 2]));

    b.delete_key(&rec.stable_id).unwrap();
    assert!(b.list().unwrap().keys.is_empty());
    assert!(matches!(
        b.sign(&rec, &SignRequest::Ecdsa { curve: Curve::P256 }, &[7u8; 32]),
        Err(Error::ObjectGone(_))
    ));
}

#[test]
fn read_only_store_refuses_writes() {
    let dir = tempfile::tempdir().unwrap();
    let b = DirectoryBackend::new(DirectoryConfig {
        path: dir.path().to_owned(),
        pkcs12_password: None,
        writable: false,
    });
    let e = b
        .generate_key(
            "k",
            &KeySpec::Ec(Curve::P256),
            &ObjectUpdate::default(),
            KeyUsage::ALL,
        )
        .unwrap_err();
    assert_eq!(e, Error::TokenWriteProtected);
}

#[test]
fn broken_files_are_skipped_not_fatal() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("bad.key.pem"), b"not a key").unwrap();
    fs::write(
        dir.path().join("bad2.crt.pem"),
        b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n",
    )
    .unwrap();
    let b = backend(dir.path());
    b.generate_key(
        "good",
        &KeySpec::Ec(Curve::P384),
        &ObjectUpdate::default(),
        KeyUsage::ALL,
    )
    .unwrap();
    let listing = b.list().unwrap();
    assert_eq!(listing.keys.len(), 1);
    assert_eq!(listing.keys[0].name, "good");
}

fn self_signed(key: &PKey<Private>, cn: &str) -> Vec<u8> {
    let mut name = openssl::x509::X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = openssl::x509::X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    b.set_issuer_name(&name).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    b.sign(key, openssl::hash::MessageDigest::sha256()).unwrap();
    b.build().to_der().unwrap()
}

#[test]
fn concurrent_generation_with_one_label_loses_no_key() {
    let dir = tempfile::tempdir().unwrap();
    let b = std::sync::Arc::new(backend(dir.path()));
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let b = b.clone();
            std::thread::spawn(move || {
                (0..5)
                    .map(|_| {
                        b.generate_key(
                            "same",
                            &KeySpec::Ec(Curve::P256),
                            &ObjectUpdate::default(),
                            KeyUsage::ALL,
                        )
                        .unwrap()
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let made: Vec<KeyRecord> = threads
        .into_iter()
        .flat_map(|t| t.join().unwrap())
        .collect();
    let listed = b.list().unwrap().keys;
    assert_eq!(listed.len(), 20);
    for k in made {
        assert!(listed.contains(&k), "{} was overwritten", k.name);
    }
}

#[test]
fn a_second_certificate_never_replaces_the_first() {
    let dir = tempfile::tempdir().unwrap();
    let b = backend(dir.path());
    let rec = b
        .generate_key(
            "k",
            &KeySpec::Ec(Curve::P256),
            &ObjectUpdate::default(),
            KeyUsage::ALL,
        )
        .unwrap();
    let pkey = b.private_key(&rec).unwrap();
    let first = b
        .store_certificate(
            &self_signed(&pkey, "one"),
            Some(&rec),
            &ObjectUpdate::default(),
        )
        .unwrap();
    let second = b
        .store_certificate(
            &self_signed(&pkey, "two"),
            Some(&rec),
            &ObjectUpdate::default(),
        )
        .unwrap();
    let certs = b.list().unwrap().certificates;
    assert_eq!(certs.len(), 2);
    assert!(certs.contains(&first) && certs.contains(&second));
    // Deleting one by id removes that one only.
    b.delete_certificate(&first.stable_id).unwrap();
    assert_eq!(b.list().unwrap().certificates, vec![second]);
}

// Windows file names cannot hold a colon.
#[cfg(unix)]
#[test]
fn colons_in_file_names_do_not_confuse_ids() {
    let dir = tempfile::tempdir().unwrap();
    let b = backend(dir.path());
    let a = b
        .generate_key(
            "a",
            &KeySpec::Ec(Curve::P256),
            &ObjectUpdate::default(),
            KeyUsage::ALL,
        )
        .unwrap();
    // A file placed by hand, named with a colon.
    let other = PKey::from_ec_key(
        EcKey::generate(&EcGroup::from_curve_name(Curve::P256.nid()).unwrap()).unwrap(),
    )
    .unwrap();
    fs::write(
        dir.path().join("a:b.key.pem"),
        other.private_key_to_pem_pkcs8().unwrap(),
    )
    .unwrap();
    let listed = b.list().unwrap().keys;
    let colon = listed.iter().find(|k| k.name == "a:b").unwrap().clone();
    assert_eq!(
        ObjectId::parse(&colon.stable_id).unwrap(),
        ObjectId::Key {
            stem: "a:b",
            hash: &colon.stable_id["key:a:b:".len()..]
        }
    );
    b.delete_key(&colon.stable_id).unwrap();
    let left = b.list().unwrap().keys;
    assert_eq!(left, vec![a], "deleting a:b must not touch a");
}

#[test]
fn chain_certificates_cannot_be_relabelled() {
    let dir = tempfile::tempdir().unwrap();
    let b = backend(dir.path());
    let k1 = PKey::from_ec_key(
        EcKey::generate(&EcGroup::from_curve_name(Curve::P256.nid()).unwrap()).unwrap(),
    )
    .unwrap();
    let k2 = PKey::from_ec_key(
        EcKey::generate(&EcGroup::from_curve_name(Curve::P256.nid()).unwrap()).unwrap(),
    )
    .unwrap();
    let mut pem = X509::from_der(&self_signed(&k1, "leaf"))
        .unwrap()
        .to_pem()
        .unwrap();
    pem.extend(
        X509::from_der(&self_signed(&k2, "ca"))
            .unwrap()
            .to_pem()
            .unwrap(),
    );
    fs::write(dir.path().join("c.crt.pem"), pem).unwrap();
    let certs = b.list().unwrap().certificates;
    let chain = certs.iter().find(|c| c.label == "c/chain1").unwrap();
    let relabel = ObjectUpdate {
        label: Some("NEW".into()),
        id: None,
    };
    assert!(matches!(
        b.update(&chain.stable_id, &relabel),
        Err(Error::ActionProhibited(_))
    ));
    b.update(&certs[0].stable_id, &relabel).unwrap();
    let labels: Vec<String> = b
        .list()
        .unwrap()
        .certificates
        .into_iter()
        .map(|c| c.label)
        .collect();
    assert_eq!(labels, vec!["NEW".to_string(), "c/chain1".to_string()]);
}

#[test]
fn refused_uses_are_kept() {
    let dir = tempfile::tempdir().unwrap();
    let b = backend(dir.path());
    let usage = KeyUsage {
        sign: true,
        decrypt: false,
        unwrap: false,
    };
    let rec = b
        .generate_key(
            "s",
            &KeySpec::Rsa {
                bits: 2048,
                public_exponent: vec![1, 0, 1],
            },
            &ObjectUpdate::default(),
            usage,
        )
        .unwrap();
    assert_eq!(rec.usage, usage);
    assert_eq!(b.list().unwrap().keys[0].usage, usage);
}

#[test]
fn sanitize_names() {
    assert_eq!(sanitize("../etc/passwd"), "_etc_passwd");
    assert_eq!(sanitize(""), "key");
}
