/* libcurl, loaded on first use: definitions of every curl function walctl calls (see
 * ../CCurl/shim.h). Each forwards through a pointer resolved once from libcurl.so.4. libcrypto is
 * loaded at the same time because S3 request signing needs it (crypto.c). */
#include "../CCurl/shim.h"
#include "walctl_lazyload.h"
#include <pthread.h>
#include <stddef.h>

int walctl_crypto_ready(void);
const char *walctl_crypto_load_error(void);

/* X(name): every libcurl function resolved. Keep in step with the definitions below. */
#define CURL_FUNCTIONS(X) \
    X(curl_global_init) X(curl_easy_init) X(curl_easy_cleanup) X(curl_easy_reset) \
    X(curl_easy_perform) X(curl_easy_strerror) X(curl_slist_append) X(curl_slist_free_all) \
    X(curl_easy_setopt) X(curl_easy_getinfo)

static struct {
#define SLOT(n) __typeof__(n) *p_##n;
    CURL_FUNCTIONS(SLOT)
#undef SLOT
} fn;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int loaded;
static char error[512];

static void load(void) {
    static const char *const names[] = {"libcurl.so.4", "libcurl.so", NULL};
    static const char *const symbols[] = {
#define NAME(n) #n,
        CURL_FUNCTIONS(NAME)
#undef NAME
        NULL};
    loaded = walctl_lazy_open(names, "needed for S3 repositories", "libcurl4", symbols, (void **)&fn,
                              error, sizeof error);
}

/* 1 when libcurl is loaded (loading it now if needed). */
static int ready(void) {
    pthread_once(&once, load);
    return loaded;
}

const char *walctl_curl_load_error(void) {
    if (!ready()) return error;
    if (!walctl_crypto_ready()) return walctl_crypto_load_error();
    return NULL;
}

CURLcode curl_global_init(long flags) {
    if (walctl_curl_load_error()) return CURLE_FAILED_INIT;
    return fn.p_curl_global_init(flags);
}
CURL *curl_easy_init(void) { return ready() ? fn.p_curl_easy_init() : NULL; }
void curl_easy_cleanup(CURL *h) { if (ready()) fn.p_curl_easy_cleanup(h); }
void curl_easy_reset(CURL *h) { if (ready()) fn.p_curl_easy_reset(h); }
CURLcode curl_easy_perform(CURL *h) { return ready() ? fn.p_curl_easy_perform(h) : CURLE_FAILED_INIT; }
const char *curl_easy_strerror(CURLcode c) {
    return ready() ? fn.p_curl_easy_strerror(c) : "libcurl is not loaded";
}
struct curl_slist *curl_slist_append(struct curl_slist *l, const char *s) {
    return ready() ? fn.p_curl_slist_append(l, s) : NULL;
}
void curl_slist_free_all(struct curl_slist *l) { if (ready()) fn.p_curl_slist_free_all(l); }

/* The variadic setopt/getinfo, called through their variadic pointer type with one typed argument. */
#define SETOPT(h, o, v) (ready() ? fn.p_curl_easy_setopt((h), (o), (v)) : CURLE_FAILED_INIT)
#define GETINFO(h, i, v) (ready() ? fn.p_curl_easy_getinfo((h), (i), (v)) : CURLE_FAILED_INIT)
CURLcode walctl_curl_setopt_long(CURL *h, CURLoption o, long v) { return SETOPT(h, o, v); }
CURLcode walctl_curl_setopt_off(CURL *h, CURLoption o, curl_off_t v) { return SETOPT(h, o, v); }
CURLcode walctl_curl_setopt_string(CURL *h, CURLoption o, const char *v) { return SETOPT(h, o, v); }
CURLcode walctl_curl_setopt_pointer(CURL *h, CURLoption o, void *v) { return SETOPT(h, o, v); }
CURLcode walctl_curl_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v) { return SETOPT(h, o, v); }
CURLcode walctl_curl_setopt_write(CURL *h, curl_write_callback f) { return SETOPT(h, CURLOPT_WRITEFUNCTION, f); }
CURLcode walctl_curl_setopt_read(CURL *h, curl_read_callback f) { return SETOPT(h, CURLOPT_READFUNCTION, f); }
CURLcode walctl_curl_setopt_header(CURL *h, curl_write_callback f) { return SETOPT(h, CURLOPT_HEADERFUNCTION, f); }
CURLcode walctl_curl_getinfo_long(CURL *h, CURLINFO i, long *v) { return GETINFO(h, i, v); }
CURLcode walctl_curl_getinfo_double(CURL *h, CURLINFO i, double *v) { return GETINFO(h, i, v); }
CURLcode walctl_curl_getinfo_string(CURL *h, CURLINFO i, char **v) { return GETINFO(h, i, v); }
