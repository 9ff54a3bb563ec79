#ifndef WALCTL_CCRYPTO_SHIM_H
#define WALCTL_CCRYPTO_SHIM_H
/* OpenSSL's libcrypto, fenced here: SHA-256 and HMAC-SHA-256 for AWS Signature V4 (S3 only).
 * walctl does not link libcrypto: these wrappers are defined in the CLazyLoad target, which
 * dlopen()s libcrypto.so.3 on first use (libcurl needs it anyway, so S3 loads it once). */
#include <openssl/evp.h>
#include <stddef.h>

/* Streaming SHA-256: new / update / final. Returns NULL on allocation failure or when libcrypto
 * cannot be loaded; the other functions then fail (return 0) and do nothing. */
EVP_MD_CTX *walctl_sha256_new(void);
int walctl_sha256_update(EVP_MD_CTX *c, const void *p, size_t n);
/* Writes 32 bytes to out and resets the context for reuse. Returns 1 on success. */
int walctl_sha256_final(EVP_MD_CTX *c, unsigned char *out);
void walctl_sha256_free(EVP_MD_CTX *c);

/* One-shot HMAC-SHA-256 into out (32 bytes). Returns 1 on success. */
int walctl_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n, unsigned char *out);
#endif
