/* Cut points of an iteration in flight (see opcut.h).
 *
 * The cost model prices an iteration as per-kind terms summed over every
 * layer (models/cost.h); it does not say when each operator runs. The
 * timeline here is the simplest one consistent with those sums ([assume],
 * documented in api/batch.h): CPU time first, then the embedding, then the
 * layers one after the other, each the same length, its operators in
 * op_kind order, then the logits. The kinds outside the layers are the
 * embedding (before) and the LM head and sampling (after); the final norm
 * and the embedding's all-reduce, small, are spread over the layers
 * ([assume]; a cut after j of L layers is placed j/L of a norm late, so
 * cut plus resumed iteration come to at most one norm more than the uncut
 * iteration and a second CPU time and embedding: tests/test_slo_ops.c). */
#include "serve/opcut.h"

#include <math.h>

static bool outside_layers(int k)
{
    return k == OP_EMBED || k == OP_GEMM_LM_HEAD || k == OP_SAMPLE;
}

static double terms_sum(const cost_result *c)
{
    double s = 0;
    for (int k = 0; k < OP_KIND_COUNT; k++)
        s += c->term_ns[k];
    return s;
}

double opcut_layer_ns(const cost_result *c, int32_t layers_run)
{
    double in = 0;
    for (int k = 0; k < OP_KIND_COUNT; k++)
        if (!outside_layers(k))
            in += c->term_ns[k];
    return layers_run > 0 ? in / layers_run : 0;
}

static sim_time_ns at_or_after(double t, sim_time_ns now)
{
    sim_time_ns at = (sim_time_ns)ceil(t);
    return at < now ? now : at;
}

void opcut_points(const cost_result *c, sim_time_ns start_ns, int32_t layers_run,
                  sim_time_ns now, batch_cut_point *layer, batch_cut_point *op)
{
    *layer = *op = (batch_cut_point){0};
    double layer_ns = opcut_layer_ns(c, layers_run);
    if (layers_run <= 0 || layer_ns <= 0)
        return;
    double overhead = (double)c->latency_ns - terms_sum(c);
    if (overhead < 0)
        overhead = 0;
    double t0 = (double)start_ns + overhead + c->term_ns[OP_EMBED];
    double t = (double)now - t0;   /* into the layers */

    /* The next layer boundary: j layers done. */
    int32_t j = t <= 0 ? 0 : (int32_t)ceil(t / layer_ns);
    if (j < layers_run)
        *layer = (batch_cut_point){at_or_after(t0 + j * layer_ns, now), j, 0, true};

    /* The next operator boundary: inside layer j0, after the operator
     * running at offset u. */
    if (t <= 0) {
        *op = (batch_cut_point){at_or_after(t0, now), 0, 0, true};
        return;
    }
    int32_t j0 = (int32_t)floor(t / layer_ns);
    if (j0 >= layers_run)
        return;
    double u = t - j0 * layer_ns, cum = 0;
    if (u <= 0) {
        *op = (batch_cut_point){now, j0, 0, true};
        return;
    }
    for (int k = 0; k < OP_KIND_COUNT; k++) {
        if (outside_layers(k) || c->term_ns[k] <= 0)
            continue;
        cum += c->term_ns[k] / layers_run;
        if (cum >= u)
            break;
    }
    if (cum >= layer_ns * (1 - 1e-12)) {   /* the layer's last operator: a layer boundary */
        if (j0 + 1 < layers_run)
            *op = (batch_cut_point){at_or_after(t0 + (j0 + 1) * layer_ns, now), j0 + 1, 0, true};
        return;
    }
    *op = (batch_cut_point){at_or_after(t0 + j0 * layer_ns + cum, now), j0,
                            (sim_time_ns)llround(cum), true};
}

void opcut_scale(cost_result *c, sim_time_ns latency_ns)
{
    if (c->latency_ns <= 0 || latency_ns == c->latency_ns)
        return;
    double f = (double)latency_ns / (double)c->latency_ns;
    for (int k = 0; k < OP_KIND_COUNT; k++)
        c->term_ns[k] *= f;
    c->energy_j *= f;
    c->weight_bytes *= f;
    c->kv_bytes *= f;
    c->latency_ns = latency_ns;
}
