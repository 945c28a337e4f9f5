/*
 * fuzz_whatsapp.c: libFuzzer target for the WhatsApp Cloud API connector (the driver,
 * shared with the other Meta connector, is meta_driver.h).
 * Seed corpus: fuzz/corpus/whatsapp/.
 */
#include "meta_driver.h"
#include "whatsapp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    return cg_fuzz_meta(&cg_whatsapp, "whatsapp", data, size);
}
