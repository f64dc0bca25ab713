#!/bin/bash
# Decode and prefill of two source trees side by side: `bash bench/ab-trees.sh OLD_TREE NEW_TREE [ROUNDS]`.
# Each tree needs its own `npm ci` (kernels built). Runs alternate old / new processes (one
# `mimo bench -r 1` each) over the small models and qwen2-0.5b on 1 and 2 threads and the default
# (-t auto, the thread count mimo chooses), ROUNDS times
# (default 3), and prints medians and new/old ratios as a markdown table (also in $OUT/table.md).
# Files come from $BENCH_FILES (default: this checkout's bench/files; `mimo synth --preset NAME`
# writes them).
set -euo pipefail
OLD=$(cd "$1" && pwd); NEW=$(cd "$2" && pwd); ROUNDS=${3:-3}
HERE=$(cd "$(dirname "$0")/.." && pwd)
F=${BENCH_FILES:-$HERE/bench/files}
OUT=${OUT:-$(mktemp -d /tmp/mimo-ab-XXXXXX)}
mkdir -p "$OUT"
runs=(
  "s42|$F/stories42m-Q4_0.gguf|-p 64 -n 128"
  "s15|$F/stories15m-Q8_0.gguf|-p 64 -n 128"
  "q05|$F/qwen2-0.5b-Q4_0.gguf|-p 128 -n 64"
  "s260|$HERE/models/stories260K.gguf|-p 128 -n 256"
)
# `mimo bench` decodes 1 s untimed before measuring where it has --warmup; a tree from before
# that warms up with a few steps only, so then both trees run that way (--warmup 0).
has_warmup() { grep -q -- '--warmup <ms>' "$1/src/cli/bench.ts"; }
W_OLD=(); W_NEW=()
if ! has_warmup "$OLD" || ! has_warmup "$NEW"; then
  has_warmup "$OLD" && W_OLD=(--warmup 0)
  has_warmup "$NEW" && W_NEW=(--warmup 0)
fi
CORES_START=$("$HERE/node_modules/.bin/node" "$HERE/bench/cores.ts")
for rep in $(seq 1 "$ROUNDS"); do
  for t in 1 2 auto; do
    for tree in old new; do
      dir=$NEW; warm=("${W_NEW[@]}"); [ "$tree" = old ] && { dir=$OLD; warm=("${W_OLD[@]}"); }
      for r in "${runs[@]}"; do
        IFS='|' read -r name file opts <<< "$r"
        [ -f "$file" ] || { echo "missing $file" >&2; continue; }
        # shellcheck disable=SC2086
        (cd "$dir" && node_modules/.bin/node src/cli/entry.ts bench -m "$file" -t "$t" $opts "${warm[@]}" -r 1 -o json -q 2>/dev/null) > "$OUT/$name-$tree-$t-$rep.json" || true
      done
    done
  done
done
"$HERE/node_modules/.bin/node" -e '
const fs = require("fs"); const [d, oldName, newName] = process.argv.slice(1); const m = new Map();
for (const f of fs.readdirSync(d).filter((f) => f.endsWith(".json"))) {
  const [file, tree, t] = f.replace(".json", "").split("-"); let j;
  try { j = JSON.parse(fs.readFileSync(d + "/" + f, "utf8"))[0]; } catch { continue; }
  for (const x of j.tests) { const k = `${file} t${t} ${x.name}`; const e = m.get(k) ?? { old: [], new: [] }; e[tree].push(x.stat.median); m.set(k, e); }
}
const med = (a) => { a = [...a].sort((x, y) => x - y); return a[a.length >> 1]; };
console.log(`| file threads test | old ${oldName} | new ${newName} | new/old |\n|---|---|---|---|`);
for (const [k, e] of [...m].sort()) if (e.old.length && e.new.length) console.log(`| ${k} | ${med(e.old).toFixed(1)} | ${med(e.new).toFixed(1)} | ${(med(e.new) / med(e.old)).toFixed(2)}x |`);
' "$OUT" "$(git -C "$OLD" rev-parse --short HEAD)" "$(git -C "$NEW" rev-parse --short HEAD)" | tee "$OUT/table.md"
{ echo; echo "At the start: $CORES_START"; echo "At the end: $("$HERE/node_modules/.bin/node" "$HERE/bench/cores.ts")"; } | tee -a "$OUT/table.md"
