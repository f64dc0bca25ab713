#!/bin/bash
# Before (BASE: worktree at the commit before issue 8's lazy head / Q8_0 tiles / Q4_0 matvec,
# e.g. git worktree add --detach /tmp/verify-base 4ab705c) vs after (this tree), alternating
# processes, same file: bench:spec replay runs (the speedup is against plain decoding in the
# same process, so a ratio of ratios). Usage: bash bench/results/ab-verify-lazy-head.sh BASE_DIR NEW_DIR OUT_DIR ngram|mtp [reps]
BASE=$1; NEW=$2; OUT=$3; WHAT=$4; REPS=${5:-3}
mkdir -p $OUT
Q=/work/main/bench/files/qwen2-0.5b-Q4_0.gguf
M=/work/main/bench/files/mimo-7b-Q4_0.gguf
for rep in $(seq 1 $REPS); do
  for tree in base new; do
    dir=$NEW; [ $tree = base ] && dir=$BASE
    if [ $WHAT = ngram ]; then
      (cd $dir && node_modules/.bin/node bench/spec.ts --file $Q --spec ngram --replay 0.7 --draft-max 8 -t 2 -n 48 -r 1 --variants fixed,adaptive --engines mimo --no-save 2>&1) > $OUT/ngram-$tree-$rep.txt
    else
      (cd $dir && node_modules/.bin/node bench/spec.ts --file $M --spec mtp --replay 0.9 --draft-max 1 -t 2 -n 32 -r 1 --variants fixed --engines mimo --no-save 2>&1) > $OUT/mtp-$tree-$rep.txt
    fi
  done
done
echo done
