/*
 * cli.h: the command-line subcommands other than serve (gateway/cli_intents.c).
 */
#ifndef CG_CLI_H
#define CG_CLI_H

/* civicgate intents check|classify|eval ...: argv[0] is "intents". Returns
 * the process exit status (0 ok, 1 findings/failures, 2 usage error). */
int cg_cli_intents(int argc, char **argv);

#endif
