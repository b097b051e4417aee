/* Compressing HDF5 chunks on a second thread.
 *
 * The results file's tables are chunked and filtered (byte shuffle, then
 * deflate), and compressing them took a quarter of a long run's time on the
 * simulation's own thread. This module applies the same two filters,
 * bit for bit as HDF5's shuffle and deflate filters do, on a worker thread,
 * so that the simulation fills the next chunk meanwhile; the caller then
 * writes the filtered bytes with H5Dwrite_chunk. Files are identical to the
 * ones HDF5's own pipeline writes.
 *
 * One job at a time per buffer; jobs run in submission order. HDF5 is never
 * called from the worker (the library is not thread-safe here). */
#ifndef TOOL_CHUNKZ_H
#define TOOL_CHUNKZ_H

#include <stddef.h>

typedef struct chunkz chunkz;

typedef struct chunkz_job {
    const unsigned char *in;   /* n_elem elements of elem_size bytes */
    size_t elem_size, n_elem;
    int level;                 /* deflate level */
    unsigned char *out;        /* owned by the job, grown as needed */
    size_t out_cap, out_len;
    unsigned char *tmp;        /* the shuffled bytes */
    size_t tmp_cap;
    int status;                /* 0 ok, -1 zlib failed */
    int done;                  /* set by the worker (under the lock) */
} chunkz_job;

/* Starts the worker; NULL when no thread can be started (then compress
 * with chunkz_run on the caller's thread). */
chunkz *chunkz_create(void);
void chunkz_destroy(chunkz *z);   /* waits for the worker; NULL is a no-op */

/* Queues a job (its in, elem_size, n_elem, level set); chunkz_wait blocks
 * until it is done. Without a worker (z NULL), submit runs it at once. */
void chunkz_submit(chunkz *z, chunkz_job *job);
void chunkz_wait(chunkz *z, chunkz_job *job);
/* Shuffle and deflate, on the calling thread. */
void chunkz_run(chunkz_job *job);
void chunkz_job_fini(chunkz_job *job);   /* frees its buffers */

#endif
