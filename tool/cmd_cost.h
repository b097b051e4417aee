/* `servesim cost`: one iteration's cost, operator by operator, for a model,
 * GPU, parallelism, precision and batch: time, FLOPs, bytes, power, energy
 * and the source of every term. */
#ifndef TOOL_CMD_COST_H
#define TOOL_CMD_COST_H

/* argv: what follows "cost". Returns the exit status: 0, 1 on bad input
 * (config, model, GPU or table), 2 on a usage error. */
int cmd_cost(int argc, char **argv);

#endif
