//! The object cache's tests: stable handles, refresh races, logout, private objects, queries.

use super::*;
use crate::backend::directory::{DirectoryBackend, DirectoryConfig};
use crate::backend::{CertRecord, KeySpec, KeyUsage, ObjectUpdate};
use crate::crypto::Curve;
use std::sync::Mutex;

fn cache(dir: &std::path::Path, login_required: bool) -> (ObjectCache, Arc<DirectoryBackend>) {
    let b = Arc::new(DirectoryBackend::new(DirectoryConfig {
        path: dir.to_owned(),
        pkcs12_password: None,
        writable: true,
    }));
    let c = ObjectCache::new(vec![SlotStore {
        backend: b.clone() as Arc<dyn Backend>,
        ttl: Duration::from_secs(60),
        login_required,
    }]);
    (c, b)
}

#[test]
fn handles_are_stable_across_refreshes_and_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let (c, b) = cache(dir.path(), false);
    let k = b
        .generate_key(
            "a",
            &KeySpec::Ec(Curve::P256),
            &ObjectUpdate::default(),
            KeyUsage::ALL,
        )
        .unwrap();
    let first = c.find(0, &[], true).unwrap();
    assert_eq!(first.len(), 2);
    c.refresh(0, true).unwrap();
    assert_eq!(c.find(0, &[], true).unwrap(), first);
    b.delete_key(&k.stable_id).unwrap();
    c.refresh(0, true).unwrap();
    assert!(c.find(0, &[], true).unwrap().is_empty());
    for h in &first {
        assert_eq!(c.get(*h, |_| true).unwrap_err(), Error::ObjectHandleInvalid);
    }
    b.generate_key(
        "b",
        &KeySpec::Ec(Curve::P256),
        &ObjectUpdate::default(),
        KeyUsage::ALL,
    )
    .unwrap();
    c.refresh(0, true).unwrap();
    let second = c.find(0, &[], true).unwrap();
    assert!(
        second.iter().all(|h| !first.contains(h)),
        "{first:?} {second:?}"
    );
    assert!(second.iter().all(|h| *h != CK_INVALID_HANDLE));
}

/// A store whose listing can be held after it has read the directory, to let a write
/// and a forced refresh overtake it; it counts its listings, each taking `delay`.
struct HeldListing {
    inner: DirectoryBackend,
    hold: Mutex<Option<std::sync::mpsc::Receiver<()>>>,
    lists: std::sync::atomic::AtomicU32,
    delay: Duration,
}

impl Backend for HeldListing {
    fn kind(&self) -> &'static str {
        "held"
    }
    fn writable(&self) -> bool {
        true
    }
    fn list(&self) -> Result<Listing> {
        self.lists.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        std::thread::sleep(self.delay);
        let listing = self.inner.list();
        let held = self.hold.lock().unwrap().take();
        if let Some(rx) = held {
            rx.recv().unwrap();
        }
        listing
    }
    fn sign(&self, k: &KeyRecord, r: &crate::crypto::SignRequest, d: &[u8]) -> Result<Vec<u8>> {
        self.inner.sign(k, r, d)
    }
    fn decrypt(
        &self,
        k: &KeyRecord,
        r: &crate::crypto::DecryptRequest,
        d: &[u8],
    ) -> Result<Vec<u8>> {
        self.inner.decrypt(k, r, d)
    }
    fn generate_key(
        &self,
        n: &str,
        s: &KeySpec,
        u: &ObjectUpdate,
        g: KeyUsage,
    ) -> Result<KeyRecord> {
        self.inner.generate_key(n, s, u, g)
    }
    fn store_certificate(
        &self,
        d: &[u8],
        k: Option<&KeyRecord>,
        u: &ObjectUpdate,
    ) -> Result<CertRecord> {
        self.inner.store_certificate(d, k, u)
    }
    fn delete_key(&self, id: &str) -> Result<()> {
        self.inner.delete_key(id)
    }
    fn delete_certificate(&self, id: &str) -> Result<()> {
        self.inner.delete_certificate(id)
    }
    fn update(&self, id: &str, u: &ObjectUpdate) -> Result<()> {
        self.inner.update(id, u)
    }
}

#[test]
fn a_stale_listing_never_overwrites_a_newer_one() {
    let dir = tempfile::tempdir().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let b = Arc::new(HeldListing {
        inner: DirectoryBackend::new(DirectoryConfig {
            path: dir.path().to_owned(),
            pkcs12_password: None,
            writable: true,
        }),
        hold: Mutex::new(Some(rx)),
        lists: Default::default(),
        delay: Duration::ZERO,
    });
    let c = Arc::new(ObjectCache::new(vec![SlotStore {
        backend: b.clone() as Arc<dyn Backend>,
        ttl: Duration::from_secs(60),
        login_required: false,
    }]));
    // A timed refresh reads the (empty) directory and is held.
    let stale = {
        let c = c.clone();
        std::thread::spawn(move || c.refresh(0, false))
    };
    while b.hold.lock().unwrap().is_some() {
        std::thread::yield_now();
    }
    // Meanwhile a key is generated and its forced refresh applies.
    b.generate_key(
        "new",
        &KeySpec::Ec(Curve::P256),
        &ObjectUpdate::default(),
        KeyUsage::ALL,
    )
    .unwrap();
    c.refresh(0, true).unwrap();
    assert_eq!(c.find(0, &[], true).unwrap().len(), 2);
    // The held listing (without the key) finishes last and must be dropped.
    tx.send(()).unwrap();
    stale.join().unwrap().unwrap();
    assert_eq!(
        c.find(0, &[], true).unwrap().len(),
        2,
        "the stale listing hid the new key"
    );
}

#[test]
fn a_logout_during_a_listing_leaves_every_found_handle_usable() {
    let dir = tempfile::tempdir().unwrap();
    // Login required (private keys); a TTL of 60 s, so searches below do not list.
    let (c, b) = cache(dir.path(), true);
    let c = Arc::new(c);
    b.generate_key(
        "k",
        &KeySpec::Ec(Curve::P256),
        &ObjectUpdate::default(),
        KeyUsage::ALL,
    )
    .unwrap();
    c.refresh(0, true).unwrap();
    // A listing is built before the logout and applied after it.
    let (built_tx, built_rx) = std::sync::mpsc::channel();
    let (go_tx, go_rx) = std::sync::mpsc::channel::<()>();
    *c.slots[0].after_build.lock().unwrap() = Some(Box::new(move || {
        built_tx.send(()).unwrap();
        go_rx.recv().unwrap();
    }));
    let listing = {
        let c = c.clone();
        std::thread::spawn(move || c.refresh(0, true))
    };
    built_rx.recv().unwrap();
    c.reissue_private(0).unwrap(); // C_Logout
    go_tx.send(()).unwrap();
    listing.join().unwrap().unwrap();
    // Logged in again: every handle a search finds resolves, the private key included.
    let found = c.find(0, &[], true).unwrap();
    assert_eq!(found.len(), 2, "{found:?}");
    for h in found {
        assert!(
            c.get(h, |_| true).is_ok(),
            "handle {h} was found but does not resolve"
        );
    }
}

#[test]
fn private_objects_need_login_when_the_slot_has_a_pin() {
    let dir = tempfile::tempdir().unwrap();
    let (c, b) = cache(dir.path(), true);
    b.generate_key(
        "a",
        &KeySpec::Ec(Curve::P256),
        &ObjectUpdate::default(),
        KeyUsage::ALL,
    )
    .unwrap();
    let public_only = c.find(0, &[], false).unwrap();
    let all = c.find(0, &[], true).unwrap();
    assert_eq!((public_only.len(), all.len()), (1, 2));
    let private = all.iter().find(|h| !public_only.contains(h)).unwrap();
    assert_eq!(
        c.get(*private, |_| false).unwrap_err(),
        Error::ObjectHandleInvalid
    );
    assert!(c.get(*private, |_| true).is_ok());
    // After a logout the private key has a new handle; the old one stays invalid,
    // also after a refresh and a new login. The public key keeps its handle.
    c.reissue_private(0).unwrap();
    assert_eq!(
        c.get(*private, |_| true).unwrap_err(),
        Error::ObjectHandleInvalid
    );
    c.refresh(0, true).unwrap();
    let again = c.find(0, &[], true).unwrap();
    assert_eq!(again.len(), 2);
    // A private session object (a key unwrapped with CKA_PRIVATE) is destroyed by the
    // logout; a public one stays.
    let obj = c.get(*private, |_| true).map(|_| ()).unwrap_err();
    assert_eq!(obj, Error::ObjectHandleInvalid);
    let key = c.get(again[0], |_| true).unwrap();
    let mut private_attrs = key.attrs.clone();
    private_attrs.insert(CKA_PRIVATE, attributes::bool_(true));
    let mut public_attrs = key.attrs.clone();
    public_attrs.insert(CKA_PRIVATE, attributes::bool_(false));
    let private_session = c
        .add_session_object(0, 7, key.kind, private_attrs, key.key.clone())
        .unwrap();
    let public_session = c
        .add_session_object(0, 7, key.kind, public_attrs, key.key.clone())
        .unwrap();
    assert_eq!(c.find(0, &[], true).unwrap().len(), 4);
    c.reissue_private(0).unwrap();
    let after = c.find(0, &[], true).unwrap();
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(after.contains(&public_session));
    assert!(!after.contains(&private_session));
    assert_eq!(
        c.get(private_session, |_| true).unwrap_err(),
        Error::ObjectHandleInvalid
    );
    let again = c.find(0, &[], true).unwrap();
    let again: Vec<_> = again.into_iter().filter(|h| *h != public_session).collect();
    assert!(!again.contains(private));
    assert!(again.contains(&public_only[0]));
    assert_eq!(
        c.get(*private, |_| true).unwrap_err(),
        Error::ObjectHandleInvalid
    );
}

#[test]
fn templates_match_and_queries_are_cached_until_a_change() {
    let dir = tempfile::tempdir().unwrap();
    let (c, b) = cache(dir.path(), false);
    b.generate_key(
        "a",
        &KeySpec::Ec(Curve::P256),
        &ObjectUpdate::default(),
        KeyUsage::ALL,
    )
    .unwrap();
    let t = vec![
        (CKA_CLASS, attributes::ulong(CKO_PRIVATE_KEY)),
        (CKA_LABEL, b"a".to_vec()),
    ];
    let found = c.find(0, &t, true).unwrap();
    assert_eq!(found.len(), 1);
    let obj = c.get(found[0], |_| true).unwrap();
    assert_eq!(obj.kind, ObjectKind::PrivateKey);
    assert_eq!(obj.attr(CKA_VALUE), AttrLookup::Sensitive);
    assert_eq!(obj.attr(CKA_CERTIFICATE_TYPE), AttrLookup::Invalid);
    // A sensitive attribute in a template matches nothing.
    assert!(c.find(0, &[(CKA_VALUE, vec![1])], true).unwrap().is_empty());
    // A new session object bumps the generation: the cached answer is not reused.
    let h = c
        .add_session_object(
            0,
            7,
            ObjectKind::PublicKey,
            obj.attrs.clone(),
            obj.key.clone(),
        )
        .unwrap();
    let t2 = vec![(CKA_LABEL, b"a".to_vec())];
    assert_eq!(c.find(0, &t2, true).unwrap().len(), 3);
    c.close_session(0, 7).unwrap();
    assert_eq!(c.find(0, &t2, true).unwrap().len(), 2);
    assert_eq!(c.get(h, |_| true).unwrap_err(), Error::ObjectHandleInvalid);
}

/// A certificate for `key` named `cn`, signed by `issuer` (itself when None), with
/// basicConstraints cA as given.
fn certificate(
    cn: &str,
    key: &openssl::pkey::PKey<openssl::pkey::Private>,
    issuer: Option<(
        &openssl::x509::X509,
        &openssl::pkey::PKey<openssl::pkey::Private>,
    )>,
    ca: bool,
) -> openssl::x509::X509 {
    use openssl::x509::{X509Builder, X509NameBuilder, extension::BasicConstraints};
    let mut name = X509NameBuilder::new().unwrap();
    name.append_entry_by_text("CN", cn).unwrap();
    let name = name.build();
    let mut b = X509Builder::new().unwrap();
    b.set_version(2).unwrap();
    b.set_subject_name(&name).unwrap();
    let (issuer_name, signer) = match issuer {
        Some((cert, k)) => (cert.subject_name().to_owned().unwrap(), k),
        None => (name.to_owned().unwrap(), key),
    };
    b.set_issuer_name(&issuer_name).unwrap();
    b.set_pubkey(key).unwrap();
    b.set_not_before(&openssl::asn1::Asn1Time::days_from_now(0).unwrap())
        .unwrap();
    b.set_not_after(&openssl::asn1::Asn1Time::days_from_now(30).unwrap())
        .unwrap();
    let mut bc = BasicConstraints::new();
    bc.critical();
    if ca {
        bc.ca();
    }
    b.append_extension(bc.build().unwrap()).unwrap();
    b.sign(signer, openssl::hash::MessageDigest::sha256())
        .unwrap();
    b.build()
}

/// A PKCS#12 holding a key, its certificate and the issuing chain (intermediate, root):
/// the chain's certificates are authorities (CKA_CERTIFICATE_CATEGORY 2), the key's own is
/// not, and each issuer is found by its subject, which is how Java's SunPKCS11 builds a
/// key's chain (tests/clients/run.sh checks keytool and jarsigner on it).
#[test]
fn a_pkcs12_chain_lists_its_authorities_as_category_2() {
    let dir = tempfile::tempdir().unwrap();
    let (c, _) = cache(dir.path(), false);
    let ec = || {
        let group = openssl::ec::EcGroup::from_curve_name(Curve::P256.nid()).unwrap();
        openssl::pkey::PKey::from_ec_key(openssl::ec::EcKey::generate(&group).unwrap()).unwrap()
    };
    let (root_key, int_key, leaf_key) = (ec(), ec(), ec());
    let root = certificate("Root", &root_key, None, true);
    let int = certificate("Intermediate", &int_key, Some((&root, &root_key)), true);
    let leaf = certificate("idp.example", &leaf_key, Some((&int, &int_key)), false);
    let mut ca = openssl::stack::Stack::new().unwrap();
    ca.push(int.clone()).unwrap();
    ca.push(root.clone()).unwrap();
    let p12 = openssl::pkcs12::Pkcs12::builder()
        .name("chained")
        .pkey(&leaf_key)
        .cert(&leaf)
        .ca(ca)
        .build2("")
        .unwrap();
    std::fs::write(dir.path().join("chained.p12"), p12.to_der().unwrap()).unwrap();

    let certs = c
        .find(0, &[(CKA_CLASS, attributes::ulong(CKO_CERTIFICATE))], true)
        .unwrap();
    let mut seen: Vec<(String, Vec<u8>, Vec<u8>)> = certs
        .iter()
        .map(|h| {
            let o = c.get(*h, |_| true).unwrap();
            let value = |t| match o.attr(t) {
                AttrLookup::Value(v) => v.to_vec(),
                other => panic!("{t:#x}: {other:?}"),
            };
            let label = String::from_utf8(value(CKA_LABEL)).unwrap();
            (label, value(CKA_CERTIFICATE_CATEGORY), value(CKA_VALUE))
        })
        .collect();
    seen.sort();
    let expected = [
        ("chained", 0, &leaf),
        ("chained/chain1", 2, &int),
        ("chained/chain2", 2, &root),
    ];
    assert_eq!(seen.len(), expected.len(), "{seen:?}");
    for ((label, category, der), (want_label, want_category, want_cert)) in
        seen.iter().zip(expected)
    {
        assert_eq!(label, want_label);
        assert_eq!(*category, attributes::ulong(want_category), "{label}");
        assert_eq!(*der, want_cert.to_der().unwrap(), "{label}");
    }

    // Each issuer by its subject, as SunPKCS11 looks for it.
    for (cert, issuer) in [(&leaf, &int), (&int, &root)] {
        let t = vec![
            (CKA_CLASS, attributes::ulong(CKO_CERTIFICATE)),
            (CKA_SUBJECT, cert.issuer_name().to_der().unwrap()),
        ];
        let found = c.find(0, &t, true).unwrap();
        assert_eq!(found.len(), 1, "{:?}", cert.subject_name());
        let o = c.get(found[0], |_| true).unwrap();
        assert_eq!(
            o.attr(CKA_VALUE),
            AttrLookup::Value(&issuer.to_der().unwrap())
        );
    }
}

/// Many threads' first searches of a slot make one listing (they wait for the one in
/// flight), and the background refresher does not start another meanwhile.
#[test]
fn concurrent_first_searches_make_one_listing() {
    let dir = tempfile::tempdir().unwrap();
    let b = Arc::new(HeldListing {
        inner: DirectoryBackend::new(DirectoryConfig {
            path: dir.path().to_owned(),
            pkcs12_password: None,
            writable: false,
        }),
        hold: Mutex::new(None),
        lists: Default::default(),
        delay: Duration::from_millis(300),
    });
    let c = Arc::new(ObjectCache::new(vec![SlotStore {
        backend: b.clone() as Arc<dyn Backend>,
        ttl: Duration::from_secs(60),
        login_required: false,
    }]));
    c.set_background(0).unwrap();
    let threads: Vec<_> = (0..50)
        .map(|_| {
            let c = c.clone();
            std::thread::spawn(move || c.find(0, &[], true).map(|f| f.len()))
        })
        .collect();
    // The refresher's turn, while the searches' listing may be in flight: nothing to do.
    c.refresh_stale(0).unwrap();
    for t in threads {
        assert_eq!(t.join().unwrap().unwrap(), 0);
    }
    assert_eq!(b.lists.load(std::sync::atomic::Ordering::SeqCst), 1);
}

/// When that one listing fails, the searches that waited for it get its error; they do
/// not list one after another (each as long as the listing).
#[test]
fn searches_waiting_for_a_failed_listing_get_its_error() {
    let dir = tempfile::tempdir().unwrap();
    let b = Arc::new(HeldListing {
        inner: DirectoryBackend::new(DirectoryConfig {
            path: dir.path().join("missing"),
            pkcs12_password: None,
            writable: false,
        }),
        hold: Mutex::new(None),
        lists: Default::default(),
        delay: Duration::from_millis(300),
    });
    let c = Arc::new(ObjectCache::new(vec![SlotStore {
        backend: b.clone() as Arc<dyn Backend>,
        ttl: Duration::from_secs(60),
        login_required: false,
    }]));
    let threads: Vec<_> = (0..20)
        .map(|_| {
            let c = c.clone();
            std::thread::spawn(move || c.find(0, &[], true).map(|f| f.len()))
        })
        .collect();
    for t in threads {
        assert!(t.join().unwrap().is_err());
    }
    let lists = b.lists.load(std::sync::atomic::Ordering::SeqCst);
    // The threads that arrived after it ended list again, at most a few.
    assert!(lists <= 3, "{lists} listings for 20 searches");
}
