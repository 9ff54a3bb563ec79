#ifndef WALCTL_CCRYPTO_SHIM_H
#define WALCTL_CCRYPTO_SHIM_H
/* OpenSSL's libcrypto, fenced here: SHA-256 and HMAC-SHA-256 for AWS Signature V4.
 * libcurl (OpenSSL flavour) already loads libcrypto, so linking it costs no extra start-up. */
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stddef.h>

/* Streaming SHA-256: new / update / final. Returns NULL on allocation failure. */
static inline EVP_MD_CTX *walctl_sha256_new(void) {
    EVP_MD_CTX *c = EVP_MD_CTX_new();
    if (c && EVP_DigestInit_ex(c, EVP_sha256(), NULL) != 1) { EVP_MD_CTX_free(c); return NULL; }
    return c;
}
static inline int walctl_sha256_update(EVP_MD_CTX *c, const void *p, size_t n) { return EVP_DigestUpdate(c, p, n); }
/* Writes 32 bytes to out and resets the context for reuse. */
static inline int walctl_sha256_final(EVP_MD_CTX *c, unsigned char *out) {
    unsigned int len = 0;
    if (EVP_DigestFinal_ex(c, out, &len) != 1) return 0;
    return EVP_DigestInit_ex(c, EVP_sha256(), NULL);
}
static inline void walctl_sha256_free(EVP_MD_CTX *c) { EVP_MD_CTX_free(c); }

/* One-shot HMAC-SHA-256 into out (32 bytes). Returns 1 on success. */
static inline int walctl_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n, unsigned char *out) {
    unsigned int len = 0;
    return HMAC(EVP_sha256(), key, (int)keylen, (const unsigned char *)msg, n, out, &len) != NULL;
}
#endif
