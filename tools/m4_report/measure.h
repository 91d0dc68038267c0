/* SPDX-License-Identifier: MIT */
/* Measurement harness of the m4_report images (tools/m4_report.sh), the same C code in each:
 *   - instructions: CMSDK APB timer 0 ticks (25 MHz); under `qemu-system-arm -icount shift=0`
 *     an instruction is one virtual nanosecond, so a tick is 40 instructions;
 *   - heap: mbedTLS's calloc/free (MBEDTLS_PLATFORM_MEMORY) counted per owner (client or server:
 *     both run in one image), requested bytes, current and peak;
 *   - stack: the main stack painted below the caller, high-water mark read back; the server
 *     runs on its own stack (measure_on_aux_stack) so the mark is the client's alone. */
#ifndef P11TLS_M4_REPORT_MEASURE_H
#define P11TLS_M4_REPORT_MEASURE_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

enum { MEASURE_CLIENT = 0, MEASURE_SERVER = 1 };

/* Starts the timer and installs the counting allocator. */
void measure_init(void);
uint32_t measure_ticks(void);
#define MEASURE_INSNS_PER_TICK 40u

/* Later allocations belong to `owner`. */
void measure_owner(int owner);
size_t measure_heap_now(int owner);
size_t measure_heap_peak(int owner);
/* The peak starts again from what `owner` holds now. */
void measure_heap_reset_peak(int owner);

/* Paints the main stack below the caller; measure_stack_used() is the deepest use since. */
void measure_stack_paint(void);
size_t measure_stack_used(void);

/* Calls fn(arg) on the auxiliary stack (linker.ld's .aux_stack). */
int measure_on_aux_stack(int (*fn)(void *), void *arg);

#ifdef __cplusplus
}
#endif

#endif
