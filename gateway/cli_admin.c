/*
 * cli_admin.c: the admins' token commands (cli.h).
 *
 *   civicgate admin-token [--name NAME]   make a random token (32 bytes from
 *       libsodium, base64url, prefixed "cgadm_") and print it with its
 *       SHA-256 and the admin.tokens entry to paste into the configuration
 *   civicgate hash-token                  read a token from stdin (one line)
 *       and print its SHA-256 in hex
 *
 * The configuration keeps only the hash (config.h, admin.tokens), so the
 * token is shown once, here. Tokens shorter than CLI_TOKEN_MIN characters
 * are refused: they are meant to be long random strings, which is what makes
 * an unsalted SHA-256 the right hash.
 */
#include <sodium.h>
#include <stdio.h>
#include <string.h>

#include "cli.h"

#define CLI_TOKEN_MIN   32
#define CLI_TOKEN_MAX   512
#define CLI_TOKEN_BYTES 32

static const char admin_token_usage[] =
    "usage: civicgate admin-token [--name NAME]\n"
    "  Prints a new random admin token, its SHA-256, and the entry to add to\n"
    "  \"admin\": {\"tokens\": [...]} in the configuration. Keep the token secret;\n"
    "  the configuration needs only the hash.\n";

static const char hash_token_usage[] =
    "usage: civicgate hash-token < token.txt\n"
    "  Reads one token (one line, at least 32 printable characters) from stdin and\n"
    "  prints its SHA-256 in hex, for admin.tokens[].sha256.\n";

static void cli_hex(const unsigned char *h, size_t n, char *out)
{
    sodium_bin2hex(out, 2 * n + 1, h, n);
}

static int cli_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 63 || !strcmp(s, "env")) return 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '.' ||
              c == '_' || c == '@' || c == '-'))
            return 0;
    }
    return 1;
}

int cg_cli_admin_token(int argc, char **argv)
{
    const char *name = "admin";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--name") && i + 1 < argc) name = argv[++i];
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(admin_token_usage, stdout);
            return 0;
        } else {
            fprintf(stderr, "civicgate admin-token: unexpected argument '%s'\n%s", argv[i], admin_token_usage);
            return 2;
        }
    }
    if (!cli_name_ok(name)) {
        fprintf(stderr, "civicgate admin-token: --name must be 1-63 characters of A-Z a-z 0-9 . _ @ - "
                        "(and not \"env\")\n");
        return 2;
    }
    if (sodium_init() < 0) {
        fprintf(stderr, "civicgate admin-token: libsodium initialisation failed\n");
        return 1;
    }
    unsigned char raw[CLI_TOKEN_BYTES], h[crypto_hash_sha256_BYTES];
    char b64[sodium_base64_ENCODED_LEN(CLI_TOKEN_BYTES, sodium_base64_VARIANT_URLSAFE_NO_PADDING)];
    char token[sizeof b64 + 8], hex[2 * sizeof h + 1];
    randombytes_buf(raw, sizeof raw);
    sodium_bin2base64(b64, sizeof b64, raw, sizeof raw, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
    snprintf(token, sizeof token, "cgadm_%s", b64);
    crypto_hash_sha256(h, (const unsigned char *)token, strlen(token));
    cli_hex(h, sizeof h, hex);
    printf("token:  %s\nsha256: %s\nconfig: {\"name\": \"%s\", \"sha256\": \"%s\"}\n", token, hex, name, hex);
    sodium_memzero(raw, sizeof raw);
    sodium_memzero(token, sizeof token);
    return 0;
}

int cg_cli_hash_token(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            fputs(hash_token_usage, stdout);
            return 0;
        }
        fprintf(stderr, "civicgate hash-token: unexpected argument '%s'\n%s", argv[i], hash_token_usage);
        return 2;
    }
    char buf[CLI_TOKEN_MAX + 3];
    if (!fgets(buf, sizeof buf, stdin)) {
        fprintf(stderr, "civicgate hash-token: no token on stdin\n");
        return 1;
    }
    size_t n = strlen(buf);
    if (n && buf[n - 1] == '\n') buf[--n] = '\0';
    if (n && buf[n - 1] == '\r') buf[--n] = '\0';
    int ok = n >= CLI_TOKEN_MIN && n <= CLI_TOKEN_MAX;
    for (size_t i = 0; ok && i < n; i++) ok = buf[i] > 0x20 && buf[i] < 0x7f;
    if (!ok) {
        sodium_memzero(buf, sizeof buf);
        fprintf(stderr, "civicgate hash-token: a token is %d-%d printable characters without spaces "
                        "(civicgate admin-token makes one)\n", CLI_TOKEN_MIN, CLI_TOKEN_MAX);
        return 1;
    }
    unsigned char h[crypto_hash_sha256_BYTES];
    char hex[2 * sizeof h + 1];
    crypto_hash_sha256(h, (const unsigned char *)buf, n);
    sodium_memzero(buf, sizeof buf);
    cli_hex(h, sizeof h, hex);
    printf("%s\n", hex);
    return 0;
}
