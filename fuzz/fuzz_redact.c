/*
 * fuzz_redact.c: libFuzzer driver for the redaction (gateway/redact.c) and
 * the stored form of an unmatched question (cg_analytics_text): any bytes
 * as a citizen's text. Neither may crash, leak or read past the input, and
 * what comes out must hold no run of 3 ASCII digits (checked below, so that
 * a leak of digits is a crash the fuzzer reports).
 * Seed corpus: fuzz/corpus/redact/ (messages with e-mails, phones, ids).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "analytics.h"
#include "redact.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void no_digit_run(const char *s)
{
    int run = 0;
    for (; s && *s; s++) {
        run = (*s >= '0' && *s <= '9') ? run + 1 : 0;
        if (run >= 3) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 16 * 1024) return 0;
    char *text = malloc(size ? size : 1);   /* not NUL-terminated: ASan sees overreads */
    if (!text) return 0;
    memcpy(text, data, size);
    char *r = cg_redact(text, size);
    no_digit_run(r);
    free(r);
    char *q = cg_analytics_text(text, size, size % 2 ? "en" : "ar");
    no_digit_run(q);
    if (q && strlen(q) > CG_AN_TEXT_MAX) abort();
    free(q);
    free(text);
    return 0;
}
