/* FedAvg's fixed-point fold in one pass over memory (disco/aggregation/fold.py loads it).
 *
 * An update of weights w, made from the global model g, with sample count n, adds to each sum
 *
 *     t = rint(float64(w - g) * n * 2^24)      (w - g in float32; the product is exact)
 *
 * and is refused, whole, if some |w - g| is not below 256 (or not finite). fold.py computes the
 * same numbers with numpy, bit for bit: this file only does it in one pass instead of several.
 * Sums are updated modulo 2^64 (uint64) and an update is taken back by folding it again with -n,
 * which restores them exactly; fold.py bounds the counts so that a sum never really wraps.
 */
#include <math.h>
#include <stddef.h>
#include <stdint.h>

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#define DISCO_X86 1
#endif

enum { FOLD_OK = 0, FOLD_OUT_OF_RANGE = 1, FOLD_NOT_FINITE = 2 };

static const float LIMIT = 256.0f;
static const double MAGIC = 6755399441055744.0; /* 1.5 * 2^52: x + MAGIC rounds x to an integer */

typedef size_t (*fold_fn)(const float *, const float *, uint64_t *, size_t, size_t, double,
                          int32_t *);

/* Fold values [lo, hi) of one update (times = n * 2^24); returns hi, or the index of the first
 * refused value, from which nothing is added (*status says why). */
static size_t fold_scalar(const float *w, const float *g, uint64_t *s, size_t lo, size_t hi,
                          double times, int32_t *status) {
    for (size_t i = lo; i < hi; i++) {
        float d = g ? w[i] - g[i] : w[i];
        if (!(fabsf(d) < LIMIT)) {
            *status = isfinite(w[i]) ? FOLD_OUT_OF_RANGE : FOLD_NOT_FINITE;
            return i;
        }
        s[i] += (uint64_t)(int64_t)rint((double)d * times);
    }
    return hi;
}

#ifdef DISCO_X86
/* The same, eight values at a time: adding MAGIC to the exact product (|x| < 2^51) rounds it to
 * the nearest integer, ties to even as rint does, and leaves that integer in the low bits. */
__attribute__((target("avx2"))) static size_t fold_avx2(const float *w, const float *g,
                                                         uint64_t *s, size_t lo, size_t hi,
                                                         double times, int32_t *status) {
    const __m256 limit = _mm256_set1_ps(LIMIT), sign = _mm256_set1_ps(-0.0f);
    const __m256d by = _mm256_set1_pd(times), magic = _mm256_set1_pd(MAGIC);
    const __m256i magic_bits = _mm256_castpd_si256(magic);
    size_t i = lo;
    for (; i + 8 <= hi; i += 8) {
        __m256 d = _mm256_loadu_ps(w + i);
        if (g) d = _mm256_sub_ps(d, _mm256_loadu_ps(g + i));
        __m256 far = _mm256_cmp_ps(_mm256_andnot_ps(sign, d), limit, _CMP_NLT_UQ);
        if (_mm256_movemask_ps(far)) break; /* the scalar loop finds it and says why */
        __m256d low = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(d)), by);
        __m256d high = _mm256_mul_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(d, 1)), by);
        __m256i a = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(low, magic)), magic_bits);
        __m256i b = _mm256_sub_epi64(_mm256_castpd_si256(_mm256_add_pd(high, magic)), magic_bits);
        __m256i *out = (__m256i *)(s + i);
        _mm256_storeu_si256(out, _mm256_add_epi64(_mm256_loadu_si256(out), a));
        _mm256_storeu_si256(out + 1, _mm256_add_epi64(_mm256_loadu_si256(out + 1), b));
    }
    return fold_scalar(w, g, s, i, hi, times, status);
}

/* What update j adds to 8 sums at w + i: float64(w - g) * times + MAGIC, whose bits are those of
 * the term plus MAGIC's (for a refused value, some other bits: the same ones every time). */
__attribute__((target("avx2,fma"))) static inline void raw_terms(const float *w, __m256 base,
                                                                 size_t i, __m256d by,
                                                                 __m256i *low, __m256i *high) {
    const __m256d magic = _mm256_set1_pd(MAGIC);
    __m256 d = _mm256_sub_ps(_mm256_loadu_ps(w + i), base);
    /* d * times is exact, so the fused multiply-add rounds only once, as rint does */
    *low = _mm256_castpd_si256(_mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_castps256_ps128(d)), by, magic));
    *high = _mm256_castpd_si256(_mm256_fmadd_pd(_mm256_cvtps_pd(_mm256_extractf128_ps(d, 1)), by, magic));
}

/* Several updates over [lo, hi) at once, each vector of sums loaded and stored once for all of
 * them, a block of vectors at a time; the block is then checked for refused values. An update
 * refused in a block is taken out of it (its raw terms recomputed, so exactly) and out of
 * [origin, block) before returning; its status says why. */
__attribute__((target("avx2,fma"))) static void fold_many_avx2(const float *const *ws,
                                                               const float *g, uint64_t *s,
                                                               size_t origin, size_t lo, size_t hi,
                                                               size_t k, const double *times,
                                                               int32_t *status) {
    const __m256 limit = _mm256_set1_ps(LIMIT), sign = _mm256_set1_ps(-0.0f);
    const uint64_t magic_bits = 0x4338000000000000ULL; /* the bits of MAGIC */
    const __m256i magic_vector = _mm256_set1_epi64x((long long)magic_bits);
    int32_t fine = FOLD_OK;
    uint64_t ok = 0;
    __m256d by[64]; /* k <= 64 */
    for (size_t j = 0; j < k; j++) {
        ok += status[j] == FOLD_OK;
        by[j] = _mm256_set1_pd(times[j]);
    }
    size_t i = lo;
    while (i + 8 <= hi && ok > 0) {
        size_t vectors = (hi - i) / 8 < 16 ? (hi - i) / 8 : 16;
        size_t start = i, stop = i + 8 * vectors;
        __m256 far = _mm256_setzero_ps();
        for (; i < stop; i += 8) {
            __m256i *out = (__m256i *)(s + i);
            __m256i a = _mm256_loadu_si256(out), b = _mm256_loadu_si256(out + 1);
            __m256 base = g ? _mm256_loadu_ps(g + i) : _mm256_setzero_ps();
            for (size_t j = 0; j < k; j++) {
                if (status[j] != FOLD_OK) continue;
                __m256i low, high;
                raw_terms(ws[j], base, i, by[j], &low, &high);
                __m256 d = _mm256_sub_ps(_mm256_loadu_ps(ws[j] + i), base);
                far = _mm256_or_ps(far, _mm256_cmp_ps(_mm256_andnot_ps(sign, d), limit, _CMP_NLT_UQ));
                a = _mm256_add_epi64(a, low);
                b = _mm256_add_epi64(b, high);
            }
            const __m256i offset = _mm256_set1_epi64x((long long)(ok * magic_bits));
            _mm256_storeu_si256(out, _mm256_sub_epi64(a, offset));
            _mm256_storeu_si256(out + 1, _mm256_sub_epi64(b, offset));
        }
        if (!_mm256_movemask_ps(far)) continue;
        for (size_t j = 0; j < k; j++) { /* which updates have a refused value in the block */
            if (status[j] != FOLD_OK) continue;
            int32_t why = FOLD_OK;
            fold_scalar(ws[j], g, s, start, stop, 0.0, &why); /* adds zeros; finds why */
            if (why == FOLD_OK) continue;
            for (size_t v = start; v < stop; v += 8) { /* out of the block, as it went in */
                __m256 base = g ? _mm256_loadu_ps(g + v) : _mm256_setzero_ps();
                __m256i low, high, *out = (__m256i *)(s + v);
                raw_terms(ws[j], base, v, by[j], &low, &high);
                low = _mm256_sub_epi64(low, magic_vector);
                high = _mm256_sub_epi64(high, magic_vector);
                _mm256_storeu_si256(out, _mm256_sub_epi64(_mm256_loadu_si256(out), low));
                _mm256_storeu_si256(out + 1, _mm256_sub_epi64(_mm256_loadu_si256(out + 1), high));
            }
            fold_avx2(ws[j], g, s, origin, start, -times[j], &fine); /* and out of the rest */
            status[j] = why;
            ok--;
        }
    }
    for (size_t j = 0; j < k; j++) { /* the last values, one update at a time */
        if (status[j] != FOLD_OK) continue;
        size_t end = fold_scalar(ws[j], g, s, i, hi, times[j], &status[j]);
        if (status[j] != FOLD_OK) fold_avx2(ws[j], g, s, origin, end, -times[j], &fine);
    }
}
#endif

static fold_fn chosen = 0;
static int many_ok = 0; /* fold_many_avx2 can run (it needs FMA too) */

static fold_fn pick(void) {
    if (!chosen) {
        fold_fn best = fold_scalar;
#ifdef DISCO_X86
        __builtin_cpu_init();
        if (__builtin_cpu_supports("avx2")) best = fold_avx2;
        many_ok = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
        chosen = best;
    }
    return chosen;
}

/* Run the scalar loops even where AVX2 is there (1), or the best there is (0): for the tests,
 * which compare them. */
void disco_fold_force_scalar(int scalar) {
    pick();
    chosen = fold_scalar;
#ifdef DISCO_X86
    if (!scalar && __builtin_cpu_supports("avx2")) chosen = fold_avx2;
#endif
}

/* Which loop runs here: "avx2" or "scalar". */
const char *disco_fold_kind(void) {
#ifdef DISCO_X86
    if (pick() == fold_avx2) return "avx2";
#endif
    return "scalar";
}

/* Fold k updates of one tensor of n values into sums, `chunk` values at a time, so that the
 * sums and g stay in cache while every update passes over them. An update with a refused value
 * is taken back whole from this tensor and skipped from then on; status[j] says why. Updates
 * refused on entry (status[j] != 0) are skipped. g may be NULL (the updates are changes). */
void disco_fold(size_t n, const float *g, uint64_t *sums, size_t k, const float *const *ws,
                const int64_t *counts, int32_t *status, size_t chunk) {
    fold_fn fold = pick();
    if (chunk == 0) chunk = n ? n : 1;
#ifdef DISCO_X86
    double times[64];
    if (fold == fold_avx2 && k <= 64 && many_ok) {
        for (size_t j = 0; j < k; j++) times[j] = (double)counts[j] * 16777216.0;
        for (size_t start = 0; start < n; start += chunk) {
            size_t stop = n - start < chunk ? n : start + chunk;
            fold_many_avx2(ws, g, sums, 0, start, stop, k, times, status);
        }
        return;
    }
#endif
    for (size_t start = 0; start < n; start += chunk) {
        size_t stop = n - start < chunk ? n : start + chunk;
        for (size_t j = 0; j < k; j++) {
            if (status[j] != FOLD_OK) continue;
            double times = (double)counts[j] * 16777216.0;
            size_t end = fold(ws[j], g, sums, start, stop, times, &status[j]);
            if (status[j] != FOLD_OK) {
                int32_t fine = FOLD_OK; /* values before `end` passed: taking them back cannot fail */
                fold(ws[j], g, sums, 0, end, -times, &fine);
            }
        }
    }
}
