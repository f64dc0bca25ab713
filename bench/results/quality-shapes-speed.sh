#!/bin/bash
# Quiet re-measure of bench:quality's qwen2-0.5b shape files (decode 64 tokens, 2 threads), 3 interleaved rounds.
# usage: shapes.sh REPO  (REPO has node_modules and a build)
REPO=$1; F=bench/files/quality; OUT=/tmp/shapes-$(date +%H%M).jsonl
cd $REPO
for round in 1 2 3; do
  for f in F16 Q8_0 Q6_K Q5_K_M Q4_K_M Q4_0 Q3_K_M Q2_K Q4_K_M_depth_2_layers Q4_K_M_FFN_25_4864_3584_ Q4_K_M_FFN_50_4864_2560_; do
    r=$(node_modules/.bin/node src/cli/entry.ts bench -m $F/qwen2-0.5b-$f.gguf -t 2 -p 0 -n 64 -r 1 -o json -q 2>/dev/null)
    echo "{\"round\":$round,\"file\":\"$f\",\"result\":$r}" >> $OUT
  done
done
echo $OUT
