/*
 * Fused orthogonal gradient projection for CPU tensors.
 *
 * Why hand-written: no library offers a per-tensor ("segmented") projection. Built from torch ops,
 * it costs ~10 memory passes plus a dispatch per op and per tensor; this kernel makes two passes over
 * each (gradient, reference) pair, whatever the number of tensors:
 *
 *   pass 1   <g,r>, <g,g>, <r,r>           (one read of g and r)
 *   coefs    c = <g,r> / (<r,r> + eps)      (c = 0 where conflict-only and <g,r> >= 0)
 *            ||g - c r||^2 = <g,g> - 2c<g,r> + c^2<r,r>, so renorm needs no third pass
 *   pass 2   g <- s g - s c r               (s = ||g|| / (||g - c r|| + eps) when renorm, else 1)
 *
 * Pairs with c == 0 are not written at all (bit-for-bit untouched).
 *
 * Work is split into fixed CHUNK-element pieces (a static schedule measured faster than a
 * dynamic one here). Partial sums are kept per chunk and added per tensor in chunk order, so
 * results are bit-identical for any number of threads.
 * Reductions use float lanes over BLOCK elements, then accumulate in double.
 *
 * The shared object is built by setup.py as an (empty) Python extension so that setuptools
 * compiles it everywhere; ogan/_cpu_kernel.py calls ogan_orthogonalize through ctypes.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#define OGAN_ABI_VERSION 2

enum { OGAN_F32 = 0, OGAN_F64 = 1, OGAN_BF16 = 2, OGAN_F16 = 3 };

#define CHUNK 32768 /* elements per work item; matches torch's intra-op grain size */
#define BLOCK 256   /* elements summed in float lanes before going to double */

#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#define OGAN_X86_MULTIVERSION 1
#define ATTR_AVX2 __attribute__((target("avx2,fma,f16c")))
#endif

#if defined(__FLT16_MAX__)
#define OGAN_HAVE_F16 1
typedef _Float16 f16_t;
#endif

static inline float bf16_load(const uint16_t *p, int64_t i) {
    uint32_t u = (uint32_t)p[i] << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Round to nearest even, as c10::BFloat16 does; NaN stays a quiet NaN. */
static inline void bf16_store(uint16_t *p, int64_t i, float f) {
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) {
        p[i] = (uint16_t)((u >> 16) | 0x40u);
        return;
    }
    u += 0x7fffu + ((u >> 16) & 1u);
    p[i] = (uint16_t)(u >> 16);
}

#define PLAIN_LOAD(p, i) ((p)[i])
#define PLAIN_STORE(p, i, v) ((p)[i] = (v))
#define F16_LOAD(p, i) ((float)(p)[i])
#define F16_STORE(p, i, v) ((p)[i] = (f16_t)(v))

typedef struct {
    int64_t seg;
    int64_t start;
    int64_t len;
} chunk_t;

/* The two passes for one storage type T, accumulated in A (float, or double for float64). */
#define DEFINE_PASSES(SUF, T, A, LOAD, STORE, ATTR)                                               \
    ATTR static void reduce_##SUF(const T *g, const T *r, int64_t n, double *out) {               \
        double d = 0, a = 0, b = 0;                                                               \
        for (int64_t i0 = 0; i0 < n; i0 += BLOCK) {                                               \
            const int64_t m = n - i0 < BLOCK ? n - i0 : BLOCK;                                    \
            const T *x = g + i0, *y = r + i0;                                                     \
            A sd = 0, sa = 0, sb = 0;                                                             \
            _Pragma("omp simd reduction(+ : sd, sa, sb)") for (int64_t j = 0; j < m; ++j) {       \
                const A u = LOAD(x, j), v = LOAD(y, j);                                           \
                sd += u * v;                                                                      \
                sa += u * u;                                                                      \
                sb += v * v;                                                                      \
            }                                                                                     \
            d += sd;                                                                              \
            a += sa;                                                                              \
            b += sb;                                                                              \
        }                                                                                         \
        out[0] = d;                                                                               \
        out[1] = a;                                                                               \
        out[2] = b;                                                                               \
    }                                                                                             \
    ATTR static void update_##SUF(T *g, const T *r, int64_t n, A s, A t) {                       \
        _Pragma("omp simd") for (int64_t i = 0; i < n; ++i) {                                     \
            const A u = LOAD(g, i), v = LOAD(r, i);                                               \
            STORE(g, i, s * u - t * v);                                                           \
        }                                                                                         \
    }                                                                                             \
    ATTR static double residual_##SUF(const void *gv, const void *rv, int64_t n, double c) {      \
        const T *g = (const T *)gv, *r = (const T *)rv;                                          \
        double acc = 0;                                                                           \
        for (int64_t i = 0; i < n; ++i) {                                                         \
            const double e = (double)LOAD(g, i) - c * (double)LOAD(r, i);                         \
            acc += e * e;                                                                         \
        }                                                                                         \
        return acc;                                                                               \
    }                                                                                             \
    ATTR static void sumsq_chunks_##SUF(const chunk_t *ch, int64_t nch, void *const *xs,          \
                                        double *part, int nthreads) {                             \
        (void)nthreads;                                                                           \
        _Pragma("omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1)")      \
        for (int64_t c = 0; c < nch; ++c) {                                                       \
            const T *x = (const T *)xs[ch[c].seg] + ch[c].start;                                  \
            double acc = 0;                                                                       \
            for (int64_t i0 = 0; i0 < ch[c].len; i0 += BLOCK) {                                   \
                const int64_t m = ch[c].len - i0 < BLOCK ? ch[c].len - i0 : BLOCK;                \
                A sa = 0;                                                                         \
                _Pragma("omp simd reduction(+ : sa)") for (int64_t j = 0; j < m; ++j) {           \
                    const A u = LOAD(x, i0 + j);                                                  \
                    sa += u * u;                                                                  \
                }                                                                                 \
                acc += sa;                                                                        \
            }                                                                                     \
            part[c] = acc;                                                                        \
        }                                                                                         \
    }                                                                                             \
    ATTR static void reduce_chunks_##SUF(const chunk_t *ch, int64_t nch, void *const *gs,         \
                                         void *const *rs, double *part, int nthreads) {           \
        (void)nthreads;                                                                           \
        _Pragma("omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1)")      \
        for (int64_t c = 0; c < nch; ++c) {                                                       \
            const T *g = (const T *)gs[ch[c].seg] + ch[c].start;                                  \
            const T *r = (const T *)rs[ch[c].seg] + ch[c].start;                                  \
            reduce_##SUF(g, r, ch[c].len, part + 3 * c);                                          \
        }                                                                                         \
    }                                                                                             \
    ATTR static void update_chunks_##SUF(const chunk_t *ch, int64_t nch, void *const *gs,         \
                                         void *const *rs, const double *coef, int nthreads) {     \
        (void)nthreads;                                                                           \
        _Pragma("omp parallel for schedule(static) num_threads(nthreads) if (nthreads > 1)")      \
        for (int64_t c = 0; c < nch; ++c) {                                                       \
            const int64_t k = ch[c].seg;                                                          \
            if (coef[3 * k + 2] != 0.0) continue;                                                 \
            T *g = (T *)gs[k] + ch[c].start;                                                      \
            const T *r = (const T *)rs[k] + ch[c].start;                                          \
            update_##SUF(g, r, ch[c].len, (A)coef[3 * k], (A)coef[3 * k + 1]);                    \
        }                                                                                         \
    }

#define DEFINE_ALL(ATTR, V)                                                                       \
    DEFINE_PASSES(f32##V, float, float, PLAIN_LOAD, PLAIN_STORE, ATTR)                            \
    DEFINE_PASSES(f64##V, double, double, PLAIN_LOAD, PLAIN_STORE, ATTR)                          \
    DEFINE_PASSES(bf16##V, uint16_t, float, bf16_load, bf16_store, ATTR)                          \
    DEFINE_F16(ATTR, V)

#ifdef OGAN_HAVE_F16
#define DEFINE_F16(ATTR, V) DEFINE_PASSES(f16##V, f16_t, float, F16_LOAD, F16_STORE, ATTR)
#else
#define DEFINE_F16(ATTR, V)
#endif

DEFINE_ALL(, _base)
#ifdef OGAN_X86_MULTIVERSION
DEFINE_ALL(ATTR_AVX2, _avx2)
#endif

typedef struct {
    void (*reduce_chunks)(const chunk_t *, int64_t, void *const *, void *const *, double *, int);
    void (*update_chunks)(const chunk_t *, int64_t, void *const *, void *const *, const double *,
                          int);
    double (*residual)(const void *, const void *, int64_t, double);
    void (*sumsq_chunks)(const chunk_t *, int64_t, void *const *, double *, int);
    double rho; /* ||g'|| <= rho ||g||: g is parallel to r within the compute precision */
} kernels_t;

#define KERNELS(SUF, RHO)                                                                         \
    {reduce_chunks_##SUF, update_chunks_##SUF, residual_##SUF, sumsq_chunks_##SUF, RHO}
/* 128 ulps of the compute type: float32 for 16/32-bit storage, float64 for float64. */
#define RHO32 1.52587890625e-05
#define RHO64 2.842170943040401e-14

static int pick(int dtype, int wide, kernels_t *k) {
#ifdef OGAN_X86_MULTIVERSION
    if (wide) {
        switch (dtype) {
        case OGAN_F32: *k = (kernels_t)KERNELS(f32_avx2, RHO32); return 0;
        case OGAN_F64: *k = (kernels_t)KERNELS(f64_avx2, RHO64); return 0;
        case OGAN_BF16: *k = (kernels_t)KERNELS(bf16_avx2, RHO32); return 0;
#ifdef OGAN_HAVE_F16
        case OGAN_F16: *k = (kernels_t)KERNELS(f16_avx2, RHO32); return 0;
#endif
        default: return -1;
        }
    }
#else
    (void)wide;
#endif
    switch (dtype) {
    case OGAN_F32: *k = (kernels_t)KERNELS(f32_base, RHO32); return 0;
    case OGAN_F64: *k = (kernels_t)KERNELS(f64_base, RHO64); return 0;
    case OGAN_BF16: *k = (kernels_t)KERNELS(bf16_base, RHO32); return 0;
#ifdef OGAN_HAVE_F16
    case OGAN_F16: *k = (kernels_t)KERNELS(f16_base, RHO32); return 0;
#endif
    default: return -1;
    }
}

static int cpu_has_avx2(void) {
#ifdef OGAN_X86_MULTIVERSION
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
           __builtin_cpu_supports("f16c");
#else
    return 0;
#endif
}

int ogan_abi_version(void) { return OGAN_ABI_VERSION; }

/* The fixed CHUNK-element work items of nseg tensors (NULL when out of memory). */
static chunk_t *make_chunks(int64_t nseg, const int64_t *ns, int64_t *nch, int64_t *total) {
    *nch = 0;
    *total = 0;
    for (int64_t k = 0; k < nseg; ++k) {
        *nch += (ns[k] + CHUNK - 1) / CHUNK;
        *total += ns[k];
    }
    chunk_t *ch = malloc((size_t)(*nch > 0 ? *nch : 1) * sizeof *ch);
    if (!ch) return NULL;
    int64_t c = 0;
    for (int64_t k = 0; k < nseg; ++k)
        for (int64_t s = 0; s < ns[k]; s += CHUNK, ++c) {
            ch[c].seg = k;
            ch[c].start = s;
            ch[c].len = ns[k] - s < CHUNK ? ns[k] - s : CHUNK;
        }
    return ch;
}

static int kernels_for(int dtype, kernels_t *kern) {
    static int wide = -1;
    if (wide < 0) wide = cpu_has_avx2();
    return pick(dtype, wide, kern);
}

/*
 * L2 norm of each of nseg contiguous tensors of one dtype into out[k] (the gradient statistics
 * of a training step): one read of the data, summed in chunk order like the projection.
 */
int ogan_norms(int dtype, int64_t nseg, void *const *xs, const int64_t *ns, int nthreads,
               float *out) {
    kernels_t kern;
    if (kernels_for(dtype, &kern) != 0) return -1;
    if (nseg <= 0) return 0;
    int64_t nch, total;
    chunk_t *ch = make_chunks(nseg, ns, &nch, &total);
    double *part = malloc((size_t)(nch > 0 ? nch : 1) * sizeof *part);
    if (!ch || !part) {
        free(ch);
        free(part);
        return -2;
    }
    /* one read pass: waking a second thread only pays off for large models */
    kern.sumsq_chunks(ch, nch, xs, part, (nthreads > 1 && total > 16 * CHUNK) ? nthreads : 1);
    int64_t c = 0;
    for (int64_t k = 0; k < nseg; ++k) {
        double acc = 0;
        for (int64_t s = 0; s < ns[k]; s += CHUNK, ++c) acc += part[c];
        out[k] = (float)sqrt(acc);
    }
    free(ch);
    free(part);
    return 0;
}

/* 1 if the dtype code is supported by this build, else 0. */
int ogan_supports_dtype(int dtype) {
    kernels_t k;
    return pick(dtype, 0, &k) == 0;
}

/* Below this ratio ||g - c r||^2 / ||g||^2 the closed form loses the digits that matter
 * (it subtracts nearly equal numbers), so the residual is recomputed exactly for that tensor. */
#define ILL_CONDITIONED 1e-2

/*
 * Project gs[k] (in place) against rs[k], k < nseg; both contiguous, of ns[k] elements, one dtype.
 * stats (nullable): stats[k] = ||g_k||, stats[nseg + k] = ||g_k - c_k r_k|| (before any renorm).
 * Returns 0, -1 for an unsupported dtype, -2 when out of memory.
 */
int ogan_orthogonalize(int dtype, int64_t nseg, void *const *gs, void *const *rs,
                       const int64_t *ns, int renorm, int conflict_only, double eps,
                       int nthreads, float *stats) {
    kernels_t kern;
    if (kernels_for(dtype, &kern) != 0) return -1;
    if (nseg <= 0) return 0;

    int64_t nch, total;
    chunk_t *ch = make_chunks(nseg, ns, &nch, &total);
    double *part = malloc((size_t)(nch > 0 ? nch : 1) * 3 * sizeof *part);
    double *coef = malloc((size_t)nseg * 3 * sizeof *coef);
    if (!ch || !part || !coef) {
        free(ch);
        free(part);
        free(coef);
        return -2;
    }
    const int threads = (nthreads > 1 && total > 2 * CHUNK) ? nthreads : 1;

    kern.reduce_chunks(ch, nch, gs, rs, part, threads);

    int64_t c = 0;
    for (int64_t k = 0; k < nseg; ++k) {
        double dot = 0, gg = 0, rr = 0;
        for (int64_t s = 0; s < ns[k]; s += CHUNK, ++c) {
            dot += part[3 * c];
            gg += part[3 * c + 1];
            rr += part[3 * c + 2];
        }
        double cc = dot / (rr + eps);
        if (conflict_only && dot >= 0) cc = 0.0;
        double g2 = gg, s = 1.0;
        int skip = cc == 0.0;
        if (!skip) {
            g2 = gg - 2.0 * cc * dot + cc * cc * rr;
            if (g2 < ILL_CONDITIONED * gg) g2 = kern.residual(gs[k], rs[k], ns[k], cc);
            if (renorm) s = g2 <= kern.rho * kern.rho * gg ? 0.0 : sqrt(gg) / (sqrt(g2) + eps);
        }
        coef[3 * k] = s;
        coef[3 * k + 1] = s * cc;
        coef[3 * k + 2] = skip;
        if (stats) {
            stats[k] = (float)sqrt(gg);
            stats[nseg + k] = (float)sqrt(g2);
        }
    }

    kern.update_chunks(ch, nch, gs, rs, coef, threads);

    free(ch);
    free(part);
    free(coef);
    return 0;
}

static struct PyModuleDef ortho_cpu_module = {
    PyModuleDef_HEAD_INIT, "_ortho_cpu",
    "Fused CPU orthogonal projection; its C entry point is called through ctypes.",
    -1, NULL, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__ortho_cpu(void) { return PyModule_Create(&ortho_cpu_module); }
