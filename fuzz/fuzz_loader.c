/*
 * fuzz_loader.c: libFuzzer target for the intent loader. The input is one
 * intent file; a fixed settings.json (en, es) and fallback intent complete
 * the table, so that valid inputs load and every check runs. No training.
 */
#include <stddef.h>
#include <stdint.h>
#include "civicgate/intents.h"

static const char settings[] =
    "{\"languages\":[\"en\",\"es\"],\"default_language\":\"en\","
    "\"phrases\":{\"ambiguous\":{\"en\":\"ambiguous\"},"
    "\"none_of_these\":{\"en\":\"none_of_these\"},"
    "\"fallback_human\":{\"en\":\"fallback_human\"},"
    "\"flow_cancelled\":{\"en\":\"flow_cancelled\"},"
    "\"flow_back_first\":{\"en\":\"flow_back_first\"},"
    "\"flow_invalid\":{\"en\":\"flow_invalid\"},"
    "\"choose_language\":{\"en\":\"choose_language\"},"
    "\"language_set\":{\"en\":\"language_set\"},\"delete_confirm\":{\"en\":\"delete_confirm\"},"
    "\"delete_done\":{\"en\":\"delete_done\"},\"delete_kept\":{\"en\":\"delete_kept\"},"
    "\"unsupported_media\":{\"en\":\"unsupported_media\"},\"yes\":{\"en\":\"yes\"},"
    "\"no\":{\"en\":\"no\"},\"cancel\":{\"en\":\"cancel\"},\"back\":{\"en\":\"back\"},"
    "\"human\":{\"en\":\"human\"},\"menu\":{\"en\":\"menu\"},\"source\":{\"en\":\"source\"}}}";
static const char fallback[] = "{\"id\":\"fallback\",\"special\":\"fallback\",\"answer\":{\"en\":\"?\"}}";

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cg_intents_file f[3] = { { "settings.json", settings, sizeof settings - 1 },
                             { "fallback.json", fallback, sizeof fallback - 1 },
                             { "intents/fuzz.json", (const char *)data, size } };
    cg_build_opts opts = { .today = "2026-01-01", .no_train = 1 };
    cg_diags d = { 0 };
    cg_intents *t = NULL;
    if (cg_intents_build(f, 3, &opts, &t, &d) == 0) cg_intents_unref(t);
    cg_diags_free(&d);
    return 0;
}
