/*
 * fuzz_webchat.c: libFuzzer driver for the web-chat frame translator.
 * Each input is one client frame, parsed as from a connection before hello
 * (user "") and after it; a parsed message is rendered back as a reply, and
 * the input is also tried as welcome history JSON.
 * Seed corpus: fuzz/corpus/webchat/ (the frames of tests/connectors/webchat).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "civicgate/webchat.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *frame = malloc(size ? size : 1);
    if (!frame) return 0;
    memcpy(frame, data, size);   /* not NUL-terminated on purpose */
    static const char *const users[] = { "", "wc0123456789abcdef0123456789abcd" };
    for (size_t u = 0; u < 2; u++) {
        cg_wc_frame f;
        char reason[64];
        cg_err e = cg_webchat_parse(frame, size, users[u], &f, reason, sizeof reason);
        if (!memchr(reason, 0, sizeof reason)) abort();
        if (e == CG_OK && (f.kind == CG_WC_MESSAGE || f.kind == CG_WC_BUTTON)) {
            if (!f.msg.text == !f.msg.payload) abort();
            if (strncmp(f.msg.msg_id, users[u], strlen(users[u])) != 0) abort();
            cg_reply r;
            memset(&r, 0, sizeof r);
            r.text = f.msg.text ? f.msg.text : f.msg.payload;
            char *out = cg_webchat_render_reply(&r, f.lang);
            if (!out) abort();
            free(out);
        }
        if (e == CG_OK && f.kind == CG_WC_HELLO && f.token[0] && !cg_webchat_token_valid(f.token)) abort();
        cg_msg_free(&f.msg);
    }
    if (size < 4096) {
        char *h = malloc(size + 1);
        if (h) {
            memcpy(h, data, size);
            h[size] = '\0';
            char *w = cg_webchat_render_welcome("0000000000000000000000000000000000000000000000000000000000000000", h);
            free(w);
            free(h);
        }
    }
    free(frame);
    return 0;
}
