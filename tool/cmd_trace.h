/* `servesim trace`: statistics of a trace file (`trace stats`) and
 * conversion to servesim's native format (`trace convert`). */
#ifndef SERVE_CMD_TRACE_H
#define SERVE_CMD_TRACE_H

/* argv: what follows "trace". Returns the exit status: 0, 1 when the trace
 * is bad, 2 on a usage error. */
int cmd_trace(int argc, char **argv);

#endif
