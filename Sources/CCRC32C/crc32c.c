#include "crc32c.h"
#include <string.h>

static uint32_t table[8][256];
static int table_ready = 0;

static void build_table(void) {
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = (c & 1) ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++)
        for (int t = 1; t < 8; t++) table[t][i] = (table[t - 1][i] >> 8) ^ table[0][table[t - 1][i] & 0xFF];
    table_ready = 1;
}

uint32_t walctl_crc32c_update_sw(uint32_t crc, const void *data, size_t len) {
    if (!table_ready) build_table();
    const unsigned char *p = (const unsigned char *)data;
    while (len >= 8) {
        uint64_t w; memcpy(&w, p, 8);
        w ^= crc;
        crc = table[7][w & 0xFF] ^ table[6][(w >> 8) & 0xFF] ^ table[5][(w >> 16) & 0xFF] ^ table[4][(w >> 24) & 0xFF] ^
              table[3][(w >> 32) & 0xFF] ^ table[2][(w >> 40) & 0xFF] ^ table[1][(w >> 48) & 0xFF] ^ table[0][w >> 56];
        p += 8; len -= 8;
    }
    while (len--) crc = (crc >> 8) ^ table[0][(crc ^ *p++) & 0xFF];
    return crc;
}

#if defined(__x86_64__)
#include <nmmintrin.h>
#include <pthread.h>

/* One lane of the hardware CRC: the raw register update over `len` bytes (no conditioning). */
__attribute__((target("sse4.2")))
static uint32_t crc32c_lane(uint32_t crc, const unsigned char *p, size_t len) {
    uint64_t c = crc;
    while (len >= 8) { uint64_t w; memcpy(&w, p, 8); c = _mm_crc32_u64(c, w); p += 8; len -= 8; }
    uint32_t c32 = (uint32_t)c;
    while (len--) c32 = _mm_crc32_u8(c32, *p++);
    return c32;
}

/*
 * The crc32 instruction has a latency of 3 cycles and a throughput of 1 per cycle, so one
 * dependency chain runs at a third of the unit's speed. Long inputs are cut into rounds of three
 * adjacent STRIPE-byte stripes whose CRCs run as three independent chains, then joined: the CRC
 * register is linear over GF(2), so crc(A || B) = shift(crc(A), |B|) ^ crc0(B), where crc0 starts
 * from 0 and shift(v, n) is the register after n zero bytes. shift(., STRIPE) and shift(., 2 STRIPE)
 * are linear maps on 32 bits, applied with four 256-entry tables each, built once from the CRC
 * of zero bytes.
 */
#define STRIPE 512
static uint32_t shift1[4][256], shift2[4][256];
static pthread_once_t shift_once = PTHREAD_ONCE_INIT;

static void build_shift_table(uint32_t table[4][256], size_t zeros) {
    static const unsigned char zero[2 * STRIPE];
    uint32_t basis[32];
    for (int bit = 0; bit < 32; bit++) basis[bit] = crc32c_lane(1u << bit, zero, zeros);
    for (int k = 0; k < 4; k++)
        for (uint32_t v = 0; v < 256; v++) {
            uint32_t r = 0;
            for (int j = 0; j < 8; j++) if (v & (1u << j)) r ^= basis[8 * k + j];
            table[k][v] = r;
        }
}
static void build_shift_tables(void) {
    build_shift_table(shift1, STRIPE);
    build_shift_table(shift2, 2 * STRIPE);
}
static inline uint32_t shift_by(uint32_t table[4][256], uint32_t v) {
    return table[0][v & 0xFF] ^ table[1][(v >> 8) & 0xFF] ^ table[2][(v >> 16) & 0xFF] ^ table[3][v >> 24];
}

__attribute__((target("sse4.2")))
static uint32_t crc32c_hw(uint32_t crc, const void *data, size_t len) {
    const unsigned char *p = (const unsigned char *)data;
    if (len >= 3 * STRIPE) {
        pthread_once(&shift_once, build_shift_tables);
        do {
            uint64_t a = crc, b = 0, c = 0;
            for (size_t i = 0; i < STRIPE; i += 8) {
                uint64_t wa, wb, wc;
                memcpy(&wa, p + i, 8); memcpy(&wb, p + STRIPE + i, 8); memcpy(&wc, p + 2 * STRIPE + i, 8);
                a = _mm_crc32_u64(a, wa); b = _mm_crc32_u64(b, wb); c = _mm_crc32_u64(c, wc);
            }
            crc = shift_by(shift2, (uint32_t)a) ^ shift_by(shift1, (uint32_t)b) ^ (uint32_t)c;
            p += 3 * STRIPE; len -= 3 * STRIPE;
        } while (len >= 3 * STRIPE);
    }
    return crc32c_lane(crc, p, len);
}
static int hw = -1;
int walctl_crc32c_hardware(void) {
    if (hw < 0) { __builtin_cpu_init(); hw = __builtin_cpu_supports("sse4.2") ? 1 : 0; }
    return hw;
}
uint32_t walctl_crc32c_update(uint32_t crc, const void *data, size_t len) {
    if (walctl_crc32c_hardware()) return crc32c_hw(crc, data, len);
    return walctl_crc32c_update_sw(crc, data, len);
}
#else
int walctl_crc32c_hardware(void) { return 0; }
uint32_t walctl_crc32c_update(uint32_t crc, const void *data, size_t len) { return walctl_crc32c_update_sw(crc, data, len); }
#endif
