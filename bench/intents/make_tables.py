#!/usr/bin/env python3
"""make_tables.py: turn the benchmark datasets (CSV) into intent tables.

One intent table is a directory in the format of docs/intents.md: one JSON
file per intent (id, title, owner, examples, answer), plus settings.json with
every required phrase and the threshold under test. Test questions become a
cases file (JSON lines {"text", "intent", "lang"}) for
`civicgate intents eval --intents DIR --cases FILE`.

Usage:
  make_tables.py --datasets DIR --out DIR
  make_tables.py --csv TRAIN TEST --out DIR     one table (DIR/table) and its
                 cases (DIR/cases.jsonl) from two CSV files, e.g. the
                 synthetic catalogue written by matchbench --scale N --dump

writes, under --out, for each benchmark NAME:
  NAME/table/...        the intent table (threshold 0: accuracy runs)
  NAME/cases.jsonl      the test questions
and for the out-of-scope benchmark, a validation pair (table and cases built
from the training data only) used to choose the threshold.

Python 3 standard library only. Intent ids are the dataset labels, lower-cased,
with anything outside [a-z0-9._-] turned into '-'. ArBanking77's Arabic labels
are mapped to the English BANKING77 names with Banking77_intents.csv.
"""
import argparse
import csv
import json
import os
import re
import shutil
import sys

PHRASES = {
    "ambiguous": "I am not sure what you mean. Did you mean one of these?",
    "none_of_these": "None of these",
    "fallback_human": "I still did not understand. Would you like to talk to a person?",
    "flow_cancelled": "OK, I stopped.",
    "flow_back_first": "This is the first question.",
    "flow_invalid": "Sorry, that is not a valid answer.",
    "choose_language": "Which language do you prefer?",
    "language_set": "I will answer in this language from now on.",
    "delete_confirm": "Delete everything we keep about this conversation? This cannot be undone.",
    "delete_done": "Done.",
    "delete_kept": "Nothing was deleted.",
    "unsupported_media": "I can only read text messages. Please type your question.",
    "yes": "Yes",
    "no": "No",
    "cancel": "Cancel",
    "back": "Back",
    "human": "Talk to a person",
    "menu": "Menu",
    "source": "Source",
}

# Ten BANKING77 intents held out of the out-of-scope table: every 7th or 8th
# of the 77 sorted names, the same rule as matchbench --holdout 10.
def holdout_of(labels, n=10):
    labels = sorted(labels)
    k = len(labels)
    return {labels[(i * k) // n + (k // n) // 2] for i in range(n)}


def intent_id(label):
    s = re.sub(r"[^a-z0-9._-]+", "-", label.strip().lower()).strip("-._")
    return s[:60] or "x"


def read_rows(path, label_map=None):
    """[(text, label)] from a CSV with a header naming text and label/category."""
    with open(path, newline="", encoding="utf-8") as f:
        r = csv.reader(f)
        head = next(r)
        ti = head.index("text")
        li = head.index("category") if "category" in head else head.index("label")
        rows = []
        for row in r:
            if len(row) <= max(ti, li):
                continue
            text, label = row[ti].strip(), row[li].strip()
            if not text:
                continue
            if label_map is not None:
                label = label_map[label]
            rows.append((text, intent_id(label)))
        return rows


def write_table(dirpath, rows, lang, threshold, exclude=(), cap=None):
    if os.path.exists(dirpath):
        shutil.rmtree(dirpath)
    os.makedirs(dirpath)
    by = {}
    for text, label in rows:
        if label in exclude:
            continue
        ex = by.setdefault(label, [])
        if cap is None or len(ex) < cap:
            ex.append(text)
    for label, ex in sorted(by.items()):
        # the loader keeps at most CG_MAX_EXAMPLES (1000) per language
        doc = {
            "id": label,
            "title": {lang: label.replace("_", " ").replace("-", " ")},
            "owner": "benchmark",
            "examples": {lang: ex[:1000]},
            "answer": {lang: "Answer for " + label + "."},
        }
        with open(os.path.join(dirpath, label + ".json"), "w", encoding="utf-8") as f:
            json.dump(doc, f, ensure_ascii=False, indent=1)
    # every table needs a fallback intent: what the bot says when nothing matches
    with open(os.path.join(dirpath, "zz-fallback.json"), "w", encoding="utf-8") as f:
        json.dump({"id": "zz-fallback", "special": "fallback",
                   "answer": {lang: "Sorry, I did not understand."}}, f, indent=1)
    settings = {
        "languages": [lang],
        "default_language": lang,
        "threshold": threshold,
        "ambiguity_margin": 0.08,
        "fallbacks_before_human": 2,
        "phrases": {k: {lang: v} for k, v in PHRASES.items()},
    }
    with open(os.path.join(dirpath, "settings.json"), "w", encoding="utf-8") as f:
        json.dump(settings, f, ensure_ascii=False, indent=1)
    return sorted(by)


def write_cases(path, rows, lang, known, out_of_scope=()):
    n = 0
    with open(path, "w", encoding="utf-8") as f:
        for text, label in rows:
            if label in out_of_scope:
                want = None
            elif label in known:
                want = label
            else:
                continue
            f.write(json.dumps({"text": text, "intent": want, "lang": lang}, ensure_ascii=False) + "\n")
            n += 1
    return n


def set_threshold(table_dir, threshold):
    p = os.path.join(table_dir, "settings.json")
    with open(p, encoding="utf-8") as f:
        s = json.load(f)
    s["threshold"] = threshold
    with open(p, "w", encoding="utf-8") as f:
        json.dump(s, f, ensure_ascii=False, indent=1)


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--datasets")
    ap.add_argument("--csv", nargs=2, metavar=("TRAIN", "TEST"))
    ap.add_argument("--out", required=True)
    ap.add_argument("--set-threshold", nargs=2, metavar=("TABLE", "X"),
                    help="only rewrite the threshold of an existing table")
    a = ap.parse_args()
    if a.set_threshold:
        set_threshold(a.set_threshold[0], float(a.set_threshold[1]))
        return 0
    os.makedirs(a.out, exist_ok=True)
    if a.csv:
        known = write_table(os.path.join(a.out, "table"), read_rows(a.csv[0]), "en", 0.5)
        n = write_cases(os.path.join(a.out, "cases.jsonl"), read_rows(a.csv[1]), "en", set(known))
        print(f"{a.out}: {len(known)} intents, {n} cases", file=sys.stderr)
        return 0
    if not a.datasets:
        ap.error("--datasets or --csv is required")
    D = a.datasets

    def bench(name, train, test, lang, exclude=(), oos=(), threshold=0.0):
        d = os.path.join(a.out, name)
        os.makedirs(d, exist_ok=True)
        known = write_table(os.path.join(d, "table"), train, lang, threshold, exclude)
        n = write_cases(os.path.join(d, "cases.jsonl"), test, lang, set(known), set(oos))
        print(f"{name}: {len(known)} intents, {sum(1 for t in train if t[1] not in exclude)} "
              f"examples, {n} cases", file=sys.stderr)

    b_train = read_rows(os.path.join(D, "banking77/train.csv"))
    b_test = read_rows(os.path.join(D, "banking77/test.csv"))
    bench("banking77", b_train, b_test, "en")
    bench("banking77-10shot", read_rows(os.path.join(D, "banking77/fewshot_dnnc/train_10.csv")),
          b_test, "en")
    bench("hwu64", read_rows(os.path.join(D, "hwu64/train.csv")),
          read_rows(os.path.join(D, "hwu64/test.csv")), "en")

    ar = os.path.join(D, "arbanking77")
    with open(os.path.join(ar, "Banking77_intents.csv"), newline="", encoding="utf-8") as f:
        r = csv.reader(f)
        next(r)
        amap = {row[1].strip(): row[0].strip() for row in r if len(row) >= 2}
    bench("arbanking77", read_rows(os.path.join(ar, "Banking77_Arabized_MSA_PAL_train.csv"), amap),
          read_rows(os.path.join(ar, "Banking77_Arabized_MSA_PAL_val.csv"), amap), "ar")

    # Out of scope: 10 intents out of the table; their questions must fall
    # back. Threshold chosen on validation (fewshot_dnnc/train.csv →
    # valid.csv, the same split without the test set), then used on test.
    held = holdout_of({l for _, l in b_train})
    with open(os.path.join(a.out, "holdout.txt"), "w") as f:
        f.write("\n".join(sorted(held)) + "\n")
    bench("banking77-oos-valid", read_rows(os.path.join(D, "banking77/fewshot_dnnc/train.csv")),
          read_rows(os.path.join(D, "banking77/fewshot_dnnc/valid.csv")), "en", held, held)
    bench("banking77-oos", b_train, b_test, "en", held, held)
    return 0


if __name__ == "__main__":
    sys.exit(main())
