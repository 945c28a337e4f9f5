/*
 * test_window.c: the customer-service window policy (gateway/window.c) as a
 * table: channel, the citizen's last message, the last template, who wrote
 * the reply, whether a template is configured → action.
 */
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "window.h"

#define H (3600LL * 1000)
#define NOW 1764200000000LL     /* 2025-11-26T23:33:20Z */

typedef struct row {
    const char *name;
    const char *channel;
    int64_t age_in;            /* now - last_in; -1 = unknown (0 in the session) */
    int64_t age_tpl;           /* now - reengaged_at; -1 = never */
    int from_agent, has_template;
    cg_window_action want;
    const char *reason_has;
} row;

static const row rows[] = {
    { "whatsapp bot reply a second after the question", "whatsapp", 1000, -1, 0, 1, CG_WINDOW_SEND, "inside" },
    { "whatsapp agent reply after 23 h 59 min", "whatsapp", 24 * H - 60000, -1, 1, 1, CG_WINDOW_SEND, "inside" },
    { "whatsapp agent reply at exactly 24 h", "whatsapp", 24 * H, -1, 1, 1, CG_WINDOW_REENGAGE, "template" },
    { "whatsapp agent reply after 25 h", "whatsapp", 25 * H, -1, 1, 1, CG_WINDOW_REENGAGE, "template" },
    { "whatsapp bot reply after 3 days (outage)", "whatsapp", 72 * H, -1, 0, 1, CG_WINDOW_REENGAGE, "template" },
    { "whatsapp second late reply: template sent 1 h ago", "whatsapp", 26 * H, 1 * H, 1, 1, CG_WINDOW_HOLD, "already" },
    { "whatsapp template sent 25 h ago, citizen silent: another", "whatsapp", 50 * H, 25 * H, 1, 1, CG_WINDOW_REENGAGE, "template" },
    { "whatsapp template from an earlier window does not count", "whatsapp", 30 * H, 40 * H, 1, 1, CG_WINDOW_REENGAGE, "template" },
    { "whatsapp closed window without a template: held", "whatsapp", 25 * H, -1, 1, 0, CG_WINDOW_HOLD, "no reengagement_template" },
    { "whatsapp unknown last message: the platform decides", "whatsapp", -1, -1, 1, 1, CG_WINDOW_SEND, "unknown" },
    { "whatsapp clock behind last_in counts as inside", "whatsapp", -5000, -1, 0, 1, CG_WINDOW_SEND, "inside" },
    { "messenger bot reply within the window", "messenger", 2 * H, -1, 0, 0, CG_WINDOW_SEND, "inside" },
    { "messenger agent reply within the window is a RESPONSE", "messenger", 23 * H, -1, 1, 0, CG_WINDOW_SEND, "inside" },
    { "messenger agent reply after 25 h: HUMAN_AGENT", "messenger", 25 * H, -1, 1, 0, CG_WINDOW_TAG, "HUMAN_AGENT" },
    { "messenger agent reply after 6 days 23 h: HUMAN_AGENT", "messenger", 7 * 24 * H - H, -1, 1, 0, CG_WINDOW_TAG, "HUMAN_AGENT" },
    { "messenger agent reply after 7 days: refused", "messenger", 7 * 24 * H, -1, 1, 0, CG_WINDOW_REFUSE, "7 days" },
    { "messenger bot reply after 25 h: refused", "messenger", 25 * H, -1, 0, 0, CG_WINDOW_REFUSE, "only a person" },
    { "messenger unknown last message", "messenger", -1, -1, 1, 0, CG_WINDOW_SEND, "unknown" },
    { "telegram has no window", "telegram", 1000 * H, -1, 1, 0, CG_WINDOW_SEND, "no reply window" },
    { "webchat has no window", "webchat", 1000 * H, -1, 0, 0, CG_WINDOW_SEND, "no reply window" },
};

static void test_window_table(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        const row *r = &rows[i];
        cg_window_in in = {
            .channel = r->channel, .now_ms = NOW,
            .last_in_ms = r->age_in == -1 ? 0 : NOW - r->age_in,
            .reengaged_ms = r->age_tpl == -1 ? 0 : NOW - r->age_tpl,
            .from_agent = r->from_agent, .has_template = r->has_template,
        };
        const char *why = NULL;
        cg_window_action got = cg_window_decide(&in, &why);
        if (got != r->want)
            fail_msg("%s: want %s, got %s (%s)", r->name, cg_window_action_name(r->want),
                     cg_window_action_name(got), why ? why : "NULL");
        assert_non_null(why);
        if (!strstr(why, r->reason_has)) fail_msg("%s: reason \"%s\" lacks \"%s\"", r->name, why, r->reason_has);
    }
}

static void test_holds(void **state)
{
    (void)state;
    assert_true(cg_window_holds("whatsapp"));
    assert_false(cg_window_holds("messenger"));
    assert_false(cg_window_holds("telegram"));
    assert_false(cg_window_holds(NULL));
    assert_string_equal(cg_window_action_name(CG_WINDOW_REENGAGE), "reengage");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_window_table),
        cmocka_unit_test(test_holds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
