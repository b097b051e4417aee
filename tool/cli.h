/* The command line: `servesim run CONFIG.json [--set path=value ...]
 * [--out results.h5] [--quiet]`. Kept apart from main() so tests can drive
 * it. Returns the process exit status: 0 ok, 1 run failed, 2 bad usage or
 * bad input. */
#ifndef SERVE_CLI_H
#define SERVE_CLI_H

int cli_main(int argc, char **argv);

#endif
