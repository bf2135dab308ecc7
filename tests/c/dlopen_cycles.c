/*
 * Loads and unloads the module CYCLES times, as a host that reloads its plug-ins does:
 * dlopen -> C_GetFunctionList -> C_Initialize -> C_OpenSession -> C_Login -> find the
 * private key LABEL -> C_Sign (size query, then the signature) -> C_CloseSession ->
 * C_Finalize -> dlclose. After cycles 10 and CYCLES it prints one line
 *   cycle N rss_kib R fds F threads T
 * read from /proc/self (resident memory, open descriptors, threads of the process).
 * Usage: dlopen_cycles MODULE LABEL CYCLES
 * Exit status: 0 on success; the failing call and its CK_RV are printed otherwise.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <p11-kit/pkcs11.h>

#define CHECK(call) do { CK_RV rv_ = (call); if (rv_ != CKR_OK) { \
    fprintf(stderr, "cycle %ld: %s failed: 0x%lx\n", cycle, #call, (unsigned long)rv_); \
    return 1; } } while (0)

static long count_dir(const char *path) {
    DIR *d = opendir(path);
    if (!d) return -1;
    long n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] != '.') n++;
    }
    closedir(d);
    return n - 1; /* the descriptor of this very listing (for /proc/self/fd) or nothing */
}

static long status_field(const char *name) {
    FILE *f = fopen("/proc/self/status", "r");
    if (!f) return -1;
    char line[256];
    long value = -1;
    size_t len = strlen(name);
    while (fgets(line, sizeof line, f)) {
        if (strncmp(line, name, len) == 0 && line[len] == ':') {
            value = strtol(line + len + 1, NULL, 10);
            break;
        }
    }
    fclose(f);
    return value;
}

static void report(long cycle) {
    /* count_dir subtracts one for its own descriptor; /proc/self/task has none. */
    printf("cycle %ld rss_kib %ld fds %ld threads %ld\n", cycle, status_field("VmRSS"),
           count_dir("/proc/self/fd"), count_dir("/proc/self/task") + 1);
    fflush(stdout);
}

static int one_cycle(const char *module, const char *label, long cycle) {
    void *lib = dlopen(module, RTLD_NOW | RTLD_LOCAL);
    if (!lib) { fprintf(stderr, "cycle %ld: dlopen: %s\n", cycle, dlerror()); return 1; }
    CK_C_GetFunctionList get = (CK_C_GetFunctionList)dlsym(lib, "C_GetFunctionList");
    if (!get) { fprintf(stderr, "no C_GetFunctionList\n"); return 1; }
    CK_FUNCTION_LIST_PTR f = NULL;
    CHECK(get(&f));
    CHECK(f->C_Initialize(NULL));
    CK_SLOT_ID slot;
    CK_ULONG n = 1;
    CHECK(f->C_GetSlotList(CK_TRUE, &slot, &n));
    CK_SESSION_HANDLE s;
    CHECK(f->C_OpenSession(slot, CKF_SERIAL_SESSION, NULL, NULL, &s));
    CHECK(f->C_Login(s, CKU_USER, (CK_UTF8CHAR_PTR)"1234", 4));
    CK_OBJECT_CLASS cls = CKO_PRIVATE_KEY;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof cls},
        {CKA_LABEL, (void *)label, strlen(label)},
    };
    CK_OBJECT_HANDLE key;
    CK_ULONG found = 0;
    CHECK(f->C_FindObjectsInit(s, tmpl, 2));
    CHECK(f->C_FindObjects(s, &key, 1, &found));
    CHECK(f->C_FindObjectsFinal(s));
    if (found != 1) { fprintf(stderr, "cycle %ld: key %s not found\n", cycle, label); return 1; }
    CK_MECHANISM mech = {CKM_SHA256_RSA_PKCS, NULL, 0};
    CHECK(f->C_SignInit(s, &mech, key));
    CK_BYTE data[] = "cycle";
    CK_BYTE sig[1024];
    CK_ULONG siglen = 0;
    CHECK(f->C_Sign(s, data, sizeof data, NULL, &siglen));
    if (siglen > sizeof sig) { fprintf(stderr, "signature of %lu bytes\n", siglen); return 1; }
    CHECK(f->C_Sign(s, data, sizeof data, sig, &siglen));
    CHECK(f->C_CloseSession(s));
    CHECK(f->C_Finalize(NULL));
    if (dlclose(lib) != 0) { fprintf(stderr, "cycle %ld: dlclose: %s\n", cycle, dlerror()); return 1; }
    return 0;
}

int main(int argc, char **argv) {
    if (argc != 4) { fprintf(stderr, "usage: %s MODULE LABEL CYCLES\n", argv[0]); return 2; }
    long cycles = strtol(argv[3], NULL, 10);
    for (long cycle = 1; cycle <= cycles; cycle++) {
        if (one_cycle(argv[1], argv[2], cycle) != 0) return 1;
        if (cycle == 10 || cycle == cycles) report(cycle);
    }
    return 0;
}
