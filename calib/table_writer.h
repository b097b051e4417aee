/* Writing cost tables and layer measurements as JSON (the schema is in
 * calib/README.md). Plain C with no JSON library: the CUDA program writes
 * its tables on the GPU machine with it, and calib-tool writes synthetic
 * ones with the same code. */
#ifndef CALIB_TABLE_WRITER_H
#define CALIB_TABLE_WRITER_H

#include "calib/plan.h"

#define CALIB_TABLE_SCHEMA "servesim-cost-table"
#define CALIB_LAYER_SCHEMA "servesim-layer-measurement"
#define CALIB_SCHEMA_VERSION 1

/* One grid point's measurement; NAN where not measured. */
typedef struct calib_point_result {
    double median_ns, p10_ns, p90_ns;   /* per run */
    double power_w;                     /* average while replaying back to back */
    double energy_j;                    /* per run: power_w * median_ns */
    uint8_t throttled;                  /* clocks were held back (power or thermal) */
} calib_point_result;

/* GPU state as NVML reports it; NAN where unknown. */
typedef struct calib_gpu_state {
    double sm_clock_mhz, mem_clock_mhz, sm_clock_max_mhz;
    double temperature_c;
    double power_limit_w, enforced_power_limit_w;
    double power_w;
    long long clocks_event_reasons;     /* NVML bit mask; -1 unknown */
} calib_gpu_state;

/* Everything about a run that is not a grid point. Strings may be empty. */
typedef struct calib_run_info {
    char gpu_name[64];          /* servesim's name (models/gpu/<name>.json) */
    char device_name[128];      /* what the driver calls it */
    char uuid[96];
    char pci_bus_id[32];
    int cc_major, cc_minor, sm_count;
    double l2_bytes, memory_bytes;
    char driver_version[64];
    int cuda_driver_version, cuda_runtime_version, cublaslt_version;
    char nvcc_version[32];
    char servesim_version[64];
    char mode[16];              /* "full", "quick", "synthetic" */
    char plan_name[32];
    char date[32];              /* UTC, ISO 8601 */
    char families[256];         /* measured families, comma-separated */
    char state[16];             /* "complete", "running" (the run was still going when
                                 * this was written), "cut_short", "failed"; "" none */
    int resume_entry;           /* the first plan entry not fully measured (for
                                 * servesim-calib --start), -1 when none */
    int replays, warmup_replays;
    double graph_min_ns;
    double rotate_bytes;        /* weights and KV rotate across at least this much */
    char moe_gemm[64];          /* how expert GEMMs were issued */
    char notes[512];
    calib_gpu_state before, after;
    double ceil_gemm_flops_per_s;
    int64_t ceil_gemm_mnk[3];
    double ceil_d2d_bytes_per_s, ceil_d2d_bytes;
    char energy_method[32];     /* total_energy_counter, instant_power, average_power,
                                 * none, roofline (synthetic) */
    double idle_w, idle_w_after;
    double counter_period_ms;
    double window_ms;
} calib_run_info;

void calib_run_info_init(calib_run_info *info);

/* Writes a table: every entry whose family is in `families` (a bit mask
 * over ctab_family) with results res[i][point] for plan entry i. */
int calib_table_write(FILE *f, const calib_plan *plan,
                      calib_point_result *const *res, unsigned families,
                      const calib_run_info *info);

/* Writes whole-layer measurements, res[i] for plan layer i. */
int calib_layers_write(FILE *f, const calib_plan *plan, const calib_point_result *res,
                       const calib_run_info *info);

/* The same, into `path` atomically: written to PATH.partial, closed and
 * renamed over PATH, so that PATH is always either absent, the
 * previous complete file or the new one, whatever kills the writer. The
 * folder is created if missing. Errors name the file. */
int calib_table_save(const char *path, const calib_plan *plan,
                     calib_point_result *const *res, unsigned families,
                     const calib_run_info *info, sim_err *err);
int calib_layers_save(const char *path, const calib_plan *plan,
                      const calib_point_result *res, const calib_run_info *info,
                      sim_err *err);
/* Writes `text` into path atomically, as above (status files). */
int calib_text_save(const char *path, const char *text, sim_err *err);

#endif
