#ifndef WALCTL_LAZYLOAD_H
#define WALCTL_LAZYLOAD_H
/* Lazy loading of the optional shared libraries (libcurl, libpq, libcrypto).
 *
 * walctl links none of them: the CCurl, CLibPQ and CCrypto modules only carry their headers, and this
 * target defines every function Swift calls from them, forwarding through pointers resolved with
 * dlsym() after a dlopen() on first use. A process that never uses S3 or PostgreSQL never maps those
 * libraries (about 40 shared objects for libcurl's TLS/LDAP/SSH/... tree), which is most of walctl's
 * start-up cost. When a library is missing the forwarding functions return their failure value
 * (NULL, an error code) and the *_load_error() functions in the module shims give a message naming
 * the library and the package to install; nothing aborts. */
#include <stddef.h>

/* Opens the first of `names` (a NULL-terminated list of sonames) that dlopen() accepts, with
 * RTLD_NOW | RTLD_LOCAL, and resolves each of `symbols` (NULL-terminated) into the matching slot of
 * `slots`. Returns 1 on success; 0 with a message in `error` (`what` names the purpose and `package`
 * the package that provides the library) otherwise, leaving every slot NULL. */
int walctl_lazy_open(const char *const *names, const char *what, const char *package,
                     const char *const *symbols, void **slots, char *error, size_t errorSize);
#endif
