/* Shared dlopen()/dlsym() helper for the lazily loaded libraries: see include/walctl_lazyload.h. */
#include "walctl_lazyload.h"
#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

int walctl_lazy_open(const char *const *names, const char *what, const char *package,
                     const char *const *symbols, void **slots, char *error, size_t errorSize) {
    void *handle = NULL;
    const char *why = NULL;
    for (const char *const *n = names; *n && !handle; n++) {
        handle = dlopen(*n, RTLD_NOW | RTLD_LOCAL);
        if (!handle && !why) why = dlerror();
    }
    if (!handle) {
        snprintf(error, errorSize, "%s not found (%s): install it, e.g. `apt-get install %s` (%s)",
                 names[0], what, package, why ? why : "dlopen failed");
        return 0;
    }
    size_t i = 0;
    for (const char *const *s = symbols; *s; s++, i++) {
        void *p = dlsym(handle, *s);
        if (!p) {
            snprintf(error, errorSize, "%s lacks %s (%s): it is too old; install a newer %s",
                     names[0], *s, what, package);
            for (size_t j = 0; j <= i; j++) slots[j] = NULL;
            dlclose(handle);
            return 0;
        }
        slots[i] = p;
    }
    return 1;
}
