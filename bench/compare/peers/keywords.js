// keywords.js: the peers' shared answer function for bench/compare.
// Loads the keyword table (bench/compare/keywords.json, path in KEYWORDS)
// once; answer(text) returns the reply of the first intent one of whose
// keywords occurs in the lower-cased text, else the table's fallback.
// Both peers use this same function, so they do the same matching work.
'use strict';
const fs = require('fs');

const table = JSON.parse(fs.readFileSync(process.env.KEYWORDS || '../compare/keywords.json', 'utf8'));
const entries = table.intents.map((i) => ({ id: i.id, keywords: i.keywords.map((k) => k.toLowerCase()), reply: i.reply }));

function match(text) {
  const t = String(text || '').slice(0, 4096).toLowerCase();
  for (const e of entries) if (e.keywords.some((k) => t.includes(k))) return e;
  return null;
}

module.exports = { match, fallback: table.fallback };
