/* One GEMM of a bench, Y[m x n] = X[m x k] W^T in bf16, set up for the
 * exact operand pointers it will run with. The library behind it is a
 * table of callbacks: cuBLASLt in the CUDA program, a fake in the tests.
 *
 * cuBLASLt's heuristic assumes 256-byte-aligned operands unless told
 * otherwise, and MoE expert slices start at 64- or 128-byte offsets at
 * TP4 and TP8: the set-up passes the least alignment of every pointer the
 * GEMM will see as the minimum-alignment preferences, and a run checks its
 * pointers against what the set-up was told. Either failing is a reason
 * to skip the point, returned to the caller, never an exit. Plain C. */
#ifndef CALIB_GEMM_H
#define CALIB_GEMM_H

#include "calib/layout.h"

#ifdef __cplusplus
extern "C" {
#endif

/* Operand indices of align[]: cuBLASLt's A (the weights W), B (the
 * activations X), C and D (the output Y, read with beta = 0 and written). */
enum { CALIB_OP_A, CALIB_OP_B, CALIB_OP_C, CALIB_OP_D };

typedef struct calib_gemm_lib {
    void *self;
    /* Picks an algorithm for the shape whose operands are aligned to at
     * least align[CALIB_OP_*] bytes; 0 and *algo (owned by the library),
     * or a nonzero status with why. */
    int (*select)(void *self, int64_t m, int64_t n, int64_t k, const unsigned align[4],
                  void **algo, char *why, size_t why_n);
    /* Enqueues one GEMM; 0 or the library's status. */
    int (*run)(void *self, void *algo, const calib_gemm_operands *o);
    void (*release)(void *self, void *algo);
} calib_gemm_lib;

typedef struct calib_gemm {
    const calib_gemm_lib *lib;
    void *algo;
    int64_t m, n, k;
    unsigned align[4];
} calib_gemm;

/* Sets up g for the shape and for every operand set in uses[0..n_uses-1]
 * (rotated weights, expert slices). 0, or -1 with why (the shape, the
 * alignments and the library's answer). */
int calib_gemm_init(calib_gemm *g, const calib_gemm_lib *lib, int64_t m, int64_t n, int64_t k,
                    const calib_gemm_operands *uses, int n_uses, char *why, size_t why_n);
/* Enqueues one GEMM; -1 with why when an operand is less aligned than the
 * set-up was told (the algorithm could fault) or the library fails. */
int calib_gemm_run(const calib_gemm *g, const calib_gemm_operands *o, char *why, size_t why_n);
/* Releases the algorithm; a zeroed or finished g is fine. */
void calib_gemm_fini(calib_gemm *g);

/* The least alignment over the operand sets, per operand. */
void calib_gemm_align(const calib_gemm_operands *uses, int n_uses, unsigned align[4]);

#ifdef __cplusplus
}
#endif

#endif
