#ifndef WALCTL_CLIBPQ_SHIM_H
#define WALCTL_CLIBPQ_SHIM_H
/* libpq's declarations only: walctl does not link libpq. Every PQ* function Swift calls is defined in
 * the CLazyLoad target, which dlopen()s libpq.so.5 on first use, so commands that never talk to
 * PostgreSQL never load it. A PQ* function Swift starts calling must be added to
 * Sources/CLazyLoad/libpq.c (the link fails until it is).
 * Debian/Ubuntu keep libpq-fe.h in /usr/include/postgresql, other systems in /usr/include. */
#if __has_include(<libpq-fe.h>)
#include <libpq-fe.h>
#else
#include <postgresql/libpq-fe.h>
#endif

/* Loads libpq if not done yet. NULL when it is usable, otherwise a message naming the missing
 * library and the package to install. */
const char *walctl_libpq_load_error(void);
#endif
