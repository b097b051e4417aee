/* `servesim capacity`: the highest request rate that meets an SLO
 * (tool/capacity.h). */
#ifndef SERVE_CMD_CAPACITY_H
#define SERVE_CMD_CAPACITY_H

/* argv: what follows "capacity". Returns the exit status: 0 found, 1 no
 * bracket found or a run failed, 2 bad usage or config. */
int cmd_capacity(int argc, char **argv);

#endif
