/* `servesim sweep`: run an experiment's points into one results file
 * (tool/sweep.h). */
#ifndef SERVE_CMD_SWEEP_H
#define SERVE_CMD_SWEEP_H

/* argv: what follows "sweep". Returns the exit status: 0 done, 1 a point
 * failed or the sweep could not run, 2 bad usage, experiment or results
 * path, 130 interrupted. */
int cmd_sweep(int argc, char **argv);

#endif
