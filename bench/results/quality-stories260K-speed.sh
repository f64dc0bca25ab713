#!/bin/bash
# Quiet decode speed of bench:quality's stories260K variants (default threads), 3 interleaved rounds. usage: quality-stories260K-speed.sh [REPO] (after npm run bench:quality wrote bench/files/quality)
cd ${1:-.}; F=bench/files/quality; OUT=/tmp/s260-$(date +%H%M).jsonl
for round in 1 2 3; do
  for f in models/stories260K.gguf $F/stories260K-*.gguf; do
    r=$(node_modules/.bin/node src/cli/entry.ts bench -m $f -p 0 -n 200 -r 1 -o json -q 2>/dev/null)
    echo "{\"round\":$round,\"file\":\"$(basename $f .gguf)\",\"result\":$r}" >> $OUT
  done
done
echo $OUT
