/* One cost table from the tables of several servesim-calib runs on the
 * same GPU (`calib-tool merge`). Host only (cJSON).
 *
 * Families are joined; a family in several tables is joined entry by
 * entry (entries are matched by their params), and an entry in several
 * tables point by point: a point measured in one table is taken from it,
 * a point measured in more than one from the last of them (counted in
 * points_replaced). That is how a family cut short by a time limit, or
 * killed, is completed: a second run from its resume entry
 * (`servesim-calib --start N`), merged after the first. Entries measured
 * from different plans (other axes, FLOPs or bytes) are an error. */
#ifndef CALIB_MERGE_H
#define CALIB_MERGE_H

#include "sim/jsoncfg.h"

typedef struct calib_merge_stats {
    int tables;
    int families;           /* in the merged table */
    int entries;            /* in the merged table */
    int entries_joined;     /* entries found in more than one table */
    int points_added;       /* points of joined entries taken from a later table */
    int points_replaced;    /* of those, points an earlier table had measured too */
} calib_merge_stats;

/* Merges the tables (each must load with ctab_load) into *out (the first
 * table's header, families joined; run.families, run.state and run.notes
 * say what was merged). The caller deletes *out. Errors name the file and
 * the JSON path. */
int calib_merge_tables(const char *const *paths, int n, cJSON **out, calib_merge_stats *st,
                       sim_err *err);

/* calib_merge_tables, then writes the result to out_path atomically and
 * loads it back as a check. */
int calib_merge_files(const char *const *paths, int n, const char *out_path,
                      calib_merge_stats *st, sim_err *err);

#endif
