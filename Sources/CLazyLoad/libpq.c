/* libpq, loaded on first use: definitions of the PQ* functions walctl calls (see ../CLibPQ/shim.h).
 * Each forwards through a pointer resolved once from libpq.so.5. Before the library is loaded only
 * the connection functions can be reached (everything else needs a PGconn or PGresult), and they
 * return NULL / CONNECTION_BAD when it cannot be loaded: walctl_libpq_load_error() says why. */
#include "../CLibPQ/shim.h"
#include "walctl_lazyload.h"
#include <pthread.h>
#include <stddef.h>

/* F(return type, name, parameters, arguments, value when libpq is missing); V(...) for void.
 * All exist in libpq 10 and later. Add a line here when Swift starts calling another PQ* function. */
#define LIBPQ_FUNCTIONS(F, V) \
    F(PGconn *, PQconnectdb, (const char *a), (a), NULL) \
    F(PGconn *, PQconnectdbParams, (const char *const *k, const char *const *v, int e), (k, v, e), NULL) \
    V(PQfinish, (PGconn *c), (c)) \
    F(char *, PQdb, (const PGconn *c), (c), NULL) \
    F(char *, PQuser, (const PGconn *c), (c), NULL) \
    F(char *, PQhost, (const PGconn *c), (c), NULL) \
    F(char *, PQport, (const PGconn *c), (c), NULL) \
    F(ConnStatusType, PQstatus, (const PGconn *c), (c), CONNECTION_BAD) \
    F(PGTransactionStatusType, PQtransactionStatus, (const PGconn *c), (c), PQTRANS_UNKNOWN) \
    F(const char *, PQparameterStatus, (const PGconn *c, const char *p), (c, p), NULL) \
    F(int, PQserverVersion, (const PGconn *c), (c), 0) \
    F(char *, PQerrorMessage, (const PGconn *c), (c), (char *)"libpq is not loaded") \
    F(int, PQsocket, (const PGconn *c), (c), -1) \
    F(int, PQbackendPID, (const PGconn *c), (c), 0) \
    F(PGresult *, PQexec, (PGconn *c, const char *q), (c, q), NULL) \
    F(PGresult *, PQexecParams, (PGconn *c, const char *q, int n, const Oid *t, const char *const *v, \
                                 const int *l, const int *f, int r), (c, q, n, t, v, l, f, r), NULL) \
    F(int, PQsendQuery, (PGconn *c, const char *q), (c, q), 0) \
    F(int, PQsetSingleRowMode, (PGconn *c), (c), 0) \
    F(PGresult *, PQgetResult, (PGconn *c), (c), NULL) \
    F(int, PQisBusy, (PGconn *c), (c), 0) \
    F(int, PQconsumeInput, (PGconn *c), (c), 0) \
    F(int, PQputCopyData, (PGconn *c, const char *b, int n), (c, b, n), -1) \
    F(int, PQputCopyEnd, (PGconn *c, const char *e), (c, e), -1) \
    F(int, PQgetCopyData, (PGconn *c, char **b, int a), (c, b, a), -2) \
    F(int, PQflush, (PGconn *c), (c), -1) \
    F(ExecStatusType, PQresultStatus, (const PGresult *r), (r), PGRES_FATAL_ERROR) \
    F(char *, PQresStatus, (ExecStatusType s), (s), (char *)"PGRES_FATAL_ERROR") \
    F(char *, PQresultErrorMessage, (const PGresult *r), (r), (char *)"libpq is not loaded") \
    F(char *, PQresultErrorField, (const PGresult *r, int f), (r, f), NULL) \
    F(int, PQntuples, (const PGresult *r), (r), 0) \
    F(int, PQnfields, (const PGresult *r), (r), 0) \
    F(char *, PQfname, (const PGresult *r, int f), (r, f), NULL) \
    F(char *, PQcmdTuples, (PGresult *r), (r), NULL) \
    F(char *, PQgetvalue, (const PGresult *r, int t, int f), (r, t, f), NULL) \
    F(int, PQgetlength, (const PGresult *r, int t, int f), (r, t, f), 0) \
    F(int, PQgetisnull, (const PGresult *r, int t, int f), (r, t, f), 1) \
    V(PQclear, (PGresult *r), (r)) \
    V(PQfreemem, (void *p), (p)) \
    F(char *, PQescapeLiteral, (PGconn *c, const char *s, size_t n), (c, s, n), NULL) \
    F(char *, PQescapeIdentifier, (PGconn *c, const char *s, size_t n), (c, s, n), NULL) \
    F(int, PQlibVersion, (void), (), 0)

static struct {
#define SLOT_F(ret, name, params, args, fail) __typeof__(name) *p_##name;
#define SLOT_V(name, params, args) __typeof__(name) *p_##name;
    LIBPQ_FUNCTIONS(SLOT_F, SLOT_V)
#undef SLOT_F
#undef SLOT_V
} fn;

static pthread_once_t once = PTHREAD_ONCE_INIT;
static int loaded;
static char error[512];

static void load(void) {
    static const char *const names[] = {"libpq.so.5", "libpq.so", NULL};
    static const char *const symbols[] = {
#define NAME_F(ret, name, params, args, fail) #name,
#define NAME_V(name, params, args) #name,
        LIBPQ_FUNCTIONS(NAME_F, NAME_V)
#undef NAME_F
#undef NAME_V
        NULL};
    loaded = walctl_lazy_open(names, "needed to talk to PostgreSQL", "libpq5", symbols, (void **)&fn,
                              error, sizeof error);
}

/* 1 when libpq is loaded (loading it now if needed). */
static int ready(void) {
    pthread_once(&once, load);
    return loaded;
}

const char *walctl_libpq_load_error(void) { return ready() ? NULL : error; }

#define DEFINE_F(ret, name, params, args, fail) \
    ret name params { return ready() ? fn.p_##name args : (fail); }
#define DEFINE_V(name, params, args) \
    void name params { if (ready()) fn.p_##name args; }
LIBPQ_FUNCTIONS(DEFINE_F, DEFINE_V)
