/*
 * fuzz_dialog.c: libFuzzer target for the dialog. The input is split at the
 * first NUL: before it, a saved state (as read back from Redis, so it may be
 * anything); after it, the citizen's text. The same bytes are also tried as
 * a button payload. The table is tests/fixtures/dialog, loaded once (the
 * target runs from the repository root).
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include "civicgate/intents.h"
#include "gateway.h"

static cg_intents *table;

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!table) {
        cg_build_opts o = { 0 };
        cg_diags d = { 0 };
        if (cg_intents_load_dir("tests/fixtures/dialog", &o, &table, &d) != 0) abort();
        cg_diags_free(&d);
    }
    const char *p = (const char *)data;
    const char *nul = memchr(p, 0, size);
    size_t slen = nul ? (size_t)(nul - p) : 0;
    const char *text = nul ? nul + 1 : p;
    size_t tlen = nul ? size - slen - 1 : size;
    char *payload = strndup(text, tlen);
    const cg_in_kind kinds[] = { CG_IN_TEXT, CG_IN_BUTTON, CG_IN_START };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        cg_dialog_state s;
        cg_dialog_state_from_json(p, slen, &s);
        cg_turn_in in = { .kind = kinds[k], .text = text, .len = tlen, .payload = payload,
                          .reference = "R-1" };
        cg_turn_out out;
        if (cg_dialog_turn(table, &s, &in, &out) == 0) {
            char *json = cg_dialog_state_to_json(&s);
            cg_dialog_state next;
            if (json && cg_dialog_state_from_json(json, strlen(json), &next) != 0) abort();
            if (json) cg_dialog_state_free(&next);
            free(json);
            cg_turn_out_free(&out);
        }
        cg_dialog_state_free(&s);
    }
    free(payload);
    return 0;
}
