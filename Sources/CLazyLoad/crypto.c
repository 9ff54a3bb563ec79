/* libcrypto, loaded on first use: the SHA-256 / HMAC-SHA-256 wrappers of ../CCrypto/shim.h, used by
 * S3 request signing only. */
#define OPENSSL_SUPPRESS_DEPRECATED 1 /* HMAC() is deprecated in OpenSSL 3 but still exported */
#include "../CCrypto/shim.h"
#include "walctl_lazyload.h"
#include <openssl/hmac.h>
#include <pthread.h>

#define CRYPTO_FUNCTIONS(X) \
    X(EVP_MD_CTX_new) X(EVP_MD_CTX_free) X(EVP_DigestInit_ex) X(EVP_DigestUpdate) \
    X(EVP_DigestFinal_ex) X(EVP_sha256) X(HMAC)

static struct {
#define SLOT(n) __typeof__(n) *p_##n;
    CRYPTO_FUNCTIONS(SLOT)
#undef SLOT
} fn;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int loaded;
static char error[512];

static void load(void) {
    static const char *const names[] = {"libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so", NULL};
    static const char *const symbols[] = {
#define NAME(n) #n,
        CRYPTO_FUNCTIONS(NAME)
#undef NAME
        NULL};
    loaded = walctl_lazy_open(names, "needed to sign S3 requests", "libssl3", symbols, (void **)&fn,
                              error, sizeof error);
}

/* 1 when libcrypto is loaded (loading it now if needed). */
int walctl_crypto_ready(void) {
    pthread_once(&once, load);
    return loaded;
}

/* The load failure message, NULL when libcrypto is usable. */
const char *walctl_crypto_load_error(void) { return walctl_crypto_ready() ? NULL : error; }

EVP_MD_CTX *walctl_sha256_new(void) {
    if (!walctl_crypto_ready()) return NULL;
    EVP_MD_CTX *c = fn.p_EVP_MD_CTX_new();
    if (c && fn.p_EVP_DigestInit_ex(c, fn.p_EVP_sha256(), NULL) != 1) { fn.p_EVP_MD_CTX_free(c); return NULL; }
    return c;
}
int walctl_sha256_update(EVP_MD_CTX *c, const void *p, size_t n) {
    return c ? fn.p_EVP_DigestUpdate(c, p, n) : 0;
}
int walctl_sha256_final(EVP_MD_CTX *c, unsigned char *out) {
    unsigned int len = 0;
    if (!c || fn.p_EVP_DigestFinal_ex(c, out, &len) != 1) return 0;
    return fn.p_EVP_DigestInit_ex(c, fn.p_EVP_sha256(), NULL);
}
void walctl_sha256_free(EVP_MD_CTX *c) { if (c) fn.p_EVP_MD_CTX_free(c); }
int walctl_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n, unsigned char *out) {
    if (!walctl_crypto_ready()) return 0;
    unsigned int len = 0;
    return fn.p_HMAC(fn.p_EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, n, out, &len) != NULL;
}
