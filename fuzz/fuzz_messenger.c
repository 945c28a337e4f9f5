/*
 * fuzz_messenger.c: libFuzzer target for the Messenger connector (the driver,
 * shared with the other Meta connector, is meta_driver.h).
 * Seed corpus: fuzz/corpus/messenger/.
 */
#include "meta_driver.h"
#include "messenger.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return cg_fuzz_meta(&cg_messenger, "messenger", data, size);
}
