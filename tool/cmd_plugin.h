/* `servesim plugin`: building one C file into a plugin (`plugin build
 * SRC.c`), what a plugin holds (`plugin info LIB`) and whether its policies
 * keep the invariants every built-in keeps (`plugin check LIB`). */
#ifndef TOOL_CMD_PLUGIN_H
#define TOOL_CMD_PLUGIN_H

/* argv: what follows "plugin". Returns the exit status: 0; 1 when a check
 * or the compiler failed; 2 on a usage error or a library that does not
 * load. */
int cmd_plugin(int argc, char **argv);

#endif
