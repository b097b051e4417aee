/* Merging cost tables (see merge.h).
 *
 * Design. Every input is first validated with the simulator's own loader
 * (ctab_load), so the merge works on well-formed trees and only has to
 * check what the loader cannot: that tables are of one GPU and that an
 * entry present in two tables has the same grid, FLOPs and bytes (the same
 * plan). The first version refused any family seen twice, so a family cut
 * short could never be completed; now later tables fill (and, where both
 * measured, replace) points of earlier ones, which is what a resumed run
 * needs and is reported in the stats. The result is written atomically and
 * loaded back before it is declared written. */
#include "calib/merge.h"

#include <stdlib.h>
#include <string.h>

#include "calib/table_writer.h"
#include "models/cost_table.h"

static cJSON *item(const cJSON *o, const char *key)
{
    return cJSON_GetObjectItemCaseSensitive(o, key);
}

/* The entry of `entries` whose params equal those of `e`, or NULL. */
static cJSON *find_entry(cJSON *entries, const cJSON *e)
{
    const cJSON *p = item(e, "params");
    for (cJSON *x = entries ? entries->child : NULL; x; x = x->next)
        if (cJSON_Compare(item(x, "params"), p, 1))
            return x;
    return NULL;
}

/* Point-wise arrays of an entry, and where they sit. */
static cJSON *point_array(cJSON *entry, int k)
{
    static const char *const lat[] = {"median", "p10", "p90"};
    static const char *const top[] = {"power_w", "energy_j", "throttled"};
    return k < 3 ? item(item(entry, "latency_ns"), lat[k]) : item(entry, top[k - 3]);
}

static int join_entry(cJSON *into, cJSON *from, const char *name, const char *path,
                      calib_merge_stats *st, sim_err *err)
{
    static const char *const same[] = {"axes", "flops", "bytes"};
    for (int i = 0; i < 3; i++)
        if (!cJSON_Compare(item(into, same[i]), item(from, same[i]), 1))
            return sim_errf(err, "%s: %s.%s: differs from an earlier table's entry with the "
                            "same params (tables from different plans cannot be merged)",
                            name, path, same[i]);
    st->entries_joined++;
    cJSON *med = point_array(from, 0);
    int n = cJSON_GetArraySize(med);
    for (int i = 0; i < n; i++) {
        if (cJSON_IsNull(cJSON_GetArrayItem(med, i)))
            continue;
        st->points_added++;
        st->points_replaced += !cJSON_IsNull(cJSON_GetArrayItem(point_array(into, 0), i));
        for (int k = 0; k < 6; k++) {
            cJSON *src = point_array(from, k), *dst = point_array(into, k);
            if (!src || !dst)
                continue;   /* optional arrays (p10, power) absent in one */
            cJSON_ReplaceItemInArray(dst, i, cJSON_Duplicate(cJSON_GetArrayItem(src, i), 1));
        }
    }
    return 0;
}

/* Moves or joins every family of b into a. */
static int merge_into(cJSON *a, cJSON *b, const char *name_b, calib_merge_stats *st,
                      sim_err *err)
{
    cJSON *ga = item(item(a, "gpu"), "name"), *gb = item(item(b, "gpu"), "name");
    if (!cJSON_IsString(ga) || !cJSON_IsString(gb) || strcmp(ga->valuestring, gb->valuestring))
        return sim_errf(err, "%s: $.gpu.name: \"%s\" is not the first table's GPU \"%s\"",
                        name_b, cJSON_IsString(gb) ? gb->valuestring : "?",
                        cJSON_IsString(ga) ? ga->valuestring : "?");
    cJSON *fa = item(a, "families"), *fb = item(b, "families");
    while (fb->child) {
        cJSON *fam = cJSON_DetachItemViaPointer(fb, fb->child);
        cJSON *have = item(fa, fam->string);
        if (!have) {
            cJSON_AddItemToObject(fa, fam->string, fam);
            continue;
        }
        cJSON *into = item(have, "entries"), *from = item(fam, "entries");
        int i = 0, rc = 0;
        while (from->child && rc == 0) {
            cJSON *e = cJSON_DetachItemViaPointer(from, from->child);
            cJSON *match = find_entry(into, e);
            if (match) {
                char path[128];
                snprintf(path, sizeof path, "$.families.%s.entries[%d]", fam->string, i);
                rc = join_entry(match, e, name_b, path, st, err);
                cJSON_Delete(e);
            } else {
                cJSON_AddItemToArray(into, e);
            }
            i++;
        }
        cJSON_Delete(fam);
        if (rc)
            return -1;
    }
    return 0;
}

static const char *run_str(const cJSON *root, const char *key)
{
    cJSON *v = item(item(root, "run"), key);
    return cJSON_IsString(v) ? v->valuestring : "";
}

/* "a.json (gemm: cut_short at entry 12)" */
static void describe(const cJSON *root, const char *path, char *out, size_t size)
{
    cJSON *resume = item(item(root, "run"), "resume_entry");
    char at[48] = "";
    if (cJSON_IsNumber(resume))
        snprintf(at, sizeof at, " at entry %d", resume->valueint);
    const char *state = run_str(root, "state");
    snprintf(out, size, "%s (%s: %s%s)", path, run_str(root, "families"),
             *state ? state : "?", at);
}

static void set_str(cJSON *obj, const char *key, const char *v)
{
    if (item(obj, key))
        cJSON_ReplaceItemInObjectCaseSensitive(obj, key, cJSON_CreateString(v));
    else
        cJSON_AddStringToObject(obj, key, v);
}

int calib_merge_tables(const char *const *paths, int n, cJSON **out, calib_merge_stats *st,
                       sim_err *err)
{
    memset(st, 0, sizeof *st);
    *out = NULL;
    cJSON *first = NULL;
    char notes[2048] = "merged from ";
    for (int i = 0; i < n; i++) {
        ctab *t = ctab_load(paths[i], NULL, err);
        if (!t)
            goto fail;
        ctab_destroy(t);
        cJSON *root;
        if (jcfg_load_file(paths[i], &root, err))
            goto fail;
        char d[512];
        describe(root, paths[i], d, sizeof d);
        snprintf(notes + strlen(notes), sizeof notes - strlen(notes), "%s%s", i ? ", " : "", d);
        st->tables++;
        if (!first) {
            first = root;
            continue;
        }
        int rc = merge_into(first, root, paths[i], st, err);
        cJSON_Delete(root);
        if (rc)
            goto fail;
    }
    if (!first) {
        sim_errf(err, "merge: no tables given");
        return -1;
    }
    char fams[256] = "";
    for (cJSON *fam = item(first, "families")->child; fam; fam = fam->next) {
        snprintf(fams + strlen(fams), sizeof fams - strlen(fams), "%s%s", fams[0] ? "," : "",
                 fam->string);
        st->families++;
        st->entries += cJSON_GetArraySize(item(fam, "entries"));
    }
    cJSON *run = item(first, "run");
    if (cJSON_IsObject(run)) {
        set_str(run, "families", fams);
        if (n > 1) {
            set_str(run, "state", "merged");
            cJSON_ReplaceItemInObjectCaseSensitive(run, "resume_entry", cJSON_CreateNull());
            const char *old = run_str(first, "notes");
            char all[2600];
            snprintf(all, sizeof all, "%s%s%s", old, *old ? "; " : "", notes);
            set_str(run, "notes", all);
        }
    }
    *out = first;
    return 0;
fail:
    cJSON_Delete(first);
    return -1;
}

int calib_merge_files(const char *const *paths, int n, const char *out_path,
                      calib_merge_stats *st, sim_err *err)
{
    cJSON *root;
    if (calib_merge_tables(paths, n, &root, st, err))
        return -1;
    char *text = cJSON_Print(root);
    cJSON_Delete(root);
    size_t len = strlen(text);
    char *with_nl = sim_xmalloc(len + 2);
    memcpy(with_nl, text, len);
    with_nl[len] = '\n';
    with_nl[len + 1] = 0;
    cJSON_free(text);
    int rc = calib_text_save(out_path, with_nl, err);
    free(with_nl);
    if (rc)
        return -1;
    ctab *t = ctab_load(out_path, NULL, err);
    if (!t)
        return sim_err_prefix(err, "the merged table does not load");
    ctab_destroy(t);
    return 0;
}
