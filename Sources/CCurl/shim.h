#ifndef WALCTL_CCURL_SHIM_H
#define WALCTL_CCURL_SHIM_H
/* libcurl's declarations only: walctl does not link libcurl. The functions Swift calls
 * (curl_global_init, curl_easy_init, ...) and the typed setopt/getinfo wrappers below are defined in
 * the CLazyLoad target, which dlopen()s libcurl.so.4 the first time one of them runs, so a process
 * that never touches an S3 repository never loads libcurl and its TLS/LDAP/SSH/... dependencies.
 * A function Swift starts calling must be added to Sources/CLazyLoad/curl.c (the link fails until it is). */
#include <curl/curl.h>

/* curl_easy_setopt / curl_easy_getinfo are variadic: typed wrappers for Swift. */
CURLcode walctl_curl_setopt_long(CURL *h, CURLoption o, long v);
CURLcode walctl_curl_setopt_off(CURL *h, CURLoption o, curl_off_t v);
CURLcode walctl_curl_setopt_string(CURL *h, CURLoption o, const char *v);
CURLcode walctl_curl_setopt_pointer(CURL *h, CURLoption o, void *v);
CURLcode walctl_curl_setopt_slist(CURL *h, CURLoption o, struct curl_slist *v);
CURLcode walctl_curl_setopt_write(CURL *h, curl_write_callback f);
CURLcode walctl_curl_setopt_read(CURL *h, curl_read_callback f);
CURLcode walctl_curl_setopt_header(CURL *h, curl_write_callback f);
CURLcode walctl_curl_getinfo_long(CURL *h, CURLINFO i, long *v);
CURLcode walctl_curl_getinfo_double(CURL *h, CURLINFO i, double *v);
CURLcode walctl_curl_getinfo_string(CURL *h, CURLINFO i, char **v);

/* Loads libcurl (and libcrypto, which S3 signing needs) if not done yet. NULL when both are usable,
 * otherwise a message naming the missing library and the package to install. */
const char *walctl_curl_load_error(void);
#endif
