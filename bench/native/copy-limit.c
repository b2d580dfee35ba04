/*
 * The copy limit in C: what libc memcpy alone does for the copies of dmalab's throughput
 * workloads, on this machine, with nothing else in the loop (no slot search, no checks).
 * It is the physical ceiling the `fractionOfCopyLimit` of `dmalab bench` is measured
 * against in JavaScript, here without the JavaScript.
 *
 *   cc -O2 -o copy-limit bench/native/copy-limit.c && ./copy-limit
 *   (or: sh scripts/native-copy-limit.sh)
 *
 * Same shapes as src/bench/copy-limit.ts: a 64 MiB pool whose 2 KiB slots are walked as the
 * 6.x slot search walks them (page-aligned from 4 KiB up, never across a 128-slot segment);
 * pingpong copies one size in and straight back; the ring draws sizes and originals with
 * xorshift32 (seed 1; size 64 << (r1 % 11), original page r2 % 65520 of a 256 MiB region)
 * and copies each mapping back 256 steps later. Prints one JSON object.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SLOT 2048u
#define NSLOTS 32768u
#define SEG 128u
#define RING 256u
#define PAGES 65520u

static uint32_t rng = 1;
static uint32_t next(void) {
    rng ^= rng << 13;
    rng ^= rng >> 17;
    rng ^= rng << 5;
    return rng;
}

static double now(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec * 1e-9;
}

/* where `size` bytes land after slot `s` in the walk */
static uint32_t walk(uint32_t s, uint32_t size) {
    uint32_t n = (size + SLOT - 1) / SLOT, align = size >= 4096 ? 2 : 1;
    s = (s + align - 1) / align * align;
    if (s % SEG + n > SEG) s = (s + SEG - 1) / SEG * SEG;
    if (s + n > NSLOTS) s = 0;
    return s;
}

static uint8_t *pool, *orig;
static volatile uint8_t sink;

/* pingpong: seconds of copy in + copy back of `size` bytes; bytes per second */
static double pingpong(uint32_t size, double seconds) {
    uint32_t s = 0;
    double bytes = 0, t0 = now(), t;
    do {
        for (int i = 0; i < 4096; i++) {
            s = walk(s, size);
            memcpy(pool + (size_t)s * SLOT, orig, size);
            memcpy(orig, pool + (size_t)s * SLOT, size);
            s += (size + SLOT - 1) / SLOT;
        }
        bytes += 4096.0 * 2 * size;
        sink = orig[0];
        t = now();
    } while (t - t0 < seconds);
    return bytes / (t - t0);
}

static double ring(double seconds, double *steps_per_sec) {
    uint32_t qs[RING], qz[RING], head = 0, s = 0;
    uint8_t *qo[RING];
    for (uint32_t i = 0; i < RING; i++) qs[i] = UINT32_MAX;
    double bytes = 0, steps = 0, t0 = now(), t;
    do {
        for (int i = 0; i < 1024; i++) {
            if (qs[head] != UINT32_MAX) {
                memcpy(qo[head], pool + (size_t)qs[head] * SLOT, qz[head]);
                bytes += qz[head];
            }
            uint32_t size = 64u << (next() % 11);
            uint8_t *o = orig + (size_t)(next() % PAGES) * 4096;
            s = walk(s, size);
            memcpy(pool + (size_t)s * SLOT, o, size);
            bytes += size;
            qs[head] = s, qo[head] = o, qz[head] = size;
            head = (head + 1) % RING;
            s += (size + SLOT - 1) / SLOT;
        }
        steps += 1024;
        sink = pool[0];
        t = now();
    } while (t - t0 < seconds);
    *steps_per_sec = steps / (t - t0);
    return bytes / (t - t0);
}

int main(void) {
    size_t pool_bytes = (size_t)NSLOTS * SLOT, orig_bytes = (size_t)PAGES * 4096 + 65536;
    pool = malloc(pool_bytes);
    orig = malloc(orig_bytes);
    if (!pool || !orig) {
        fprintf(stderr, "copy-limit: out of memory\n");
        return 4;
    }
    /* touch everything once: no first-touch page faults in the timed loops */
    memset(pool, 0, pool_bytes);
    memset(orig, 0x5a, orig_bytes);
    static const uint32_t sizes[] = {64, 512, 4096, 65536};
    printf("{\n");
    for (int i = 0; i < 4; i++) {
        double bps = pingpong(sizes[i], 1.0);
        printf("  \"pingpong-%u\": { \"copyBytesPerSec\": %.0f, \"pairsPerSec\": %.0f },\n", sizes[i], bps, bps / (2.0 * sizes[i]));
    }
    double steps;
    double bps = ring(1.0, &steps);
    printf("  \"ring\": { \"copyBytesPerSec\": %.0f, \"pairsPerSec\": %.0f }\n}\n", bps, steps);
    return 0;
}
