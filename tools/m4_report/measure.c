/* SPDX-License-Identifier: MIT */
#include "measure.h"

#include <stdlib.h>

#include <mbedtls/platform.h>

#define TIMER0 ((volatile uint32_t *)0x40000000u) /* CTRL, VALUE, RELOAD */

extern uint32_t __stack_bottom[];
extern char __aux_stack_top[];

static struct {
    size_t now, peak;
} heap[2];
static int current_owner;

static void *counting_calloc(size_t n, size_t size) {
    if (size && n > (SIZE_MAX - 8) / size) return NULL;
    const size_t bytes = n * size;
    size_t *p = calloc(1, bytes + 8);
    if (!p) return NULL;
    p[0] = bytes;
    p[1] = (size_t)current_owner;
    heap[current_owner].now += bytes;
    if (heap[current_owner].now > heap[current_owner].peak) heap[current_owner].peak = heap[current_owner].now;
    return p + 2;
}

static void counting_free(void *q) {
    if (!q) return;
    size_t *p = (size_t *)q - 2;
    heap[p[1]].now -= p[0];
    free(p);
}

void measure_init(void) {
    TIMER0[0] = 0;
    TIMER0[2] = 0xFFFFFFFFu;
    TIMER0[1] = 0xFFFFFFFFu;
    TIMER0[0] = 1;
    mbedtls_platform_set_calloc_free(counting_calloc, counting_free);
}

uint32_t measure_ticks(void) { return 0xFFFFFFFFu - TIMER0[1]; }

void measure_owner(int owner) { current_owner = owner; }
size_t measure_heap_now(int owner) { return heap[owner].now; }
size_t measure_heap_peak(int owner) { return heap[owner].peak; }
void measure_heap_reset_peak(int owner) { heap[owner].peak = heap[owner].now; }

#define PAINT 0xA5A5A5A5u
static uint32_t *paint_top;

__attribute__((noinline)) void measure_stack_paint(void) {
    uint32_t *sp;
    __asm__ volatile("mov %0, sp" : "=r"(sp));
    paint_top = sp - 16; /* leave this frame alone */
    for (uint32_t *p = __stack_bottom; p < paint_top; ++p) *p = PAINT;
}

size_t measure_stack_used(void) {
    const uint32_t *p = __stack_bottom;
    while (p < paint_top && *p == PAINT) ++p;
    return (size_t)(paint_top - p) * sizeof *p;
}

int measure_on_aux_stack(int (*fn)(void *), void *arg) {
    int ret;
    __asm__ volatile(
        "mov r4, sp\n\t"
        "mov sp, %[top]\n\t"
        "push {r4, r5}\n\t"
        "mov r0, %[arg]\n\t"
        "blx %[fn]\n\t"
        "pop {r4, r5}\n\t"
        "mov sp, r4\n\t"
        "mov %[ret], r0\n\t"
        : [ret] "=r"(ret)
        : [top] "r"(__aux_stack_top), [fn] "r"(fn), [arg] "r"(arg)
        : "r0", "r1", "r2", "r3", "r4", "r5", "r12", "lr", "memory", "cc", "d0", "d1", "d2", "d3", "d4", "d5", "d6",
          "d7");
    return ret;
}
