#ifndef WALCTL_CRC32C_H
#define WALCTL_CRC32C_H
#include <stddef.h>
#include <stdint.h>

/// Update a running CRC-32C (Castagnoli) over `len` bytes. The caller starts with 0xFFFFFFFF and
/// finishes with `^ 0xFFFFFFFF`, as PostgreSQL's INIT_CRC32C / FIN_CRC32C do.
uint32_t walctl_crc32c_update(uint32_t crc, const void *data, size_t len);

/// 1 when the hardware (SSE4.2) path is in use, 0 for the portable table path.
int walctl_crc32c_hardware(void);

/// The portable table implementation, exposed so tests can compare both paths.
uint32_t walctl_crc32c_update_sw(uint32_t crc, const void *data, size_t len);
#endif
