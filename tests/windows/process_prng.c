/* bcryptprimitives.dll for Wine 8, which lacks it: Rust >= 1.78 programs import
 * ProcessPrng from it for their random numbers. This one function asks BCryptGenRandom
 * (which Wine has) for the system-preferred generator, as Windows' own ProcessPrng does. */
#include <windows.h>
#include <bcrypt.h>

BOOL WINAPI ProcessPrng(PBYTE data, SIZE_T len)
{
    while (len > 0) {
        ULONG chunk = len > 0x40000000 ? 0x40000000 : (ULONG)len;
        if (BCryptGenRandom(NULL, data, chunk, BCRYPT_USE_SYSTEM_PREFERRED_RNG) != 0)
            return FALSE;
        data += chunk;
        len -= chunk;
    }
    return TRUE;
}
