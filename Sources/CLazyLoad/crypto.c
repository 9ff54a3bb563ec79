/* libcrypto, loaded on first use: the SHA-256 / HMAC-SHA-256 wrappers of ../CCrypto/shim.h (S3
 * request signing, repository encryption), and AES-256-GCM, scrypt and random bytes for client-side
 * encryption (docs/encryption.md). No cryptography is implemented here: every primitive is libcrypto's. */
#define OPENSSL_SUPPRESS_DEPRECATED 1 /* HMAC() is deprecated in OpenSSL 3 but still exported */
#include "../CCrypto/shim.h"
#include "walctl_lazyload.h"
#include <openssl/hmac.h>
#include <openssl/rand.h>
#include <openssl/crypto.h>
#include <pthread.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#define CRYPTO_FUNCTIONS(X) \
    X(EVP_MD_CTX_new) X(EVP_MD_CTX_free) X(EVP_DigestInit_ex) X(EVP_DigestUpdate) \
    X(EVP_DigestFinal_ex) X(EVP_sha256) X(HMAC) \
    X(EVP_CIPHER_CTX_new) X(EVP_CIPHER_CTX_free) X(EVP_aes_256_gcm) X(EVP_CIPHER_CTX_ctrl) \
    X(EVP_EncryptInit_ex) X(EVP_EncryptUpdate) X(EVP_EncryptFinal_ex) \
    X(EVP_DecryptInit_ex) X(EVP_DecryptUpdate) X(EVP_DecryptFinal_ex) \
    X(EVP_PBE_scrypt) X(RAND_bytes) X(CRYPTO_memcmp) X(EVP_Digest) X(EVP_md5) \
    X(OPENSSL_init_crypto)

static struct {
#define SLOT(n) __typeof__(n) *p_##n;
    CRYPTO_FUNCTIONS(SLOT)
#undef SLOT
} fn;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int loaded;
static int lean;
static char error[512];

static void load(void) {
    static const char *const names[] = {"libcrypto.so.3", "libcrypto.so.1.1", "libcrypto.so", NULL};
    static const char *const symbols[] = {
#define NAME(n) #n,
        CRYPTO_FUNCTIONS(NAME)
#undef NAME
        NULL};
    loaded = walctl_lazy_open(names, "needed for S3 requests and repository encryption", "libssl3", symbols, (void **)&fn,
                              error, sizeof error);
    if (loaded && lean)
        fn.p_OPENSSL_init_crypto(OPENSSL_INIT_NO_LOAD_CONFIG | OPENSSL_INIT_NO_ADD_ALL_CIPHERS | OPENSSL_INIT_NO_ADD_ALL_DIGESTS, NULL);
}

void walctl_crypto_prefer_lean_init(void) { lean = 1; }

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

/* AES-256-GCM with a 12-byte nonce and a 16-byte tag. The key is set once per context; each seal or
 * open sets a new nonce and processes one message (a chunk). */
struct walctl_gcm { EVP_CIPHER_CTX *ctx; int encrypt; };

walctl_gcm *walctl_gcm_new(const unsigned char *key32, int encrypt) {
    if (!walctl_crypto_ready()) return NULL;
    walctl_gcm *g = calloc(1, sizeof *g);
    if (!g) return NULL;
    g->encrypt = encrypt;
    g->ctx = fn.p_EVP_CIPHER_CTX_new();
    int ok = g->ctx != NULL;
    if (ok) ok = (encrypt ? fn.p_EVP_EncryptInit_ex(g->ctx, fn.p_EVP_aes_256_gcm(), NULL, NULL, NULL)
                          : fn.p_EVP_DecryptInit_ex(g->ctx, fn.p_EVP_aes_256_gcm(), NULL, NULL, NULL)) == 1;
    if (ok) ok = fn.p_EVP_CIPHER_CTX_ctrl(g->ctx, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) == 1;
    if (ok) ok = (encrypt ? fn.p_EVP_EncryptInit_ex(g->ctx, NULL, NULL, key32, NULL)
                          : fn.p_EVP_DecryptInit_ex(g->ctx, NULL, NULL, key32, NULL)) == 1;
    if (!ok) { walctl_gcm_free(g); return NULL; }
    return g;
}

void walctl_gcm_free(walctl_gcm *g) {
    if (!g) return;
    if (g->ctx) fn.p_EVP_CIPHER_CTX_free(g->ctx);
    free(g);
}

/* Feeds n bytes (n may exceed INT_MAX only in pieces). */
static int gcm_update(walctl_gcm *g, unsigned char *out, const unsigned char *in, size_t n) {
    while (n > 0) {
        int piece = n > (1u << 30) ? (1 << 30) : (int)n, len = 0;
        int ok = g->encrypt ? fn.p_EVP_EncryptUpdate(g->ctx, out, &len, in, piece)
                            : fn.p_EVP_DecryptUpdate(g->ctx, out, &len, in, piece);
        if (ok != 1) return 0;
        if (out) out += len;
        in += piece; n -= (size_t)piece;
    }
    return 1;
}

int walctl_gcm_seal(walctl_gcm *g, const unsigned char *nonce12, const void *aad, size_t aadlen,
                    const void *in, size_t n, void *out, unsigned char *tag16) {
    if (!g || !g->encrypt) return 0;
    int len = 0;
    if (fn.p_EVP_EncryptInit_ex(g->ctx, NULL, NULL, NULL, nonce12) != 1) return 0;
    if (aadlen && !gcm_update(g, NULL, aad, aadlen)) return 0;
    if (n && !gcm_update(g, out, in, n)) return 0;
    if (fn.p_EVP_EncryptFinal_ex(g->ctx, (unsigned char *)out + n, &len) != 1) return 0;
    return fn.p_EVP_CIPHER_CTX_ctrl(g->ctx, EVP_CTRL_GCM_GET_TAG, 16, tag16) == 1;
}

int walctl_gcm_open(walctl_gcm *g, const unsigned char *nonce12, const void *aad, size_t aadlen,
                    const void *in, size_t n, const unsigned char *tag16, void *out) {
    if (!g || g->encrypt) return 0;
    int len = 0;
    unsigned char tag[16];
    memcpy(tag, tag16, 16);
    if (fn.p_EVP_DecryptInit_ex(g->ctx, NULL, NULL, NULL, nonce12) != 1) return 0;
    if (aadlen && !gcm_update(g, NULL, aad, aadlen)) return 0;
    if (n && !gcm_update(g, out, in, n)) return 0;
    if (fn.p_EVP_CIPHER_CTX_ctrl(g->ctx, EVP_CTRL_GCM_SET_TAG, 16, tag) != 1) return 0;
    return fn.p_EVP_DecryptFinal_ex(g->ctx, (unsigned char *)out + n, &len) == 1;
}

int walctl_scrypt(const void *pass, size_t passlen, const void *salt, size_t saltlen,
                  uint64_t n, uint64_t r, uint64_t p, void *out, size_t outlen) {
    if (!walctl_crypto_ready()) return 0;
    uint64_t maxmem = 128 * n * r * p + (64u << 20);   /* what scrypt needs, plus headroom */
    return fn.p_EVP_PBE_scrypt((const char *)pass, passlen, (const unsigned char *)salt, saltlen,
                               n, r, p, maxmem, (unsigned char *)out, outlen) == 1;
}

int walctl_random_bytes(void *out, size_t n) {
    if (!walctl_crypto_ready() || n > INT_MAX) return 0;
    return fn.p_RAND_bytes((unsigned char *)out, (int)n) == 1;
}

int walctl_constant_time_equal(const void *a, const void *b, size_t n) {
    if (!walctl_crypto_ready()) return 0;
    return fn.p_CRYPTO_memcmp(a, b, n) == 0;
}

/* MD5 of a body, for the Content-MD5 header S3 Object Lock requires (an integrity check, not security). */
int walctl_md5(const void *p, size_t n, unsigned char *out16) {
    if (!walctl_crypto_ready()) return 0;
    unsigned int len = 0;
    return fn.p_EVP_Digest(p, n, out16, &len, fn.p_EVP_md5(), NULL) == 1 && len == 16;
}
