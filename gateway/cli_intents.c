/*
 * cli_intents.c: `civicgate intents check|classify|eval`, the admins' and
 * CI's view of the intent engine.
 *
 *   check DIR            validate; diagnostics as path:line:column; exit 0/1
 *   classify --intents DIR [--lang LL]
 *                        one utterance per stdin line → one JSON object per line
 *   eval --intents DIR --cases FILE [--json] [--min-accuracy X] [--top N]
 *                        labelled JSON lines → accuracy, out-of-scope recall,
 *                        per-intent precision/recall, most confused pairs
 *
 * All three read the table with cg_intents_load_dir (gateway/intents_dir.c)
 * and match with the same cg_intents_match the server uses, so what the CLI
 * reports is what citizens get. Exit codes: 0 ok, 1 invalid table or below
 * --min-accuracy, 2 usage or unreadable input.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cjson/cJSON.h>

#include "civicgate/intents.h"
#include "cli.h"
#include "gateway.h"

#define CLI_MAX_LINE    (64 * 1024)  /* longest stdin / cases line accepted */
#define CLI_MAX_CASES   200000

static const char usage_text[] =
    "usage: civicgate intents <command> [options]\n"
    "\n"
    "Commands:\n"
    "  check DIR [--today YYYY-MM-DD]\n"
    "      Validate every intent file under DIR (settings.json, synonyms.json and\n"
    "      one intent per *.json file). Prints each problem as\n"
    "      path:line:column: error|warning: message. Warnings (missing\n"
    "      translations, answers past their review date, answers longer than\n"
    "      Messenger's 2,000 characters) do not fail the check.\n"
    "      Exit 0 when the table is valid, 1 when it has errors.\n"
    "\n"
    "  classify --intents DIR [--lang LL]\n"
    "      Read one utterance per line on stdin; write one JSON object per line:\n"
    "      {\"text\": ..., \"intent\": id or null, \"score\": 0..1, \"lang\": \"xx\",\n"
    "       \"ambiguous\": bool, \"alternatives\": [{\"intent\": id, \"score\": s}, ...]}\n"
    "      intent is null when no intent reaches the table's threshold (the\n"
    "      fallback). Without --lang the language is detected per line.\n"
    "\n"
    "  eval --intents DIR --cases FILE [--json] [--min-accuracy X] [--top N]\n"
    "      FILE holds JSON lines {\"text\": ..., \"intent\": id or null[, \"lang\": \"xx\"]}\n"
    "      (null: out of scope, the bot should fall back). Prints accuracy over\n"
    "      all cases, in-scope accuracy, out-of-scope recall, per-intent\n"
    "      precision and recall, and the N most confused pairs (default 10).\n"
    "      --json prints one JSON object instead. Exit 1 when accuracy is below\n"
    "      --min-accuracy (a fraction, e.g. 0.85).\n";

static int usage(FILE *f, int code)
{
    fputs(usage_text, f);
    return code;
}

static void today_str(char out[11])
{
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    strftime(out, 11, "%Y-%m-%d", &tm);
}

/* Load DIR; prints diagnostics to stderr. Returns the snapshot or NULL. */
static cg_intents *load_table(const char *dir, int no_train, int print_warnings)
{
    char today[11];
    today_str(today);
    cg_build_opts opts = {.today = today, .no_train = no_train};
    cg_diags d = {0};
    cg_intents *t = NULL;
    int rc = cg_intents_load_dir(dir, &opts, &t, &d);
    if (rc != 0 || print_warnings) cg_diags_print(&d, stderr);
    if (rc != 0) fprintf(stderr, "%s: %zu error(s); table refused\n", dir, d.errors);
    cg_diags_free(&d);
    return rc == 0 ? t : NULL;
}

static int cmd_check(int argc, char **argv)
{
    const char *dir = NULL, *today = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--today") && i + 1 < argc) today = argv[++i];
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout, 0);
        else if (argv[i][0] == '-') { fprintf(stderr, "intents check: unknown option %s\n", argv[i]); return 2; }
        else if (!dir) dir = argv[i];
        else { fprintf(stderr, "intents check: one DIR only\n"); return 2; }
    }
    if (!dir) { fprintf(stderr, "intents check: DIR is required\n"); return usage(stderr, 2); }
    char now[11];
    if (!today) { today_str(now); today = now; }
    cg_build_opts opts = {.today = today, .no_train = 1};
    cg_diags d = {0};
    cg_intents *t = NULL;
    int rc = cg_intents_load_dir(dir, &opts, &t, &d);
    cg_diags_print(&d, stdout);
    if (rc == 0) {
        printf("%s: valid: %zu intents, version %s, %zu warning(s)\n", dir, t->nintents, t->version,
               d.warnings);
        cg_intents_unref(t);
    } else {
        printf("%s: invalid: %zu error(s), %zu warning(s)\n", dir, d.errors, d.warnings);
    }
    cg_diags_free(&d);
    return rc == 0 ? 0 : 1;
}

/* Read one line (without the newline) into a malloc'd buffer of at most
 * CLI_MAX_LINE bytes; longer lines are reported and skipped. Returns length,
 * -1 at end of input. */
static long read_line(FILE *f, char **buf, size_t *cap, long lineno, const char *what)
{
    for (;;) {
        ssize_t n = getline(buf, cap, f);
        if (n < 0) return -1;
        while (n > 0 && ((*buf)[n - 1] == '\n' || (*buf)[n - 1] == '\r')) (*buf)[--n] = '\0';
        if (n > CLI_MAX_LINE) {
            fprintf(stderr, "%s:%ld: line longer than %d bytes skipped\n", what, lineno, CLI_MAX_LINE);
            lineno++;
            continue;
        }
        return (long)n;
    }
}

static int table_has_lang(const cg_intents *t, const char *lang)
{
    for (size_t i = 0; i < t->settings.nlanguages; i++)
        if (!strcmp(t->settings.languages[i], lang)) return 1;
    return 0;
}

static cJSON *match_json(const char *text, const cg_match *m)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "text", text);
    if (m->intent) cJSON_AddStringToObject(o, "intent", m->intent->id);
    else cJSON_AddNullToObject(o, "intent");
    cJSON_AddNumberToObject(o, "score", (double)(long)(m->score * 10000 + 0.5) / 10000);
    cJSON_AddStringToObject(o, "lang", m->lang);
    cJSON_AddBoolToObject(o, "ambiguous", m->ambiguous);
    cJSON *alts = cJSON_AddArrayToObject(o, "alternatives");
    for (size_t i = 0; i < m->nalt; i++) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddStringToObject(a, "intent", m->alt[i].intent->id);
        cJSON_AddNumberToObject(a, "score", (double)(long)(m->alt[i].score * 10000 + 0.5) / 10000);
        cJSON_AddItemToArray(alts, a);
    }
    return o;
}

static int cmd_classify(int argc, char **argv)
{
    const char *dir = NULL, *lang = NULL;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--intents") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--lang") && i + 1 < argc) lang = argv[++i];
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout, 0);
        else { fprintf(stderr, "intents classify: unknown argument %s\n", argv[i]); return 2; }
    }
    if (!dir) { fprintf(stderr, "intents classify: --intents DIR is required\n"); return 2; }
    cg_intents *t = load_table(dir, 0, 0);
    if (!t) return 1;
    if (lang && !table_has_lang(t, lang)) {
        fprintf(stderr, "intents classify: --lang %s is not one of the table's languages\n", lang);
        cg_intents_unref(t);
        return 2;
    }
    char *line = NULL;
    size_t cap = 0;
    long n, lineno = 1;
    while ((n = read_line(stdin, &line, &cap, lineno, "stdin")) >= 0) {
        cg_match m;
        cJSON *o;
        if (cg_intents_match(t, line, (size_t)n, lang, &m) != 0) {
            o = cJSON_CreateObject();
            cJSON_AddNullToObject(o, "text");
            cJSON_AddStringToObject(o, "error", "invalid UTF-8");
        } else {
            o = match_json(line, &m);
        }
        char *s = cJSON_PrintUnformatted(o);
        if (s) puts(s);
        free(s);
        cJSON_Delete(o);
        lineno++;
    }
    free(line);
    cg_intents_unref(t);
    return 0;
}

/* ---- eval ---------------------------------------------------------------- */

typedef struct intent_stat { size_t tp, fp, fn; } intent_stat;
typedef struct pair { long expected, got; size_t count; } pair;   /* -1 = out of scope */

static int pair_cmp(const void *a, const void *b)
{
    const pair *x = a, *y = b;
    if (x->count != y->count) return x->count < y->count ? 1 : -1;
    if (x->expected != y->expected) return x->expected < y->expected ? -1 : 1;
    return (x->got > y->got) - (x->got < y->got);
}

static long intent_index(const cg_intents *t, const cg_intent *in)
{
    return in ? (long)(in - t->intents) : -1;
}

static const char *name_of(const cg_intents *t, long i)
{
    return i < 0 ? "(out of scope)" : t->intents[i].id;
}

static int cmd_eval(int argc, char **argv)
{
    const char *dir = NULL, *cases = NULL;
    int as_json = 0, top = 10;
    double min_acc = -1;
    for (int i = 0; i < argc; i++) {
        if (!strcmp(argv[i], "--intents") && i + 1 < argc) dir = argv[++i];
        else if (!strcmp(argv[i], "--cases") && i + 1 < argc) cases = argv[++i];
        else if (!strcmp(argv[i], "--json")) as_json = 1;
        else if (!strcmp(argv[i], "--min-accuracy") && i + 1 < argc) {
            char *end;
            min_acc = strtod(argv[++i], &end);
            if (*end || min_acc < 0 || min_acc > 1) {
                fprintf(stderr, "intents eval: --min-accuracy takes a fraction between 0 and 1\n");
                return 2;
            }
        } else if (!strcmp(argv[i], "--top") && i + 1 < argc) top = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) return usage(stdout, 0);
        else { fprintf(stderr, "intents eval: unknown argument %s\n", argv[i]); return 2; }
    }
    if (!dir || !cases) { fprintf(stderr, "intents eval: --intents DIR and --cases FILE are required\n"); return 2; }
    FILE *f = fopen(cases, "r");
    if (!f) { fprintf(stderr, "intents eval: %s: %s\n", cases, strerror(errno)); return 2; }
    cg_intents *t = load_table(dir, 0, 0);
    if (!t) { fclose(f); return 1; }

    size_t ni = t->nintents;
    intent_stat *st = calloc(ni, sizeof *st);
    size_t npairs = 0, cappairs = 64;
    pair *pairs = malloc(cappairs * sizeof *pairs);
    size_t total = 0, correct = 0, in_total = 0, in_correct = 0, oos_total = 0, oos_fallback = 0;
    size_t in_fallback = 0, bad = 0;
    char *line = NULL;
    size_t cap = 0;
    long n, lineno = 0;
    int rc = 0;
    if (!st || !pairs) { rc = 2; goto out; }

    while ((n = read_line(f, &line, &cap, lineno + 1, cases)) >= 0) {
        lineno++;
        if (n == 0) continue;
        if (total >= CLI_MAX_CASES) { fprintf(stderr, "%s: more than %d cases\n", cases, CLI_MAX_CASES); break; }
        cJSON *c = cJSON_ParseWithLength(line, (size_t)n);
        cJSON *text = cJSON_GetObjectItemCaseSensitive(c, "text");
        cJSON *want = cJSON_GetObjectItemCaseSensitive(c, "intent");
        cJSON *lang = cJSON_GetObjectItemCaseSensitive(c, "lang");
        if (!cJSON_IsString(text) || !want || !(cJSON_IsString(want) || cJSON_IsNull(want))) {
            fprintf(stderr, "%s:%ld: need {\"text\": string, \"intent\": string or null}\n", cases, lineno);
            bad++;
            cJSON_Delete(c);
            continue;
        }
        long exp = -1;
        if (cJSON_IsString(want)) {
            const cg_intent *wi = cg_intents_find(t, want->valuestring);
            if (!wi) {
                fprintf(stderr, "%s:%ld: unknown intent \"%s\"\n", cases, lineno, want->valuestring);
                bad++;
                cJSON_Delete(c);
                continue;
            }
            exp = intent_index(t, wi);
        }
        /* A case's "lang" says what language the question is in; the
         * matcher still detects it (as for a citizen's first message) unless
         * the table does not offer it. */
        (void)lang;
        cg_match m;
        if (cg_intents_match(t, text->valuestring, strlen(text->valuestring), NULL, &m) != 0) {
            fprintf(stderr, "%s:%ld: invalid UTF-8\n", cases, lineno);
            bad++;
            cJSON_Delete(c);
            continue;
        }
        /* An ambiguous match is answered with a question, not an answer:
         * it counts as the top intent here (the citizen sees it first). */
        long got = intent_index(t, m.intent);
        total++;
        if (exp >= 0) in_total++; else oos_total++;
        if (got == exp) {
            correct++;
            if (exp >= 0) { in_correct++; st[exp].tp++; } else oos_fallback++;
        } else {
            if (exp >= 0) st[exp].fn++;
            if (got >= 0) st[got].fp++;
            if (exp >= 0 && got < 0) in_fallback++;
            size_t k;
            for (k = 0; k < npairs; k++)
                if (pairs[k].expected == exp && pairs[k].got == got) break;
            if (k == npairs) {
                if (npairs == cappairs) {
                    pair *np = realloc(pairs, 2 * cappairs * sizeof *pairs);
                    if (!np) { cJSON_Delete(c); rc = 2; goto out; }
                    pairs = np;
                    cappairs *= 2;
                }
                pairs[npairs++] = (pair){exp, got, 0};
            }
            pairs[k].count++;
        }
        cJSON_Delete(c);
    }
    if (total == 0) { fprintf(stderr, "%s: no cases\n", cases); rc = 2; goto out; }
    qsort(pairs, npairs, sizeof *pairs, pair_cmp);

    double acc = (double)correct / (double)total;
    double in_acc = in_total ? (double)in_correct / (double)in_total : 0;
    double oos_rec = oos_total ? (double)oos_fallback / (double)oos_total : 0;
    if (as_json) {
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "cases", (double)total);
        cJSON_AddNumberToObject(o, "invalid_cases", (double)bad);
        cJSON_AddNumberToObject(o, "accuracy", acc);
        cJSON_AddNumberToObject(o, "in_scope_cases", (double)in_total);
        cJSON_AddNumberToObject(o, "in_scope_accuracy", in_acc);
        cJSON_AddNumberToObject(o, "in_scope_fallback", (double)in_fallback);
        cJSON_AddNumberToObject(o, "out_of_scope_cases", (double)oos_total);
        cJSON_AddNumberToObject(o, "out_of_scope_recall", oos_rec);
        cJSON *per = cJSON_AddObjectToObject(o, "per_intent");
        for (size_t i = 0; i < ni; i++) {
            if (!st[i].tp && !st[i].fp && !st[i].fn) continue;
            cJSON *p = cJSON_AddObjectToObject(per, t->intents[i].id);
            double prec = st[i].tp + st[i].fp ? (double)st[i].tp / (double)(st[i].tp + st[i].fp) : 0;
            double rec = st[i].tp + st[i].fn ? (double)st[i].tp / (double)(st[i].tp + st[i].fn) : 0;
            cJSON_AddNumberToObject(p, "precision", prec);
            cJSON_AddNumberToObject(p, "recall", rec);
            cJSON_AddNumberToObject(p, "support", (double)(st[i].tp + st[i].fn));
        }
        cJSON *conf = cJSON_AddArrayToObject(o, "confused");
        for (size_t k = 0; k < npairs && (int)k < top; k++) {
            cJSON *p = cJSON_CreateObject();
            if (pairs[k].expected >= 0) cJSON_AddStringToObject(p, "expected", name_of(t, pairs[k].expected));
            else cJSON_AddNullToObject(p, "expected");
            if (pairs[k].got >= 0) cJSON_AddStringToObject(p, "got", name_of(t, pairs[k].got));
            else cJSON_AddNullToObject(p, "got");
            cJSON_AddNumberToObject(p, "count", (double)pairs[k].count);
            cJSON_AddItemToArray(conf, p);
        }
        char *s = cJSON_Print(o);
        if (s) puts(s);
        free(s);
        cJSON_Delete(o);
    } else {
        printf("cases: %zu (%zu in scope, %zu out of scope)%s\n", total, in_total, oos_total,
               bad ? " (some lines invalid, see stderr)" : "");
        printf("accuracy: %.2f%% (%zu/%zu)\n", 100 * acc, correct, total);
        printf("in-scope accuracy: %.2f%% (%zu/%zu; %zu fell back)\n", 100 * in_acc, in_correct, in_total,
               in_fallback);
        printf("out-of-scope recall: %.2f%% (%zu/%zu fell back)\n", 100 * oos_rec, oos_fallback, oos_total);
        printf("\nper intent (precision recall support):\n");
        for (size_t i = 0; i < ni; i++) {
            if (!st[i].tp && !st[i].fp && !st[i].fn) continue;
            double prec = st[i].tp + st[i].fp ? (double)st[i].tp / (double)(st[i].tp + st[i].fp) : 0;
            double rec = st[i].tp + st[i].fn ? (double)st[i].tp / (double)(st[i].tp + st[i].fn) : 0;
            printf("  %-52s %5.2f %5.2f %4zu\n", t->intents[i].id, prec, rec, st[i].tp + st[i].fn);
        }
        if (npairs) printf("\nmost confused (expected -> got: count):\n");
        for (size_t k = 0; k < npairs && (int)k < top; k++)
            printf("  %s -> %s: %zu\n", name_of(t, pairs[k].expected), name_of(t, pairs[k].got),
                   pairs[k].count);
    }
    if (min_acc >= 0 && acc < min_acc) {
        fprintf(stderr, "intents eval: accuracy %.2f%% is below the minimum %.2f%%\n", 100 * acc, 100 * min_acc);
        rc = 1;
    }
out:
    free(line);
    free(st);
    free(pairs);
    fclose(f);
    cg_intents_unref(t);
    return rc;
}

int cg_cli_intents(int argc, char **argv)
{
    /* argv[0] is "intents" */
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h") || !strcmp(argv[1], "help"))
        return usage(argc < 2 ? stderr : stdout, argc < 2 ? 2 : 0);
    if (!strcmp(argv[1], "check")) return cmd_check(argc - 2, argv + 2);
    if (!strcmp(argv[1], "classify")) return cmd_classify(argc - 2, argv + 2);
    if (!strcmp(argv[1], "eval")) return cmd_eval(argc - 2, argv + 2);
    fprintf(stderr, "civicgate intents: unknown command \"%s\"\n\n", argv[1]);
    return usage(stderr, 2);
}
