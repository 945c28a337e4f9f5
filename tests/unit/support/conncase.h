/*
 * conncase.h: what the connectors' case-table tests share (test_telegram.c,
 * test_meta.c): reading case files, expanding long texts written as
 * segments ({"repeat": "...", "times": N}), naming enum values, and running
 * every case of a folder. Test support only; failures are cmocka failures.
 */
#ifndef CG_TEST_CONNCASE_H
#define CG_TEST_CONNCASE_H

#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>
#include <cjson/cJSON.h>

#include "civicgate/connector.h"
#include "civicgate/message.h"

char *cg_case_slurp(const char *path, size_t *len);
char **cg_case_list(const char *dir, size_t *n);
cJSON *cg_case_load(const char *path);
char *cg_case_expand(const cJSON *spec);
void cg_case_expand_texts(cJSON *node);
const char *cg_case_kind_name(cg_msg_kind k);
const char *cg_case_status_name(cg_err e);
const char *cg_case_send_name(cg_send_kind k);
void cg_case_check_str(const char *cname, const char *field, const char *want, const char *got);
unsigned char *cg_case_from_hex(const char *hex, size_t *len);
void cg_case_run_dir(const char *dir, void (*fn)(const char *), size_t min_cases);

#endif
