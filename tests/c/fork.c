/*
 * fork(): the child gets CKR_CRYPTOKI_NOT_INITIALIZED until it calls C_Initialize, which
 * builds fresh state; the parent's sessions keep working.
 * Usage: fork MODULE LABEL.   Exit status 0 when every expectation holds.
 */
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include <p11-kit/pkcs11.h>

#define EXPECT(call, want) do { CK_RV rv_ = (call); if (rv_ != (want)) { \
    fprintf(stderr, "[%s] %s = 0x%lx, expected 0x%lx\n", who, #call, (unsigned long)rv_, (unsigned long)(want)); \
    return 1; } } while (0)

static CK_FUNCTION_LIST_PTR f;
static const char *who = "parent";

static int sign_once(CK_SESSION_HANDLE s, const char *label) {
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE t[] = {{CKA_CLASS, &cls, sizeof cls}, {CKA_LABEL, (void *)label, strlen(label)}};
    CK_OBJECT_HANDLE key; CK_ULONG n = 0;
    EXPECT(f->C_FindObjectsInit(s, t, 2), CKR_OK);
    EXPECT(f->C_FindObjects(s, &key, 1, &n), CKR_OK);
    EXPECT(f->C_FindObjectsFinal(s), CKR_OK);
    if (n != 1) { fprintf(stderr, "[%s] key not found\n", who); return 1; }
    CK_MECHANISM m = {CKM_SHA256_RSA_PKCS, NULL, 0};
    CK_BYTE sig[1024]; CK_ULONG len = sizeof sig;
    EXPECT(f->C_SignInit(s, &m, key), CKR_OK);
    EXPECT(f->C_Sign(s, (CK_BYTE_PTR)"data", 4, sig, &len), CKR_OK);
    return 0;
}

static int open_session(CK_SESSION_HANDLE *s) {
    CK_SLOT_ID slot; CK_ULONG n = 1;
    EXPECT(f->C_GetSlotList(CK_TRUE, &slot, &n), CKR_OK);
    EXPECT(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, s), CKR_OK);
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 3) return 2;
    void *lib = dlopen(argv[1], RTLD_NOW);
    if (!lib) { fprintf(stderr, "dlopen: %s\n", dlerror()); return 1; }
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
    EXPECT(get(&f), CKR_OK);
    EXPECT(f->C_Initialize(NULL), CKR_OK);
    CK_SESSION_HANDLE s;
    if (open_session(&s) || sign_once(s, argv[2])) return 1;

    pid_t pid = fork();
    if (pid < 0) { perror("fork"); return 1; }
    if (pid == 0) {
        who = "child";
        CK_ULONG n = 0;
        EXPECT(f->C_GetSlotList(CK_TRUE, NULL, &n), CKR_CRYPTOKI_NOT_INITIALIZED);
        EXPECT(f->C_CloseSession(s), CKR_CRYPTOKI_NOT_INITIALIZED);
        EXPECT(f->C_Finalize(NULL), CKR_CRYPTOKI_NOT_INITIALIZED);
        EXPECT(f->C_Initialize(NULL), CKR_OK);
        EXPECT(f->C_Initialize(NULL), CKR_CRYPTOKI_ALREADY_INITIALIZED);
        CK_SESSION_HANDLE cs;
        if (open_session(&cs) || sign_once(cs, argv[2])) _exit(1);
        EXPECT(f->C_Finalize(NULL), CKR_OK);
        _exit(0);
    }
    int status = 0;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
        fprintf(stderr, "child failed (status 0x%x)\n", status);
        return 1;
    }
    /* The parent's session survived the child's initialize and finalize. */
    if (sign_once(s, argv[2])) return 1;
    EXPECT(f->C_Finalize(NULL), CKR_OK);
    printf("fork: ok\n");
    return 0;
}
