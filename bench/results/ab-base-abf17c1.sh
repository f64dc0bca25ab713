#!/bin/bash
# Old (BASE abf17c1: worktree /tmp/baseabf) vs new (clean clone of main at /tmp/cicheck2), alternating processes, same files.
Q=/work/main/bench/files/qwen2-0.5b-Q4_0.gguf
S=/work/main/models/stories260K.gguf
for rep in 1 2 3; do
  for t in 1 2; do
    for tree in old new; do
      dir=/tmp/cicheck2; [ $tree = old ] && dir=/tmp/baseabf
      (cd $dir && node_modules/.bin/node src/cli/entry.ts bench -m $Q -t $t -p 128 -n 64 -r 1 -o json -q 2>/dev/null) > /tmp/ab-q-$tree-$t-$rep.json
      (cd $dir && node_modules/.bin/node src/cli/entry.ts bench -m $S -t $t -p 128 -n 256 -r 1 -o json -q 2>/dev/null) > /tmp/ab-s-$tree-$t-$rep.json
    done
  done
done
echo done
