/* bench_peak.h -- the core's arithmetic peaks, measured (header only: every
 * bench .c file is its own program).
 *
 *     double fma = bench_peak_fma();        // GFLOP/s of float FMAs, one thread
 *     double dp = bench_peak_dpbf16();      // of vdpbf16ps, 0 without AVX512-BF16
 *     double i8 = bench_peak_vnni();        // int8 GOP/s of vpdpbusd, 0 without VNNI
 *
 * Register operands only, independent accumulators, nothing loaded or
 * stored: the most either instruction can do on this core, the ceiling a
 * roofline draws.  vdpbf16ps multiplies 16 pairs of bfloat16 and adds both
 * products to 16 floats (64 FLOPs); an AVX-512 FMA does 32; vpdpbusd
 * multiplies 64 pairs of 8-bit integers into 16 sums (128 operations).  Whether the
 * first is worth using for bfloat16 tables depends on how many of them the
 * core issues per cycle, which is what this measures (docs/PERFORMANCE.md).
 */
#ifndef BENCH_PEAK_H
#define BENCH_PEAK_H

#include "bench/bench.h"

#if defined(__x86_64__)
#include <immintrin.h>

/* Each trial is ~1 ms; the best of 200: noise from the neighbours only ever
 * slows a trial down, and trials this short mostly fit between two of
 * their time slices (the scoring rates leave interrupted requests out too,
 * bench.h's BENCH_STEADY_CUT). */
#define BENCH_PEAK_ITERS 100000L
#define BENCH_PEAK_TRIALS 200

/* Seconds for BENCH_PEAK_ITERS steps of one instruction's loop. */
typedef double (*bench_peak_trial)(void);

/* The best rate of trial, in giga-operations per second, ops per step. */
static inline double bench_peak_best(bench_peak_trial trial, double ops_per_step)
{
    double best = 0.0;
    for (int i = 0; i < BENCH_PEAK_TRIALS; i++) {
        double g = BENCH_PEAK_ITERS * ops_per_step / trial() / 1e9;
        best = g > best ? g : best;
    }
    return best;
}

/* Twelve independent FMAs a step (enough to cover the latency on two
 * ports).  The asm statements keep the loop and its result. */
__attribute__((target("avx512f,fma"))) static double bench_peak_fma_trial(void)
{
    __m512 acc[12], a = _mm512_set1_ps(1.0f), b = _mm512_set1_ps(1e-7f);
    for (int i = 0; i < 12; i++)
        acc[i] = _mm512_setzero_ps();
    uint64_t t0 = util_now_ns();
    for (long it = 0; it < BENCH_PEAK_ITERS; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++)
            acc[i] = _mm512_fmadd_ps(a, b, acc[i]);
        __asm__ volatile("" : "+v"(a));
    }
    double s = (double)(util_now_ns() - t0) / 1e9;
    for (int i = 1; i < 12; i++)
        acc[0] = _mm512_add_ps(acc[0], acc[i]);
    __asm__ volatile("" : : "v"(acc[0]));
    return s;
}

/* Sixteen: on Zen 5 (latency 6, two a cycle) eight reach only two thirds
 * of the rate, sixteen all of it (measured: 286 against 430 GFLOP/s); on
 * the Intel core measured before, eight already did. */
#define BENCH_PEAK_DP_ACC 16
__attribute__((target("avx512f,avx512bf16"))) static double bench_peak_dpbf16_trial(void)
{
    __m512 acc[BENCH_PEAK_DP_ACC];
    __m512bh a = (__m512bh)_mm512_set1_epi32(0x3F803F80);   /* (1, 1) */
    for (int i = 0; i < BENCH_PEAK_DP_ACC; i++)
        acc[i] = _mm512_setzero_ps();
    uint64_t t0 = util_now_ns();
    for (long it = 0; it < BENCH_PEAK_ITERS; it++) {
#pragma GCC unroll 16
        for (int i = 0; i < BENCH_PEAK_DP_ACC; i++)
            acc[i] = _mm512_dpbf16_ps(acc[i], a, a);
        __asm__ volatile("" : "+v"(a));
    }
    double s = (double)(util_now_ns() - t0) / 1e9;
    for (int i = 1; i < BENCH_PEAK_DP_ACC; i++)
        acc[0] = _mm512_add_ps(acc[0], acc[i]);
    __asm__ volatile("" : : "v"(acc[0]));
    return s;
}

__attribute__((target("avx512f,avx512bw,avx512vnni"))) static double bench_peak_vnni_trial(void)
{
    __m512i acc[12], a = _mm512_set1_epi8(3), b = _mm512_set1_epi8(5);
    for (int i = 0; i < 12; i++)
        acc[i] = _mm512_setzero_si512();
    uint64_t t0 = util_now_ns();
    for (long it = 0; it < BENCH_PEAK_ITERS; it++) {
#pragma GCC unroll 12
        for (int i = 0; i < 12; i++)
            acc[i] = _mm512_dpbusd_epi32(acc[i], a, b);
        __asm__ volatile("" : "+v"(a));
    }
    double s = (double)(util_now_ns() - t0) / 1e9;
    for (int i = 1; i < 12; i++)
        acc[0] = _mm512_add_epi32(acc[0], acc[i]);
    __asm__ volatile("" : : "v"(acc[0]));
    return s;
}
#endif

/* GFLOP/s of AVX-512 FMAs on one thread, 0 where the CPU has none. */
static inline double bench_peak_fma(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f"))
        return bench_peak_best(bench_peak_fma_trial, 12.0 * 32.0);
#endif
    return 0.0;
}

/* Giga-operations/s of vpdpbusd (int8), 0 where the CPU lacks AVX512-VNNI. */
static inline double bench_peak_vnni(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512vnni"))
        return bench_peak_best(bench_peak_vnni_trial, 12.0 * 128.0);
#endif
    return 0.0;
}

/* GFLOP/s of vdpbf16ps on one thread, 0 where the CPU lacks AVX512-BF16. */
static inline double bench_peak_dpbf16(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512bf16"))
        return bench_peak_best(bench_peak_dpbf16_trial, BENCH_PEAK_DP_ACC * 64.0);
#endif
    return 0.0;
}

#endif
