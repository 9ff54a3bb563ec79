#ifndef WALCTL_CCRYPTO_SHIM_H
#define WALCTL_CCRYPTO_SHIM_H
/* OpenSSL's libcrypto, fenced here: SHA-256 and HMAC-SHA-256 for AWS Signature V4, and AES-256-GCM,
 * scrypt and random bytes for client-side repository encryption (docs/encryption.md).
 * walctl does not link libcrypto: these wrappers are defined in the CLazyLoad target, which
 * dlopen()s libcrypto.so.3 on first use (libcurl needs it anyway, so S3 loads it once). */
#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

/* Streaming SHA-256: new / update / final. Returns NULL on allocation failure or when libcrypto
 * cannot be loaded; the other functions then fail (return 0) and do nothing. */
EVP_MD_CTX *walctl_sha256_new(void);
int walctl_sha256_update(EVP_MD_CTX *c, const void *p, size_t n);
/* Writes 32 bytes to out and resets the context for reuse. Returns 1 on success. */
int walctl_sha256_final(EVP_MD_CTX *c, unsigned char *out);
void walctl_sha256_free(EVP_MD_CTX *c);

/* The message saying why libcrypto cannot be loaded, NULL when it is usable. */
const char *walctl_crypto_load_error(void);

/* Asks for libcrypto's lean initialisation when it is first loaded: no configuration file, no legacy
 * name tables (OPENSSL_INIT_NO_LOAD_CONFIG | NO_ADD_ALL_CIPHERS | NO_ADD_ALL_DIGESTS), about 5 M
 * instructions less per process. Only for a process that will make no TLS connection (libssl would
 * then run without the system's OpenSSL configuration). No effect once libcrypto is initialised. */
void walctl_crypto_prefer_lean_init(void);

/* One-shot HMAC-SHA-256 into out (32 bytes). Returns 1 on success. */
int walctl_hmac_sha256(const void *key, size_t keylen, const void *msg, size_t n, unsigned char *out);

/* AES-256-GCM (12-byte nonce, 16-byte tag). A context holds one key, for sealing (encrypt = 1) or
 * opening (0); NULL when libcrypto cannot be loaded or refuses. */
typedef struct walctl_gcm walctl_gcm;
walctl_gcm *walctl_gcm_new(const unsigned char *key32, int encrypt);
void walctl_gcm_free(walctl_gcm *g);
/* Encrypts n bytes of in to out (n bytes) and writes the tag. Returns 1 on success. */
int walctl_gcm_seal(walctl_gcm *g, const unsigned char *nonce12, const void *aad, size_t aadlen,
                    const void *in, size_t n, void *out, unsigned char *tag16);
/* Decrypts n bytes of in to out and checks the tag. Returns 1 only when the tag matches (out must
 * then be discarded by the caller if 0 is returned). */
int walctl_gcm_open(walctl_gcm *g, const unsigned char *nonce12, const void *aad, size_t aadlen,
                    const void *in, size_t n, const unsigned char *tag16, void *out);
/* scrypt (RFC 7914) into out. Returns 1 on success. */
int walctl_scrypt(const void *pass, size_t passlen, const void *salt, size_t saltlen,
                  uint64_t n, uint64_t r, uint64_t p, void *out, size_t outlen);
/* n bytes from libcrypto's CSPRNG. Returns 1 on success. */
int walctl_random_bytes(void *out, size_t n);
/* MD5 (Content-MD5 of S3 Object Lock uploads). Returns 1 on success. */
int walctl_md5(const void *p, size_t n, unsigned char *out16);
/* Constant-time comparison: 1 when equal. */
int walctl_constant_time_equal(const void *a, const void *b, size_t n);
#endif
