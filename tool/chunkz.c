/* Chunk compression on a worker thread (see chunkz.h).
 *
 * The filters, as HDF5 applies them (H5Zshuffle.c, H5Zdeflate.c): shuffle
 * writes byte j of every element together, element order kept
 * (out[j * n + i] = in[i * size + j]); deflate is zlib's compress2 at the
 * dataset's level, zlib format (header and checksum included). The queue
 * is a fixed ring of pending jobs behind one mutex and two condition
 * variables; the worker takes them in order and marks each done. */
#include "tool/chunkz.h"

#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "sim/base.h"

#define CHUNKZ_QUEUE 16

struct chunkz {
    pthread_t thread;
    pthread_mutex_t lock;
    pthread_cond_t work, finished;
    chunkz_job *queue[CHUNKZ_QUEUE];
    int head, count;
    int stop;
};

void chunkz_run(chunkz_job *job)
{
    size_t size = job->elem_size, n = job->n_elem, bytes = size * n;
    if (job->tmp_cap < bytes) {
        job->tmp = sim_xrealloc(job->tmp, bytes);
        job->tmp_cap = bytes;
    }
    const unsigned char *in = job->in;
    unsigned char *tmp = job->tmp;
    if (size > 1) {
        for (size_t j = 0; j < size; j++) {
            unsigned char *dst = tmp + j * n;
            const unsigned char *src = in + j;
            for (size_t i = 0; i < n; i++, src += size)
                dst[i] = *src;
        }
    } else {
        memcpy(tmp, in, bytes);
    }
    uLongf cap = compressBound((uLong)bytes);
    if (job->out_cap < cap) {
        job->out = sim_xrealloc(job->out, cap);
        job->out_cap = cap;
    }
    uLongf len = cap;
    job->status = compress2(job->out, &len, tmp, (uLong)bytes, job->level) == Z_OK ? 0 : -1;
    job->out_len = len;
}

static void *worker(void *arg)
{
    chunkz *z = arg;
    pthread_mutex_lock(&z->lock);
    for (;;) {
        while (!z->count && !z->stop)
            pthread_cond_wait(&z->work, &z->lock);
        if (!z->count)
            break;   /* stopping, and nothing left */
        chunkz_job *job = z->queue[z->head];
        pthread_mutex_unlock(&z->lock);
        chunkz_run(job);
        pthread_mutex_lock(&z->lock);
        z->head = (z->head + 1) % CHUNKZ_QUEUE;
        z->count--;
        job->done = 1;
        pthread_cond_broadcast(&z->finished);
    }
    pthread_mutex_unlock(&z->lock);
    return NULL;
}

chunkz *chunkz_create(void)
{
    chunkz *z = sim_xcalloc(1, sizeof *z);
    if (pthread_mutex_init(&z->lock, NULL)) {
        free(z);
        return NULL;
    }
    if (pthread_cond_init(&z->work, NULL)) {
        pthread_mutex_destroy(&z->lock);
        free(z);
        return NULL;
    }
    if (pthread_cond_init(&z->finished, NULL)) {
        pthread_cond_destroy(&z->work);
        pthread_mutex_destroy(&z->lock);
        free(z);
        return NULL;
    }
    /* The worker must not take the process's terminating signals (they
     * clean up the partial file on the main thread). */
    sigset_t all, old;
    sigfillset(&all);
    pthread_sigmask(SIG_BLOCK, &all, &old);
    int rc = pthread_create(&z->thread, NULL, worker, z);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc) {
        pthread_cond_destroy(&z->finished);
        pthread_cond_destroy(&z->work);
        pthread_mutex_destroy(&z->lock);
        free(z);
        return NULL;
    }
    return z;
}

void chunkz_destroy(chunkz *z)
{
    if (!z)
        return;
    pthread_mutex_lock(&z->lock);
    z->stop = 1;
    pthread_cond_signal(&z->work);
    pthread_mutex_unlock(&z->lock);
    pthread_join(z->thread, NULL);
    pthread_cond_destroy(&z->finished);
    pthread_cond_destroy(&z->work);
    pthread_mutex_destroy(&z->lock);
    free(z);
}

void chunkz_submit(chunkz *z, chunkz_job *job)
{
    job->done = 0;
    if (!z) {
        chunkz_run(job);
        job->done = 1;
        return;
    }
    pthread_mutex_lock(&z->lock);
    /* Callers keep at most two jobs per table in flight, and there are a
     * few tables: the ring never fills. */
    SIM_ASSERT(z->count < CHUNKZ_QUEUE);
    z->queue[(z->head + z->count) % CHUNKZ_QUEUE] = job;
    z->count++;
    pthread_cond_signal(&z->work);
    pthread_mutex_unlock(&z->lock);
}

void chunkz_wait(chunkz *z, chunkz_job *job)
{
    if (!z)
        return;
    pthread_mutex_lock(&z->lock);
    while (!job->done)
        pthread_cond_wait(&z->finished, &z->lock);
    pthread_mutex_unlock(&z->lock);
}

void chunkz_job_fini(chunkz_job *job)
{
    free(job->out);
    free(job->tmp);
    memset(job, 0, sizeof *job);
}
