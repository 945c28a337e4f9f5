/*
 * cli_password.c: `civicgate hash-password`: reads one password from
 * standard input (the first line, without its line end; at most 1024
 * bytes) and prints its libsodium crypto_pwhash_str hash (Argon2id,
 * OPSLIMIT/MEMLIMIT_INTERACTIVE: the same cost login verification pays), for
 * agents.users[].password_hash. The password is wiped from memory after use.
 * From a terminal it asks on stderr and does not echo what is typed.
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>
#include <termios.h>
#include <unistd.h>

#include "cli.h"

#define PASSWORD_MAX 1024

int cg_cli_hash_password(int argc, char **argv)
{
    if (argc > 1) {
        if (!strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
            puts("usage: civicgate hash-password < password-file\n"
                 "Reads the password (first line of standard input) and prints its hash for\n"
                 "agents.users[].password_hash in the configuration.");
            return 0;
        }
        fprintf(stderr, "civicgate hash-password: no arguments expected (the password comes on standard input)\n");
        return 2;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "civicgate hash-password: cannot initialise libsodium\n");
        return 1;
    }
    char pw[PASSWORD_MAX + 2];
    struct termios old, quiet;
    int tty = isatty(STDIN_FILENO) && tcgetattr(STDIN_FILENO, &old) == 0;
    if (tty) {
        fputs("password (not shown): ", stderr);
        quiet = old;
        quiet.c_lflag &= ~(tcflag_t)ECHO;
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &quiet);
    }
    char *got = fgets(pw, sizeof pw, stdin);
    if (tty) {
        tcsetattr(STDIN_FILENO, TCSAFLUSH, &old);
        fputc('\n', stderr);
    }
    if (!got) {
        fprintf(stderr, "civicgate hash-password: no password on standard input\n");
        return 2;
    }
    size_t n = strlen(pw);
    if (n > PASSWORD_MAX && pw[n - 1] != '\n') {
        sodium_memzero(pw, sizeof pw);
        fprintf(stderr, "civicgate hash-password: longer than %d bytes\n", PASSWORD_MAX);
        return 2;
    }
    while (n && (pw[n - 1] == '\n' || pw[n - 1] == '\r')) pw[--n] = '\0';
    if (n == 0) {
        fprintf(stderr, "civicgate hash-password: the password is empty\n");
        return 2;
    }
    char out[crypto_pwhash_STRBYTES];
    int rc = crypto_pwhash_str(out, pw, n, crypto_pwhash_OPSLIMIT_INTERACTIVE, crypto_pwhash_MEMLIMIT_INTERACTIVE);
    sodium_memzero(pw, sizeof pw);
    if (rc != 0) {
        fprintf(stderr, "civicgate hash-password: out of memory\n");
        return 1;
    }
    puts(out);
    return 0;
}
