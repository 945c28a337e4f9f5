/*
 * ct_compare.c: are secrets compared in constant time? Checked the way
 * ctgrind does (Langley, 2010): the secret bytes are marked undefined for
 * valgrind's memcheck, so any branch or memory address that depends on them
 * is reported ("Conditional jump or move depends on uninitialised value").
 * A constant-time compare produces no report; an early-exit compare does.
 *
 * Usage (scripts/ct-check.sh runs both under valgrind --error-exitcode=1):
 *   ct_compare          cg_secure_equal, through which every secret,
 *                       token and signature compare goes (connectors'
 *                       verify, handshake, metrics and admin tokens), on
 *                       secret-marked data, equal and unequal: must be clean
 *   ct_compare naive    the negative control, memcmp's early exit: must be
 *                       reported, or this check proves nothing
 * What this does not cover: the verify functions also read the secret's
 * length (strlen) and whether it is empty, which are not secret; memcheck
 * cannot tell those apart, so they are checked by reading the code.
 * Not under ASan (its shadow memory and valgrind do not mix): built by the
 * release build only.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <valgrind/memcheck.h>

#include "civicgate/connector.h"

#define N 48

static void secret_bytes(char *s, size_t n, unsigned seed)
{
    for (size_t i = 0; i + 1 < n; i++) s[i] = (char)('a' + (seed * 31u + (unsigned)i * 7u) % 26u);
    s[n - 1] = '\0';
}

static int naive_equal(const char *a, const char *b, size_t n)
{
    return memcmp(a, b, n) == 0;   /* stops at the first difference */
}

int main(int argc, char **argv)
{
    static char secret[N], guess[N];
    secret_bytes(secret, sizeof secret, 1);
    memcpy(guess, secret, sizeof guess);
    guess[5] ^= 1;
    volatile int sink = 0;

    VALGRIND_MAKE_MEM_UNDEFINED(secret, sizeof secret - 1);
    if (argc > 1 && !strcmp(argv[1], "naive")) {
        int r = naive_equal(guess, secret, sizeof secret - 1);
        VALGRIND_MAKE_MEM_DEFINED(&r, sizeof r);
        sink += r;
        return 0;
    }
    for (int round = 0; round < 2; round++) {   /* equal, then a difference */
        int r = cg_secure_equal(round ? guess : secret, sizeof secret - 1, secret, sizeof secret - 1);
        VALGRIND_MAKE_MEM_DEFINED(&r, sizeof r);   /* the answer itself is public */
        sink += r;
    }

    printf("ct_compare: %d\n", sink);
    return 0;
}
