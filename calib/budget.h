/* GPU-time budget of a calibration run: the timing constants the CUDA
 * program measures with, what a point, a power window and a plan cost, and
 * the schedule of separate per-family runs that calib/h200_run.sh follows
 * inside one deadline. Plain C (the CUDA program links it, so the numbers
 * it runs with and the numbers the planner promises are the same ones). */
#ifndef CALIB_BUDGET_H
#define CALIB_BUDGET_H

#include <stdio.h>
#include "calib/plan.h"

/* Timing of one point. Twenty-one replays (not nine) so that the 10th and
 * 90th percentiles fall strictly inside the sample (with nine they were its
 * minimum and maximum); each replay is half as long as before, so a point
 * costs about what it did. */
#define CALIB_REPLAYS_FULL 21
#define CALIB_REPLAYS_QUICK 11
#define CALIB_GRAPH_MIN_NS_FULL 250000.0   /* one timed graph replay lasts >= this */
#define CALIB_GRAPH_MIN_NS_QUICK 100000.0
#define CALIB_WARMUP_REPLAYS 2

/* Power windows. After the ramp, power is the energy between two counter
 * updates at least CALIB_WINDOW_S_* and CALIB_WINDOW_PERIODS update periods
 * apart, over the time between them. */
#define CALIB_WINDOW_S_FULL 0.20
#define CALIB_WINDOW_S_QUICK 0.06
#define CALIB_WINDOW_PERIODS 2
#define CALIB_RAMP_S 0.05                  /* busy time before a window opens */
#define CALIB_AHEAD_S 0.02                 /* GPU work queued ahead of the host */
/* The counter period the estimates assume when none was measured: NVML's
 * total-energy counter updates every 20 to 100 ms on A100/H100/H200; the
 * slow end, so that a plan is not under-budgeted. */
#define CALIB_COUNTER_PERIOD_ASSUMED_S 0.1
/* Every invocation of servesim-calib first creates its context, measures
 * the ceilings, the counter period and idle power, and at its end idle
 * power again: about this long in all. */
#define CALIB_STARTUP_S 6.0

/* The span a power window must cover for a counter updating every
 * period_s seconds (0: unknown, the window minimum). */
double calib_window_s(double period_s, int quick);
/* Expected wall time of one power measurement: the ramp, the wait for the
 * first update (half a period on average), the span, the wait for the
 * update that closes it (another half), and draining the queued work. */
double calib_energy_point_s(double period_s, int quick);

/* Estimated time of one run of an operator (the roofline at 60% of peak
 * FLOP/s and 70% of bandwidth, 4 us at least; copies at 20 GB/s pinned, 8
 * GB/s pageable) and of timing one point whose run takes run_s. */
double calib_est_run_s(const gpu_spec *g, ctab_family f, const int64_t *p, double flops,
                       double bytes);
double calib_est_point_s(double run_s, int quick);

/* Estimated GPU time of one plan entry: its points' latency part and its
 * power windows (skipped points cost nothing). */
void calib_entry_estimate(const calib_entry *e, const gpu_spec *g, int quick,
                          double counter_period_s, double *latency_s, double *energy_s);

/* Estimated GPU time of measuring a plan: per family, latency and power
 * parts, and the whole (startup of one invocation not included). Rough,
 * for splitting runs and sharing a deadline. */
typedef struct calib_estimate {
    int entries[CTAB_FAMILY_COUNT];
    int points[CTAB_FAMILY_COUNT];
    int energy_points[CTAB_FAMILY_COUNT];
    double latency_s[CTAB_FAMILY_COUNT];
    double energy_s[CTAB_FAMILY_COUNT];
    int layers;
    double layer_s;
    double total_s;
    double counter_period_s;   /* what the power windows were sized for */
} calib_estimate;

void calib_plan_estimate(const calib_plan *plan, const gpu_spec *g, int quick,
                         double counter_period_s, calib_estimate *out);

/* ---- the schedule of one GPU session ------------------------------------------------
 *
 * calib/h200_run.sh measures every family as its own invocation (a crash
 * or a hang costs one family), in the order of calib_schedule_order: quick
 * families on simple kernels first, then the GEMMs, then the code most
 * likely to fail on its first GPU run (own attention kernels, cuBLASLt at
 * unaligned expert slices, the split-KV prefill path last), then the
 * whole-layer measurement. Each step's cap is its estimate times
 * CALIB_SCHED_SLACK plus one startup and the margin by which the program
 * stops itself before its cap; its reserve (the time earlier steps must
 * leave it) is its estimate plus the same two. The script takes, at run
 * time, cap = min(cap, time left - reserves of the later steps), or its
 * share of the time left in proportion to the reserves when that is more
 * (the session runs late); the time left excludes the kill grace, so that
 * a step killed at its cap still ends before the deadline.
 *
 * A plan larger than one session is split (calib/session.h): the session
 * takes entries in priority order while the reserves fit the deadline less
 * CALIB_SCHED_SPARE of it, which stays unreserved for steps that run over
 * their estimates and for completing families cut short. */
#define CALIB_SCHED_DEADLINE_S 510.0 /* a session's: the command's 590 s limit less
                                      * start-up and transfer (calib-tool plan --deadline) */
#define CALIB_SCHED_SLACK 1.5
#define CALIB_SCHED_SPARE 0.1        /* share of the deadline left unreserved */
#define CALIB_SCHED_BUILD_S 120.0    /* cap of the build */
#define CALIB_SCHED_BUILD_EST_S 40.0 /* sm_90 only, 16 cores: ~20 s, unknown machine */
#define CALIB_SCHED_CHECK_S 30.0     /* cap of --check */
#define CALIB_SCHED_CHECK_EST_S 8.0  /* startup and a few seconds of kernels */
#define CALIB_SCHED_KILL_S 5.0       /* SIGTERM to SIGKILL of a step past its cap */
#define CALIB_SCHED_MARGIN_S 4.0     /* --time-limit this far under the cap: idle power
                                      * after the run, the last write, exit */
#define CALIB_SCHED_MAX_STEPS (CTAB_FAMILY_COUNT + 1)

typedef struct calib_sched_step {
    char name[24];     /* a family, or "layer" */
    int entries;       /* plan entries it measures (layers: layers) */
    int points;        /* grid points (layers: layers) */
    double est_s;      /* GPU time, startup excluded */
    double reserve_s;  /* est_s + startup + margin */
    double cap_s;      /* est_s * slack + startup + margin */
} calib_sched_step;

typedef struct calib_schedule {
    char gpu[64], plan[32];
    char plan_file[256];      /* the plan h200_run.sh runs ("" : its default) */
    double deadline_s, counter_period_s, startup_s;
    double build_s, check_s, kill_s, margin_s;
    int n_steps;
    calib_sched_step step[CALIB_SCHED_MAX_STEPS];
    double reserve_total_s;   /* build + check estimates, every step's reserve and the
                               * kill grace of the last */
    /* What the plan this session was taken from leaves for later sessions
     * (calib/session.h); zero when it leaves nothing. Informative. */
    int later_entries, later_points;
    double later_est_s;
    int later_sessions;       /* further sessions of this deadline it would take */
    char later_file[256];     /* where it was written, or "" */
} calib_schedule;

/* Every family once (those no GPU session measures too), in the order the
 * session runs them. */
extern const ctab_family calib_schedule_order[CTAB_FAMILY_COUNT];

/* The reserves a schedule has before its first step (the build and check
 * estimates and the kill grace of the last step), what one step adds to
 * them besides its estimate (a startup and the margin), and how much of a
 * deadline a session plan may reserve (the deadline less the spare). */
double calib_schedule_fixed_s(void);
double calib_schedule_step_overhead_s(void);
double calib_schedule_budget_s(double deadline_s);

/* Steps for the families the plan measures (est > 0) in schedule order,
 * then "layer" when the plan has layers. Fails (with why) when the
 * reserves alone do not fit the deadline. */
int calib_schedule_build(const calib_estimate *est, const char *gpu, const char *plan_name,
                         double deadline_s, calib_schedule *out, sim_err *err);
/* Text form read by h200_run.sh: a header (plan_file among it), then one
 * "step NAME EST RESERVE CAP ENTRIES POINTS" line per step, then the
 * reserve total and what is left for later sessions. */
int calib_schedule_write(const calib_schedule *s, FILE *f);

#endif
