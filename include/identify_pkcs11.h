/*
 * identify_pkcs11.h: what identify-pkcs11 adds to PKCS#11.
 *
 * Use it together with any standard PKCS#11 header (pkcs11.h / pkcs11t.h from OASIS,
 * OpenSC or p11-kit); it only defines the module's own names.
 */
#ifndef IDENTIFY_PKCS11_H
#define IDENTIFY_PKCS11_H

#ifdef __cplusplus
extern "C" {
#endif

/* File names of the module. */
#define IDENTIFY_PKCS11_LIBRARY_ELF "libidentify_pkcs11.so"
#define IDENTIFY_PKCS11_LIBRARY_DLL "identify_pkcs11.dll"

/* Environment variable naming the TOML configuration file read at C_Initialize.
 * Lookup order: the pReserved string of CK_C_INITIALIZE_ARGS (a NUL-terminated path),
 * then this variable, then /etc/identify-pkcs11/config.toml
 * (%ProgramData%\identify-pkcs11\config.toml on Windows), then the embedded default. */
#define IDENTIFY_PKCS11_CONFIG_ENV "IDENTIFY_PKCS11_CONFIG"

/* Environment variable overriding the log level: error, warn, info, debug, trace. */
#define IDENTIFY_PKCS11_LOG_ENV "IDENTIFY_PKCS11_LOG"

/* Vendor-defined attributes (CKA_VENDOR_DEFINED | 0x4944xxxx, "ID"). */

/* On private and public key objects: the backend's full identifier of the key, UTF-8,
 * not NUL-terminated (a file path for directory stores; a Key Vault key id URL). */
#define CKA_IDENTIFY_BACKEND_KEY_ID (0x80000000UL | 0x49440001UL)

#ifdef __cplusplus
}
#endif

#endif /* IDENTIFY_PKCS11_H */
