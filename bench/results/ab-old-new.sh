#!/bin/bash
# Old (BASE worktree) vs new, alternating processes, same file.
F=/work/main/bench/files/qwen2-0.5b-Q4_0.gguf
for rep in 1 2 3; do
  for t in 1 2; do
    for tree in old new; do
      dir=/work/main; [ $tree = old ] && dir=/tmp/base
      (cd $dir && node_modules/.bin/node src/cli/entry.ts bench -m $F -t $t -p 512 -n 128 -r 1 -o json -q --seed $rep 2>/dev/null) > /tmp/ab-$tree-$t-$rep.json
      sleep 0.3
    done
  done
done
