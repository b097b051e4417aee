/* Bench GEMMs through a library table (see gemm.h).
 *
 * Design. The alignment a GEMM is set up for is a property of every
 * pointer it will run with, so it is computed from all of them (each
 * rotation's weights, each expert's slices) before the library picks an
 * algorithm, and checked again on every run: a pointer less aligned than
 * promised is a bug in the bench, reported as a skipped point rather than
 * a kernel fault that would take the context (and the run) down. Failures
 * come back as -1 and a message naming the shape and alignments; the
 * caller skips the point. */
#include "calib/gemm.h"

#include <stdio.h>
#include <string.h>

void calib_gemm_align(const calib_gemm_operands *uses, int n_uses, unsigned align[4])
{
    for (int i = 0; i < 4; i++)
        align[i] = CALIB_ALIGN_MAX;
    for (int u = 0; u < n_uses; u++) {
        unsigned a = calib_align_of(uses[u].w), b = calib_align_of(uses[u].x),
                 y = calib_align_of(uses[u].y);
        align[CALIB_OP_A] = a < align[CALIB_OP_A] ? a : align[CALIB_OP_A];
        align[CALIB_OP_B] = b < align[CALIB_OP_B] ? b : align[CALIB_OP_B];
        align[CALIB_OP_C] = y < align[CALIB_OP_C] ? y : align[CALIB_OP_C];
        align[CALIB_OP_D] = align[CALIB_OP_C];
    }
}

int calib_gemm_init(calib_gemm *g, const calib_gemm_lib *lib, int64_t m, int64_t n, int64_t k,
                    const calib_gemm_operands *uses, int n_uses, char *why, size_t why_n)
{
    memset(g, 0, sizeof *g);
    g->lib = lib;
    g->m = m;
    g->n = n;
    g->k = k;
    calib_gemm_align(uses, n_uses, g->align);
    char lib_why[256] = "";
    int st = lib->select(lib->self, m, n, k, g->align, &g->algo, lib_why, sizeof lib_why);
    if (st) {
        g->algo = NULL;
        snprintf(why, why_n, "no GEMM algorithm for %lld x %lld x %lld with operands aligned "
                 "to %u/%u/%u bytes (W/X/Y): %s", (long long)m, (long long)n, (long long)k,
                 g->align[CALIB_OP_A], g->align[CALIB_OP_B], g->align[CALIB_OP_C], lib_why);
        return -1;
    }
    return 0;
}

int calib_gemm_run(const calib_gemm *g, const calib_gemm_operands *o, char *why, size_t why_n)
{
    unsigned have[4];
    calib_gemm_align(o, 1, have);
    for (int i = 0; i < 4; i++)
        if (have[i] < g->align[i]) {
            static const char *const names[] = {"W", "X", "Y", "Y"};
            snprintf(why, why_n, "GEMM %lld x %lld x %lld: operand %s is aligned to %u bytes, "
                     "the set-up assumed %u", (long long)g->m, (long long)g->n,
                     (long long)g->k, names[i], have[i], g->align[i]);
            return -1;
        }
    int st = g->lib->run(g->lib->self, g->algo, o);
    if (st) {
        snprintf(why, why_n, "GEMM %lld x %lld x %lld failed with status %d", (long long)g->m,
                 (long long)g->n, (long long)g->k, st);
        return -1;
    }
    return 0;
}

void calib_gemm_fini(calib_gemm *g)
{
    if (g->lib && g->algo)
        g->lib->release(g->lib->self, g->algo);
    memset(g, 0, sizeof *g);
}
