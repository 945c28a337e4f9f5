/*
 * main.c: the civicgate command line. Dispatches to
 *   civicgate serve [--config FILE]      → cg_serve_main (serve.c)
 *   civicgate intents ...                → cg_cli_intents (cli_intents.c)
 *   civicgate admin-token | hash-token   → cg_cli_admin_token / cg_cli_hash_token (cli_admin.c)
 *   civicgate hash-password              → cg_cli_hash_password (cli_password.c)
 *   civicgate help | --help | -h         → usage on stdout, exit 0
 *   civicgate --version                  → version on stdout, exit 0
 * Anything else prints the usage on stderr and exits 2.
 * Adding a command: a row in commands[] and a paragraph in usage_text.
 */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "gateway.h"

#ifndef CG_VERSION
#define CG_VERSION "0.1.0"
#endif

static const char usage_text[] =
    "usage: civicgate <command> [options]\n"
    "\n"
    "civicgate answers citizens on Telegram, WhatsApp, Messenger and a web-chat\n"
    "widget from an intent table kept as plain JSON files, and hands what it cannot\n"
    "answer to human agents.\n"
    "\n"
    "Commands:\n"
    "  serve [--config FILE]\n"
    "      Run the gateway: webhooks, web chat, health and metrics over HTTP, on the\n"
    "      address and port of the configuration (default 127.0.0.1:8080), with the\n"
    "      conversation state in Redis (default redis://127.0.0.1:6379/0).\n"
    "      --config FILE   JSON configuration (docs/configuration.md). Without it,\n"
    "                      defaults are used; secrets and the Redis URL may also come\n"
    "                      from CIVICGATE_* environment variables.\n"
    "      Signals: SIGTERM/SIGINT stop gracefully (in-flight work finishes within\n"
    "      shutdown_grace_ms); SIGHUP reloads the intent table (kept when invalid).\n"
    "      Exit status: 0 after a clean stop, 1 when the start failed (intent table\n"
    "      invalid, port in use, ...), 2 for a usage or configuration error.\n"
    "\n"
    "  intents check|classify|eval ...\n"
    "      Validate the intent table, classify utterances, or measure accuracy on\n"
    "      labelled cases; see civicgate intents --help.\n"
    "\n"
    "  admin-token [--name NAME]\n"
    "      Make a random admin token; prints it, its SHA-256 and the admin.tokens\n"
    "      entry for the configuration (which keeps only the hash).\n"
    "  hash-token\n"
    "      Read a token from stdin and print its SHA-256 (hex) for admin.tokens.\n"
    "  hash-password\n"
    "      Read a password from standard input (one line) and print its hash\n"
    "      (libsodium crypto_pwhash_str, Argon2id) for agents.users[].password_hash\n"
    "      in the configuration. The password itself is never stored.\n"
    "\n"
    "  help, --help, -h   Show this help.\n"
    "  --version          Show the version.\n";

int main(int argc, char **argv)
{
    if (argc < 2) {
        fputs(usage_text, stderr);
        return 2;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "serve")) return cg_serve_main(argc - 1, argv + 1);
    if (!strcmp(cmd, "intents")) return cg_cli_intents(argc - 1, argv + 1);
    if (!strcmp(cmd, "admin-token")) return cg_cli_admin_token(argc - 1, argv + 1);
    if (!strcmp(cmd, "hash-token")) return cg_cli_hash_token(argc - 1, argv + 1);
    if (!strcmp(cmd, "hash-password")) return cg_cli_hash_password(argc - 1, argv + 1);
    if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") || !strcmp(cmd, "-h")) {
        fputs(usage_text, stdout);
        return 0;
    }
    if (!strcmp(cmd, "--version") || !strcmp(cmd, "version")) {
        printf("civicgate %s\n", CG_VERSION);
        return 0;
    }
    fprintf(stderr, "civicgate: unknown command '%s'\n\n", cmd);
    fputs(usage_text, stderr);
    return 2;
}
