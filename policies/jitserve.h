/* JITServe's scheduling arithmetic (policies/batch_jitserve.c), exposed
 * for tests: the output-length prediction and the reward. Pure functions. */
#ifndef POLICIES_JITSERVE_H
#define POLICIES_JITSERVE_H

#include <stdint.h>

/* The predicted output length: the `quantile` quantile of a lognormal
 * predictive distribution whose median is true_tokens x exp(error x z)
 * (z: the request's standard normal draw; error: the predictor's log-space
 * standard deviation), given that `generated` tokens are out already: the
 * conditional quantile of L given L > generated, and at least generated +
 * 1. error 0 is the oracle: max(true_tokens, generated + 1). */
double jit_predict_tokens(int32_t true_tokens, double z, double error, double quantile,
                          int32_t generated);

/* JITServe's request classes. */
typedef enum jit_kind { JIT_LATENCY, JIT_DEADLINE } jit_kind;

/* What a request's reward depends on; times in ns. */
typedef struct jit_req_terms {
    jit_kind kind;
    double input_tokens;
    double predicted_tokens;   /* L-hat */
    double served_ns;          /* now - arrival */
    double iter_ns;            /* t_iter */
    double remain_ns;          /* t_iter x (L-hat - generated) */
    double ttft_slo_ns;        /* its TTFT target (latency class) */
    double deadline_ns;        /* its end-to-end budget after arrival */
} jit_req_terms;

/* The reward (design reference F, from jitserve/scheduler/policy.py):
 *  latency:  in x min(1, TTFT/(served + t_iter))^p
 *            + output_weight x L-hat x min(1, D/(served + remain))^p
 *  deadline: (in + deadline_weight x L-hat) x min(1, D/(served + remain))^p */
double jit_reward(const jit_req_terms *t, double p, double output_weight,
                  double deadline_weight);

#endif
