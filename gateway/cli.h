/*
 * cli.h: the command-line subcommands other than serve (gateway/cli_intents.c,
 * gateway/cli_admin.c).
 */
#ifndef CG_CLI_H
#define CG_CLI_H

/* civicgate intents check|classify|eval ...: argv[0] is "intents". Returns
 * the process exit status (0 ok, 1 findings/failures, 2 usage error). */
int cg_cli_intents(int argc, char **argv);

/* civicgate admin-token [--name NAME] / civicgate hash-token (stdin): argv[0]
 * is the command. Return the exit status (0 ok, 1 failure, 2 usage error). */
int cg_cli_admin_token(int argc, char **argv);
int cg_cli_hash_token(int argc, char **argv);

/* civicgate hash-password: stdin → crypto_pwhash_str hash on stdout.
 * Exit 0, 1 on failure, 2 on usage errors. */
int cg_cli_hash_password(int argc, char **argv);

#endif
