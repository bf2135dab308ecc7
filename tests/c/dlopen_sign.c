/*
 * Loads the module the way Identify does (dlopen + C_GetFunctionList), finds a private
 * key by label, signs a message with CKM_SHA256_RSA_PKCS and writes the signature.
 * Usage: dlopen_sign MODULE LABEL MESSAGE SIGNATURE_OUT
 * Exit status: 0 on success; the failing call and its CK_RV are printed otherwise.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <p11-kit/pkcs11.h>
#include "identify_pkcs11.h"

#define CHECK(call) do { CK_RV rv_ = (call); if (rv_ != CKR_OK) { \
    fprintf(stderr, "%s failed: 0x%lx\n", #call, (unsigned long)rv_); return 1; } } while (0)

int main(int argc, char **argv) {
    if (argc != 5) { fprintf(stderr, "usage: %s MODULE LABEL MESSAGE OUT\n", argv[0]); return 2; }
    void *lib = dlopen(argv[1], RTLD_NOW | RTLD_LOCAL);
    if (!lib) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
    if (!get) { fprintf(stderr, "no C_GetFunctionList\n"); return 1; }
    CK_FUNCTION_LIST_PTR f = NULL;
    CHECK(get(&f));
    CHECK(f->C_Initialize(NULL));

    CK_ULONG n = 0;
    CHECK(f->C_GetSlotList(CK_TRUE, NULL, &n));
    if (n == 0) { fprintf(stderr, "no slots\n"); return 1; }
    CK_SLOT_ID *slots = calloc(n, sizeof *slots);
    CHECK(f->C_GetSlotList(CK_TRUE, slots, &n));
    CK_SESSION_HANDLE s;
    CHECK(f->C_OpenSession(slots[0], CKF_SERIAL_SESSION, NULL, NULL, &s));
    CHECK(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)"1234", 4));

    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_LABEL, argv[2], strlen(argv[2])},
    };
    CK_OBJECT_HANDLE key; CK_ULONG found = 0;
    CHECK(f->C_FindObjectsInit(s, tmpl, 2));
    CHECK(f->C_FindObjects(s, &key, 1, &found));
    CHECK(f->C_FindObjectsFinal(s));
    if (found != 1) { fprintf(stderr, "key %s not found\n", argv[2]); return 1; }

    /* The vendor attribute from identify_pkcs11.h: the key's place in its store. */
    char backend_id[4096];
    CK_ATTRIBUTE vendor = {CKA_IDENTIFY_BACKEND_KEY_ID, backend_id, sizeof backend_id - 1};
    CHECK(f->C_GetAttributeValue(s, key, &vendor, 1));
    backend_id[vendor.ulValueLen] = 0;
    printf("backend key id: %s\n", backend_id);

    CK_MECHANISM mech = {CKM_SHA256_RSA_PKCS, NULL, 0};
    CHECK(f->C_SignInit(s, &mech, key));
    CK_ULONG siglen = 0;
    CHECK(f->C_Sign(s, (CK_BYTE_PTR)argv[3], strlen(argv[3]), NULL, &siglen));
    CK_BYTE *sig = malloc(siglen);
    CHECK(f->C_Sign(s, (CK_BYTE_PTR)argv[3], strlen(argv[3]), sig, &siglen));
    FILE *out = fopen(argv[4], "wb");
    if (!out || fwrite(sig, 1, siglen, out) != siglen) { perror("write"); return 1; }
    fclose(out);
    CHECK(f->C_CloseSession(s));
    CHECK(f->C_Finalize(NULL));
    dlclose(lib);
    printf("signed %lu bytes\n", (unsigned long)siglen);
    return 0;
}
