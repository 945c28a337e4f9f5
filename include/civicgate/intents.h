/*
 * intents.h: the intent engine's public contract.
 *
 * The engine turns what a citizen wrote into a service answer, or says
 * honestly that it does not know. It does no I/O of its own: callers read the
 * intent files (see cg_intents_source) and hand the bytes to
 * cg_intents_build(), which validates, normalises, indexes and trains, and
 * returns an immutable snapshot. A snapshot is shared read-only between
 * threads; the gateway builds a new one off the event loop and swaps it in.
 *
 * API in call order:
 *   cg_intents_build()    files → validated, indexed snapshot (+ diagnostics)
 *   cg_intents_match()    text  → ranked intents with confidences
 *   cg_dialog_turn()      (snapshot, state, input) → reply + new state
 *   cg_intents_unref()    release a snapshot
 *
 * Extending: a new key in an intent file needs the struct field here, the
 * loader (engine/loader.c), the JSON Schema (docs/intent.schema.json) and the
 * format doc (docs/intents.md).
 */
#ifndef CIVICGATE_INTENTS_H
#define CIVICGATE_INTENTS_H

#include <stddef.h>
#include <stdint.h>

/* Limits on everything that comes from intent files or citizens. */
#define CG_INTENT_ID_MAX      60     /* bytes; a payload "i:<id>" fits Telegram's 64 */
#define CG_LANG_MAX           8      /* "en", "es", "ar", "pt-br" */
#define CG_MAX_INTENTS        12000  /* the matcher is measured at 10,000 (docs/benchmarks.md) */
#define CG_MAX_EXAMPLES       1000   /* per intent per language */
#define CG_MAX_TEXT_BYTES     4096   /* citizen text considered by the matcher */
#define CG_MAX_FILE_BYTES     (1024 * 1024)
#define CG_MAX_BUTTONS        10
#define CG_MAX_FLOW_STEPS     32
#define CG_MAX_ALTERNATIVES   5
#define CG_ANSWER_WARN_CHARS  2000   /* Messenger's limit, the shortest platform's */

/* ---- diagnostics ------------------------------------------------------ */

typedef enum { CG_DIAG_ERROR = 0, CG_DIAG_WARNING = 1 } cg_diag_level;

typedef struct cg_diag {
    cg_diag_level level;
    char *path;     /* file path as given in cg_intents_file.path; owned */
    int line, col;  /* 1-based; 0 when the problem is about the whole file */
    char *msg;      /* owned; names the key, e.g. "answer.es: missing translation" */
} cg_diag;

typedef struct cg_diags {
    cg_diag *v;
    size_t n, cap;
    size_t errors, warnings;
} cg_diags;

/* Print each as "path:line:column: error|warning: msg\n". */
void cg_diags_print(const cg_diags *d, void *FILE_stream);
/* Frees the entries (not d itself) and zeroes it. */
void cg_diags_free(cg_diags *d);
/* Append one diagnostic; path and msg are copied. Used by the loader. */
void cg_diags_add(cg_diags *d, cg_diag_level lvl, const char *path, int line, int col,
                  const char *fmt, ...) __attribute__((format(printf, 6, 7)));

/* ---- the table -------------------------------------------------------- */

/* One string per language. */
typedef struct cg_ltext { char lang[CG_LANG_MAX]; char *text; } cg_ltext;
typedef struct cg_i18n { cg_ltext *v; size_t n; } cg_i18n;

/* Text for lang, else for fallback_lang, else the first one, else NULL.
 * Borrowed: lives as long as the snapshot. */
const char *cg_i18n_get(const cg_i18n *t, const char *lang, const char *fallback_lang);

typedef enum {
    CG_SPECIAL_NONE = 0,
    CG_SPECIAL_GREETING,     /* "hello", /start */
    CG_SPECIAL_MENU,         /* help / menu */
    CG_SPECIAL_HUMAN,        /* talk to a person */
    CG_SPECIAL_LANGUAGE,     /* change language */
    CG_SPECIAL_DELETE_DATA,  /* delete my data (confirmed yes/no) */
    CG_SPECIAL_THANKS,       /* thanks / goodbye */
    CG_SPECIAL_FALLBACK      /* what to say when nothing matches */
} cg_special;

typedef enum { CG_BUTTON_INTENT = 0, CG_BUTTON_URL = 1 } cg_button_kind;

typedef struct cg_button {
    cg_i18n title;
    cg_button_kind kind;
    char *target;            /* intent id (checked to exist) or https URL */
} cg_button;

typedef enum {
    CG_STEP_CHOICE = 0,      /* pick one of choices (buttons or the typed title/number) */
    CG_STEP_TEXT,            /* free text, optionally matching pattern, min/max length */
    CG_STEP_NUMBER,          /* a number within [min, max] */
    CG_STEP_LOCATION         /* a shared location, or free text describing a place */
} cg_step_kind;

typedef struct cg_choice {
    cg_i18n title;
    char *value;             /* stored in the flow variable */
    char *next;              /* step id to branch to, or NULL for the step's next */
} cg_choice;

typedef struct cg_flow_step {
    char *id;
    cg_step_kind kind;
    cg_i18n ask;             /* the question */
    cg_i18n invalid;         /* said when the answer does not validate (may be empty) */
    char *var;               /* variable the answer is stored in (defaults to id) */
    cg_choice *choices; size_t nchoices;
    char *pattern;           /* POSIX extended regex for text steps, or NULL */
    void *pattern_re;        /* compiled regex_t, owned by the snapshot */
    double min, max;         /* number range, or text length range; NaN = unset */
    char *next;              /* next step id; NULL = end of flow */
} cg_flow_step;

typedef struct cg_flow {
    cg_flow_step *steps; size_t nsteps;   /* steps[0] is the first */
    cg_i18n done;            /* end answer; {{var}} and {{reference}} are substituted */
    int handoff;             /* end with a hand-off to a human */
    int priority;            /* hand-off priority */
} cg_flow;

typedef struct cg_examples { char lang[CG_LANG_MAX]; char **v; size_t n; } cg_examples;

typedef struct cg_intent {
    char *id;
    char *path;              /* file it came from */
    cg_i18n title;           /* may be empty */
    char *owner;             /* agency or office responsible */
    char *source;            /* URL of the authoritative page */
    char reviewed[11];       /* "YYYY-MM-DD" or "" */
    char review_by[11];
    cg_examples *examples; size_t nexamples;   /* per language */
    cg_i18n answer;
    char **must; size_t nmust;       /* keywords of which one must appear (normalised) */
    char **should; size_t nshould;   /* keywords that raise the score (normalised) */
    cg_button *buttons; size_t nbuttons;
    int escalate;            /* hand this to a human */
    int priority;            /* escalation priority, higher first; default 0 */
    cg_special special;
    cg_flow *flow;           /* NULL if this intent answers at once */
} cg_intent;

/* Table-wide settings, from intents/settings.json. */
typedef struct cg_settings {
    char **languages; size_t nlanguages;   /* offered, in menu order */
    char default_language[CG_LANG_MAX];
    double threshold;        /* confidence below which the answer is the fallback */
    double ambiguity_margin; /* top two within this: ask which one */
    int fallbacks_before_human;            /* consecutive fallbacks before offering a person */
    /* Fixed phrases of the dialog, per language. Keys (all required for the
     * default language): see CG_PHRASE_KEYS. */
    struct cg_phrase { char *key; cg_i18n text; } *phrases; size_t nphrases;
} cg_settings;

/* Every phrase key settings.json must define for the default language. */
#define CG_PHRASE_KEYS { "ambiguous", "none_of_these", "fallback_human", "flow_cancelled", \
    "flow_back_first", "flow_invalid", "choose_language", "language_set", "delete_confirm", \
    "delete_done", "delete_kept", "unsupported_media", "yes", "no", "cancel", "back", \
    "human", "menu", "source", NULL }
/* Phrases a table may define (any language); absent ones fall back to the
 * gateway's built-in English text (agents_queue.c). The hand-off to human
 * agents: queue position and wait, closed office, call-back offer, resolve
 * and satisfaction question. {{position}}, {{wait}}, {{opens}} are filled in. */
#define CG_PHRASE_OPTIONAL_KEYS { "queue_position", "queue_position_unknown", "queue_closed", \
    "queue_callback_offer", "queue_callback_leave", "queue_keep_waiting", "queue_callback_ok", \
    "queue_waiting_ok", "case_resolved", "csat_thanks", "rate_limited", NULL }

/* Phrase by key for lang; never NULL (returns key itself when absent). */
const char *cg_settings_phrase(const cg_settings *s, const char *key, const char *lang);

typedef struct cg_matcher cg_matcher;   /* engine/matcher.c */

/* An immutable snapshot: everything loaded from one intents directory. */
typedef struct cg_intents {
    int refs;                /* atomic; see cg_intents_ref */
    cg_settings settings;
    cg_intent *intents; size_t nintents;   /* sorted by id */
    /* synonyms: normalised variant → canonical word, applied before matching */
    char **syn_from, **syn_to; size_t nsyn;
    cg_matcher *matcher;
    char version[17];        /* hex of a 64-bit hash of all file contents */
    size_t per_lang_count[16]; /* intents with examples, per settings.languages[i] */
} cg_intents;

/* One intent file's bytes as read by the caller. Borrowed for the call. */
typedef struct cg_intents_file {
    const char *path;        /* as it should appear in diagnostics */
    const char *data;
    size_t len;
} cg_intents_file;

typedef struct cg_build_opts {
    const char *today;       /* "YYYY-MM-DD" for review-date warnings; NULL = no check */
    int no_train;            /* validate only (intents check): skip matcher training */
} cg_build_opts;

/*
 * Validate and index a table from its files: every intent file, plus
 * "settings.json" and optionally "synonyms.json" (recognised by base name).
 * Returns 0 and a new snapshot (refs = 1) in *out when there is no error;
 * -1 when there is any error (nothing in *out). Diagnostics (errors and
 * warnings) are appended to d either way. Thread-safe: touches no global.
 */
int cg_intents_build(const cg_intents_file *files, size_t nfiles, const cg_build_opts *opts,
                     cg_intents **out, cg_diags *d);

cg_intents *cg_intents_ref(cg_intents *t);
void cg_intents_unref(cg_intents *t);

/* Lookup by id (binary search); NULL when absent. Borrowed. */
const cg_intent *cg_intents_find(const cg_intents *t, const char *id);

/* ---- matching --------------------------------------------------------- */

typedef struct cg_match_alt { const cg_intent *intent; double score; } cg_match_alt;

typedef struct cg_match {
    const cg_intent *intent;   /* NULL: fallback (below threshold) */
    double score;              /* confidence of the top candidate, [0, 1] */
    int ambiguous;             /* top two within the ambiguity margin */
    char lang[CG_LANG_MAX];    /* language used */
    cg_match_alt alt[CG_MAX_ALTERNATIVES]; size_t nalt;  /* ranked, alt[0] = top */
} cg_match;

/*
 * Classify text (UTF-8, need not be NUL-terminated; at most CG_MAX_TEXT_BYTES
 * are considered). lang: the language to use, or NULL to detect it from the
 * text among the table's languages. Returns 0, or -1 for invalid UTF-8.
 * Pure and thread-safe. Intents with a "fallback" special never match.
 */
int cg_intents_match(const cg_intents *t, const char *text, size_t len, const char *lang,
                     cg_match *out);

/* Language of text among the table's languages (never NULL): the default
 * language when nothing is distinctive. */
const char *cg_intents_detect_lang(const cg_intents *t, const char *text, size_t len);

/* ---- dialog ----------------------------------------------------------- */

/* Conversation state the dialog needs between turns. The gateway stores it
 * (serialised with cg_dialog_state_to_json) in the session. */
typedef struct cg_dialog_state {
    char lang[CG_LANG_MAX];          /* chosen language, or "" */
    int lang_chosen;                 /* set explicitly by the citizen */
    int fallbacks;                   /* consecutive fallbacks */
    char flow[CG_INTENT_ID_MAX + 1]; /* intent id of the running flow, or "" */
    char step[64];                   /* current step id */
    char history[CG_MAX_FLOW_STEPS][64]; int nhistory;   /* steps visited, for "back" */
    char *vars_json;                 /* owned; JSON object of flow answers, or NULL */
    char pending[16];                /* "", "delete_confirm", "ambiguous", "language" */
    char choices[CG_MAX_ALTERNATIVES][CG_INTENT_ID_MAX + 1]; int nchoices; /* ambiguity offer */
} cg_dialog_state;

typedef enum {
    CG_IN_TEXT = 0,      /* typed text */
    CG_IN_BUTTON,        /* a button press: payload is what cg_reply_button.payload was */
    CG_IN_START,         /* conversation start (/start, get started); text = deep-link payload */
    CG_IN_LOCATION,      /* shared location */
    CG_IN_MEDIA,         /* photo, voice, sticker, document...: media names the kind */
    CG_IN_LANGUAGE       /* platform command to change language (/language) */
} cg_in_kind;

typedef struct cg_turn_in {
    cg_in_kind kind;
    const char *text; size_t len;    /* UTF-8; may be NULL for non-text kinds */
    const char *payload;             /* CG_IN_BUTTON */
    const char *lang_hint;           /* platform's language hint ("es-MX"), or NULL */
    const char *media;               /* CG_IN_MEDIA: "photo", "voice", ... */
    double lat, lon;                 /* CG_IN_LOCATION */
    const char *reference;           /* caller-made reference number for flows that give one */
} cg_turn_in;

typedef enum {
    CG_ACT_NONE = 0,
    CG_ACT_ESCALATE,     /* hand to a human; priority in cg_turn_out */
    CG_ACT_DELETE_DATA,  /* the citizen confirmed: erase their data */
    CG_ACT_FLOW_DONE     /* a flow finished; vars_json holds the answers */
} cg_turn_action;

typedef struct cg_reply_button {
    char *title;         /* in the reply's language; owned */
    char *payload;       /* opaque to connectors, ≤ 64 bytes; NULL for URL buttons; owned */
    char *url;           /* URL button, or NULL; owned */
} cg_reply_button;

typedef struct cg_turn_out {
    char *text;                      /* owned; never NULL after a successful turn */
    cg_reply_button buttons[CG_MAX_BUTTONS]; size_t nbuttons;
    char lang[CG_LANG_MAX];
    const cg_intent *intent;         /* intent answered, or NULL (fallback, flow step...) */
    double score;
    int fallback;                    /* the bot did not understand */
    int ambiguous;                   /* the bot asked which one */
    cg_turn_action action;
    int priority;                    /* for CG_ACT_ESCALATE */
    char *vars_json;                 /* CG_ACT_FLOW_DONE: owned copy of the answers */
    const char *source;              /* URL the answer names, borrowed from the snapshot */
} cg_turn_out;

void cg_dialog_state_init(cg_dialog_state *s);
void cg_dialog_state_free(cg_dialog_state *s);
/* JSON text, malloc'd; caller frees. */
char *cg_dialog_state_to_json(const cg_dialog_state *s);
/* Parse what to_json wrote; unknown or invalid input gives a fresh state and -1. */
int cg_dialog_state_from_json(const char *json, size_t len, cg_dialog_state *s);

/*
 * One turn of the conversation: given the snapshot, the state (updated in
 * place) and the citizen's input, fill out with the reply. Pure: no clock, no
 * randomness, no I/O. Returns 0; -1 only on allocation failure.
 * The caller frees out with cg_turn_out_free().
 */
int cg_dialog_turn(const cg_intents *t, cg_dialog_state *s, const cg_turn_in *in, cg_turn_out *out);
void cg_turn_out_free(cg_turn_out *out);

#endif
