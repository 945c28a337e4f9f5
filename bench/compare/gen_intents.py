#!/usr/bin/env python3
"""gen_intents.py: civicgate's intent table for bench/compare, made from the
keyword table the peers answer from (keywords.json), so that all systems
answer the same questions with the same texts.

    gen_intents.py keywords.json settings.json OUTDIR    # settings: the demo's

Each keyword-table entry becomes one intent: its keywords are the intent's
`keywords.must` (one must occur, as for the peers) and, with its examples,
the intent's English examples; its reply is the answer. The fallback becomes
the table's fallback intent. settings.json is the demo table's, reduced to
English. Also writes OUTDIR/../texts.txt (the load generator's questions,
one a line) and checks they are safe for loadgen --texts.
"""
import json
import os
import sys


def main():
    if len(sys.argv) != 4:
        sys.exit(__doc__)
    kw = json.load(open(sys.argv[1], encoding="utf-8"))
    settings = json.load(open(sys.argv[2], encoding="utf-8"))
    out = sys.argv[3]
    os.makedirs(out, exist_ok=True)
    settings["languages"] = ["en"]
    settings["default_language"] = "en"
    settings["phrases"] = {k: {"en": v["en"]} for k, v in settings["phrases"].items()}
    dump(os.path.join(out, "settings.json"), settings)
    dump(os.path.join(out, "fallback.json"),
         {"id": "fallback", "special": "fallback", "answer": {"en": kw["fallback"]}})
    for it in kw["intents"]:
        dump(os.path.join(out, it["id"] + ".json"), {
            "id": it["id"],
            "owner": "bench",
            "examples": {"en": it["keywords"] + it["examples"]},
            "keywords": {"must": it["keywords"]},
            "answer": {"en": it["reply"]},
        })
    texts = kw["texts"]
    for t in texts:
        if not t or len(t) > 200 or any(c in t for c in '"\\') or any(ord(c) < 32 for c in t):
            sys.exit("gen_intents: unsafe text for loadgen: %r" % t)
    with open(os.path.join(os.path.dirname(os.path.abspath(out)), "texts.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(texts) + "\n")


def dump(path, obj):
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, ensure_ascii=False, indent=1)
        f.write("\n")


if __name__ == "__main__":
    main()
