//! `identify-pkcs11 demo`: the main job, end to end, through the C ABI.

use cryptoki::context::{CInitializeArgs, CInitializeFlags, Pkcs11};
use cryptoki::mechanism::Mechanism;
use cryptoki::mechanism::MechanismType;
use cryptoki::mechanism::rsa::{PkcsMgfType, PkcsOaepParams, PkcsOaepSource};
use cryptoki::object::{Attribute, AttributeType, CertificateType, ObjectClass, ObjectHandle};
use cryptoki::session::{Session, UserType};
use cryptoki::types::AuthPin;
use identify_pkcs11::admin::hex;
use openssl::pkey::{PKey, Public};
use std::path::{Path, PathBuf};

type Result<T> = std::result::Result<T, String>;

fn err<E: std::fmt::Display>(what: &'static str) -> impl Fn(E) -> String {
    move |e| format!("{what}: {e}")
}

/// The library built with this executable: beside it (target/<profile>/, where `cargo build`
/// puts it), else in its `deps/` (where `cargo run --bin` leaves the cdylib it builds for
/// this program without copying it up).
pub(crate) fn default_module() -> Result<PathBuf> {
    let exe = std::env::current_exe().map_err(err("locating this program"))?;
    let dir = exe.parent().ok_or("this program has no directory")?;
    let name = if cfg!(windows) {
        "identify_pkcs11.dll"
    } else if cfg!(target_os = "macos") {
        "libidentify_pkcs11.dylib"
    } else {
        "libidentify_pkcs11.so"
    };
    let candidates = [dir.join(name), dir.join("deps").join(name)];
    candidates.iter().find(|p| p.exists()).cloned().ok_or_else(|| {
        format!(
            "{name} not found in {} nor in {}; build it (cargo build --release) or pass --module",
            dir.display(),
            dir.join("deps").display()
        )
    })
}

pub fn run(module: Option<PathBuf>, store: Option<PathBuf>) -> Result<()> {
    let module = match module {
        Some(m) => m,
        None => default_module()?,
    };
    // The module reads its configuration at C_Initialize, from the environment. The demo
    // runs the module in a child process of its own whose environment says: with --store,
    // a one-slot configuration file; otherwise the embedded default, whose per-user store
    // is a temporary directory so that the demo leaves nothing behind.
    if std::env::var_os(INNER).is_none() {
        return respawn(&module, store.as_deref());
    }
    match &store {
        Some(dir) => println!("configuration: one cert-store slot over {}", dir.display()),
        None => println!(
            "configuration: the embedded default (per-user store under {})",
            std::env::var("XDG_DATA_HOME").unwrap_or_default()
        ),
    }
    println!("module: {}", module.display());
    let pkcs11 = Pkcs11::new(&module).map_err(err("loading the module"))?;
    pkcs11
        .initialize(CInitializeArgs::new(CInitializeFlags::OS_LOCKING_OK))
        .map_err(err("C_Initialize"))?;
    let info = pkcs11.get_library_info().map_err(err("C_GetInfo"))?;
    println!(
        "C_Initialize: ok ({} {}.{})",
        info.library_description().trim(),
        info.library_version().major(),
        info.library_version().minor()
    );
    let slot = *pkcs11
        .get_slots_with_token()
        .map_err(err("C_GetSlotList"))?
        .first()
        .ok_or("the module has no slot")?;
    let token = pkcs11.get_token_info(slot).map_err(err("C_GetTokenInfo"))?;
    println!("slot {}: token {:?}", slot.id(), token.label().trim());
    let session = pkcs11.open_rw_session(slot).map_err(err("C_OpenSession"))?;
    session
        .login(UserType::User, Some(&AuthPin::new("demo".into())))
        .map_err(err("C_Login"))?;

    let label = format!("demo-{}", std::process::id());
    let (public, private) = session
        .generate_key_pair(
            &Mechanism::RsaPkcsKeyPairGen,
            &[
                Attribute::Token(true),
                Attribute::ModulusBits(2048.into()),
                Attribute::PublicExponent(vec![1, 0, 1]),
                Attribute::Label(label.clone().into_bytes()),
            ],
            &[
                Attribute::Token(true),
                Attribute::Label(label.clone().into_bytes()),
                Attribute::Sign(true),
                Attribute::Decrypt(true),
            ],
        )
        .map_err(err("C_GenerateKeyPair"))?;
    let id = bytes_attr(&session, private, AttributeType::Id)?;
    println!(
        "C_GenerateKeyPair: RSA-2048 key {label:?}, CKA_ID {}",
        hex(&id)
    );

    let cert_der = self_signed(&session, public, private, &label)?;
    session
        .create_object(&[
            Attribute::Class(ObjectClass::CERTIFICATE),
            Attribute::CertificateType(CertificateType::X_509),
            Attribute::Token(true),
            Attribute::Label(label.clone().into_bytes()),
            Attribute::Id(id.clone()),
            Attribute::Value(cert_der.clone()),
        ])
        .map_err(err("C_CreateObject(certificate)"))?;
    let cert = openssl::x509::X509::from_der(&cert_der).map_err(err("parsing the certificate"))?;
    let cert_key = cert.public_key().map_err(err("certificate public key"))?;
    if !cert
        .verify(&cert_key)
        .map_err(err("checking the self-signature"))?
    {
        return Err("the self-signed certificate does not verify".into());
    }
    println!(
        "self-signed certificate: subject CN={label}, signed through C_Sign, stored with C_CreateObject, SHA-256 thumbprint {}",
        hex(&cert
            .digest(openssl::hash::MessageDigest::sha256())
            .map_err(err("thumbprint"))?)
    );

    let jwt = sign_jwt(&session, private, &id)?;
    verify_jwt(&jwt, &cert_key)?;
    println!(
        "JWT (RS256) signed through C_Sign and verified with OpenSSL against the certificate:\n  {jwt}"
    );
    let (header_payload, signature) = jwt.rsplit_once('.').ok_or("malformed JWT")?;
    session
        .verify(
            &Mechanism::Sha256RsaPkcs,
            public,
            header_payload.as_bytes(),
            &b64url_decode(signature)?,
        )
        .map_err(err("C_Verify of the JWT"))?;
    println!("C_Verify of the JWT: ok");

    decrypt_wrapped_key(&session, private, &cert_key)?;

    session.close().map_err(err("C_CloseSession"))?;
    pkcs11.finalize().map_err(err("C_Finalize"))?;
    println!("C_Finalize: ok\ndemo complete");
    Ok(())
}

/// Marks the child process that runs the demo with its own environment.
const INNER: &str = "IDENTIFY_PKCS11_DEMO_INNER";

fn respawn(module: &Path, store: Option<&Path>) -> Result<()> {
    let temp = tempfile::tempdir().map_err(err("creating a temporary directory"))?;
    let exe = std::env::current_exe().map_err(err("locating this program"))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("demo").arg("--module").arg(module).env(INNER, "1");
    match store {
        Some(dir) => {
            let config = temp.path().join("config.toml");
            std::fs::write(
                &config,
                format!("[[slot]]\nlabel = \"demo\"\nkind = \"cert-store\"\npath = {dir:?}\n"),
            )
            .map_err(err("writing the demo configuration"))?;
            cmd.arg("--store")
                .arg(dir)
                .env("IDENTIFY_PKCS11_CONFIG", &config);
        }
        None => {
            let system = identify_pkcs11::admin::system_path();
            if system.exists() {
                return Err(format!(
                    "{} exists and would replace the embedded default; run with --store DIR",
                    system.display()
                ));
            }
            cmd.env_remove("IDENTIFY_PKCS11_CONFIG")
                .env("XDG_DATA_HOME", temp.path());
        }
    }
    let status = cmd.status().map_err(err("starting the demo"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("the demo failed ({status})"))
    }
}

fn bytes_attr(session: &Session, h: ObjectHandle, t: AttributeType) -> Result<Vec<u8>> {
    let attrs = session
        .get_attributes(h, &[t])
        .map_err(err("C_GetAttributeValue"))?;
    match attrs.into_iter().next() {
        Some(Attribute::Id(v) | Attribute::Modulus(v) | Attribute::PublicExponent(v)) => Ok(v),
        other => Err(format!("unexpected attribute {other:?}")),
    }
}

/// A certificate signed by the key inside the module: rcgen builds it, C_Sign signs it.
fn self_signed(
    session: &Session,
    public: ObjectHandle,
    private: ObjectHandle,
    cn: &str,
) -> Result<Vec<u8>> {
    let n = bytes_attr(session, public, AttributeType::Modulus)?;
    let e = bytes_attr(session, public, AttributeType::PublicExponent)?;
    let rsa = openssl::rsa::Rsa::from_public_components(
        openssl::bn::BigNum::from_slice(&n).map_err(err("modulus"))?,
        openssl::bn::BigNum::from_slice(&e).map_err(err("exponent"))?,
    )
    .map_err(err("public key"))?;
    let key = ModuleKey {
        session,
        private,
        pkcs1_der: rsa
            .public_key_to_der_pkcs1()
            .map_err(err("public key DER"))?,
    };
    let mut params = rcgen::CertificateParams::new(Vec::<String>::new())
        .map_err(err("certificate parameters"))?;
    params
        .distinguished_name
        .push(rcgen::DnType::CommonName, cn);
    params.not_before = rcgen::date_time_ymd(2026, 1, 1);
    params.not_after = rcgen::date_time_ymd(2028, 1, 1);
    // A positive 16-byte random serial (RFC 5280 §4.1.2.2: at most 20 octets).
    let mut serial = [0u8; 16];
    openssl::rand::rand_bytes(&mut serial).map_err(err("random serial"))?;
    serial[0] &= 0x7f;
    params.serial_number = Some(rcgen::SerialNumber::from_slice(&serial));
    let cert = params
        .self_signed(&key)
        .map_err(err("signing the certificate"))?;
    Ok(cert.der().to_vec())
}

/// rcgen's view of a key that signs through PKCS#11.
struct ModuleKey<'a> {
    session: &'a Session,
    private: ObjectHandle,
    pkcs1_der: Vec<u8>,
}

impl rcgen::PublicKeyData for ModuleKey<'_> {
    fn der_bytes(&self) -> &[u8] {
        &self.pkcs1_der
    }
    fn algorithm(&self) -> &'static rcgen::SignatureAlgorithm {
        &rcgen::PKCS_RSA_SHA256
    }
}

impl rcgen::SigningKey for ModuleKey<'_> {
    fn sign(&self, msg: &[u8]) -> std::result::Result<Vec<u8>, rcgen::Error> {
        self.session
            .sign(&Mechanism::Sha256RsaPkcs, self.private, msg)
            .map_err(|_| rcgen::Error::RemoteKeyError)
    }
}

fn b64url(data: &[u8]) -> String {
    openssl::base64::encode_block(data)
        .trim_end_matches('=')
        .replace('+', "-")
        .replace('/', "_")
}

fn b64url_decode(s: &str) -> Result<Vec<u8>> {
    let mut std = s.replace('-', "+").replace('_', "/");
    while !std.len().is_multiple_of(4) {
        std.push('=');
    }
    openssl::base64::decode_block(&std).map_err(err("base64url"))
}

fn sign_jwt(session: &Session, key: ObjectHandle, kid: &[u8]) -> Result<String> {
    let header = format!(r#"{{"alg":"RS256","typ":"JWT","kid":"{}"}}"#, hex(kid));
    let payload = r#"{"iss":"https://identify.example/demo","sub":"demo-user","aud":"https://relying-party.example","iat":1795000000}"#;
    let signing_input = format!(
        "{}.{}",
        b64url(header.as_bytes()),
        b64url(payload.as_bytes())
    );
    let signature = session
        .sign(&Mechanism::Sha256RsaPkcs, key, signing_input.as_bytes())
        .map_err(err("C_Sign of the JWT"))?;
    Ok(format!("{signing_input}.{}", b64url(&signature)))
}

fn verify_jwt(jwt: &str, key: &PKey<Public>) -> Result<()> {
    let (input, sig) = jwt.rsplit_once('.').ok_or("malformed JWT")?;
    let mut v = openssl::sign::Verifier::new(openssl::hash::MessageDigest::sha256(), key)
        .map_err(err("verifier"))?;
    v.update(input.as_bytes()).map_err(err("verifier"))?;
    if v.verify(&b64url_decode(sig)?)
        .map_err(err("verifying the JWT"))?
    {
        Ok(())
    } else {
        Err("the JWT signature does not verify".into())
    }
}

/// XML-Encryption key transport: a content key wrapped with RSA-OAEP (SHA-1, the XML-Enc
/// default rsa-oaep-mgf1p, and SHA-256) by a sender who has only the certificate.
fn decrypt_wrapped_key(
    session: &Session,
    key: ObjectHandle,
    cert_key: &PKey<Public>,
) -> Result<()> {
    for (name, md, mech, mgf) in [
        (
            "SHA-1",
            openssl::md::Md::sha1(),
            MechanismType::SHA1,
            PkcsMgfType::MGF1_SHA1,
        ),
        (
            "SHA-256",
            openssl::md::Md::sha256(),
            MechanismType::SHA256,
            PkcsMgfType::MGF1_SHA256,
        ),
    ] {
        let mut content_key = [0u8; 32];
        openssl::rand::rand_bytes(&mut content_key).map_err(err("random content key"))?;
        let mut ctx = openssl::pkey_ctx::PkeyCtx::new(cert_key).map_err(err("OAEP"))?;
        ctx.encrypt_init().map_err(err("OAEP"))?;
        ctx.set_rsa_padding(openssl::rsa::Padding::PKCS1_OAEP)
            .map_err(err("OAEP"))?;
        ctx.set_rsa_oaep_md(md).map_err(err("OAEP"))?;
        ctx.set_rsa_mgf1_md(md).map_err(err("OAEP"))?;
        let mut wrapped = Vec::new();
        ctx.encrypt_to_vec(&content_key, &mut wrapped)
            .map_err(err("OAEP wrap"))?;
        let params = PkcsOaepParams::new(mech, mgf, PkcsOaepSource::empty());
        let unwrapped = session
            .decrypt(&Mechanism::RsaPkcsOaep(params), key, &wrapped)
            .map_err(err("C_Decrypt (RSA-OAEP)"))?;
        if unwrapped != content_key {
            return Err(format!(
                "RSA-OAEP {name}: the decrypted key differs from the wrapped one"
            ));
        }
        println!("C_Decrypt: RSA-OAEP ({name}) wrapped AES-256 key recovered: ok");
    }
    Ok(())
}
