#!/bin/bash
# Old (8dd1c72: a git worktree at /tmp/base with its own npm ci) vs new (a clean clone of main at /tmp/ci2), alternating processes, same files.
Q=/work/main/bench/files/qwen2-0.5b-Q4_0.gguf
S=/work/main/models/stories260K.gguf
for rep in 1 2 3; do
  for t in 1 2; do
    for tree in old new; do
      dir=/tmp/ci2; [ $tree = old ] && dir=/tmp/base
      (cd $dir && node_modules/.bin/node src/cli/entry.ts bench -m $Q -t $t -p 512 -n 128 -r 1 -o json -q --seed $rep 2>/dev/null) > /tmp/ab-q-$tree-$t-$rep.json
      (cd $dir && node_modules/.bin/node src/cli/entry.ts bench -m $S -t $t -p 128 -n 256 -r 1 -o json -q --seed $rep 2>/dev/null) > /tmp/ab-s-$tree-$t-$rep.json
      sleep 0.3
    done
  done
done
echo done
