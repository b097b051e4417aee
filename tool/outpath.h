/* Output files that never clobber: every file the tool writes (a run's
 * results, a sweep's results and its points, a converted trace) goes
 * through here.
 *
 * Before anything is written, the output path is checked: its folder must
 * exist, and a path that exists must be a regular file that is not one of
 * the run's inputs (compared by device and inode, so links and other
 * spellings are caught). A device, FIFO, socket, symbolic link or folder is
 * refused, never replaced.
 *
 * The data go to "<out>.partial", which is renamed to <out> only once whole
 * and synced, so a file under its final name is always complete. The
 * partial file carries an advisory lock for as long as it is written, so a
 * second writer of the same output stops at once with "another run is
 * writing OUT (pid N)" and touches nothing of the first. While a partial
 * file is open, every terminating signal (SIGHUP, SIGINT, SIGQUIT, SIGTERM,
 * SIGPIPE, SIGALRM, SIGUSR1, SIGUSR2, SIGXCPU, SIGVTALRM, SIGPROF) removes
 * it and says so on stderr before the process dies of that signal, and
 * SIGXFSZ is ignored, so that a write past a file-size limit fails with
 * EFBIG and takes the ordinary error path (message, partial file removed)
 * instead of killing the process. */
#ifndef TOOL_OUTPATH_H
#define TOOL_OUTPATH_H

#include <stdbool.h>
#include <sys/types.h>
#include <cjson/cJSON.h>
#include "sim/base.h"

/* Longest output path, with ".partial" and the NUL. */
#define OUTPATH_MAX 4096

/* ---- a run's inputs, by device and inode -------------------------------- */

typedef struct outpath_input {
    dev_t dev;
    ino_t ino;
    char *name;          /* as given, for messages */
} outpath_input;

typedef struct outpath_inputs {
    outpath_input *v;
    size_t n, cap;
} outpath_inputs;

/* Adds the file at path ("-": standard input); a path that does not exist
 * is no input and is left out. */
void outpath_inputs_add(outpath_inputs *in, const char *path);
/* Adds every string value in the tree that names an existing regular file
 * (trace paths, rate files, cost tables: whatever the config reads). */
void outpath_inputs_add_json(outpath_inputs *in, const cJSON *tree);
void outpath_inputs_fini(outpath_inputs *in);

/* ---- checks ----------------------------------------------------------------- */

/* Creates the folders leading to path (mkdir -p of its dirname); an error
 * names the folder and the system's reason. */
int outpath_make_parents(const char *path, sim_err *err);
/* The checks above, touching nothing. `in` may be NULL. */
int outpath_check(const char *out, const outpath_inputs *in, sim_err *err);

/* ---- writing ---------------------------------------------------------------- */

typedef struct outpath outpath;

/* Checks out, takes the lock and creates (or empties) "<out>.partial".
 * NULL with err when the output is refused or locked by another process. */
outpath *outpath_begin(const char *out, const outpath_inputs *in, sim_err *err);
const char *outpath_final(const outpath *p);
const char *outpath_partial(const outpath *p);
/* A descriptor of the partial file, open for reading and writing (owned by
 * p: do not close it). */
int outpath_fd(const outpath *p);
/* Syncs the partial file, renames it to the final name and releases p. On
 * failure the partial file is removed, p released, and err says why. */
int outpath_commit(outpath *p, sim_err *err);
/* Removes the partial file and releases p. NULL is a no-op. */
void outpath_abandon(outpath *p);
/* Forces path (a file or a folder) to disk; messages start with `final`
 * (the file being made). err may be NULL. */
int outpath_fsync(const char *path, const char *final, sim_err *err);

/* In a child just forked: forgets the parent's partial files (the child
 * neither removes them on a signal nor releases their locks). */
void outpath_after_fork(void);

/* ---- signals ------------------------------------------------------------------ */

/* The terminating signals handled while a partial file is open (above),
 * which the sweep's pool also handles; outpath_n_signals of them. */
extern const int outpath_signals[];
extern const int outpath_n_signals;
/* "SIGTERM" for SIGTERM, "a signal" for one not in the list. */
const char *outpath_signal_name(int sig);

#endif
