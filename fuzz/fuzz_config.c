/*
 * fuzz_config.c: libFuzzer driver for the configuration loader
 * (gateway/config.c): any bytes as the JSON of a config file. The parser
 * must refuse or accept without crashing or leaking, and an accepted config
 * must satisfy the documented bounds (checked below, so that a bounds bug is
 * a crash the fuzzer reports).
 * Seed corpus: fuzz/corpus/config/ (the example and Docker configs, and
 * tests' fragments).
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256 * 1024) return 0;
    char *json = malloc(size ? size : 1);   /* not NUL-terminated: ASan sees overreads */
    if (!json) return 0;
    memcpy(json, data, size);
    cg_config c;
    char err[512];
    cg_config_defaults(&c);
    if (cg_config_parse(&c, json, size, "(fuzz)", err, sizeof err) == 0) {
        if (c.listen_port < 1 || c.listen_port > 65535) abort();
        if (c.max_body < 1024) abort();
        if (c.norigins > CG_MAX_ORIGINS) abort();
        if (!c.listen_address || !c.redis_url || !c.intents_dir) abort();
    } else if (!memchr(err, '\0', sizeof err) || !err[0]) {
        abort();   /* a refusal always says why */
    }
    cg_config_free(&c);
    free(json);
    return 0;
}
