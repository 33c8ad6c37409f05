/*
 * crc32c.h — CRC-32C (Castagnoli), the checksum of every tq file.
 *
 * Reflected polynomial 0x82F63B78, initial value and final XOR 0xFFFFFFFF
 * (the CRC of iSCSI, ext4, Btrfs); check value: "123456789" -> 0xE3069283.
 * Chosen over CRC-32 (zlib) for its better error detection on the short
 * messages of file headers, and because hardware has it (SSE4.2, ARMv8) should
 * it ever be worth using; this is the portable table-driven version.
 */
#ifndef TQ_CRC32C_H
#define TQ_CRC32C_H

#include <stddef.h>
#include <stdint.h>

#include "../core/common.h"

/**
 * Extend a CRC: crc is the CRC of the bytes before (0 for none); returns the
 * CRC of those bytes followed by data[0..n). So
 * tq_crc32c(tq_crc32c(0, a, na), b, nb) == tq_crc32c(0, a||b, na+nb).
 */
TQ_INTERNAL uint32_t tq_crc32c(uint32_t crc, const void *data, size_t n);

#endif /* TQ_CRC32C_H */
