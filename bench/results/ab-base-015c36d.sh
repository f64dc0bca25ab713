#!/bin/bash
# Old (BASE 015c36d: /tmp/base015) vs new (clean clone of final main: $1), alternating processes, same files.
NEW=$1; OUT=/tmp/ab-$(date +%H%M); mkdir -p $OUT
F=/work/main/bench/files
for rep in 1 2; do
  for t in 1 2; do
    for tree in old new; do
      dir=$NEW; [ $tree = old ] && dir=/tmp/base015
      cd $dir
      node_modules/.bin/node src/cli/entry.ts bench -m $F/stories42m-Q4_0.gguf -t $t -p 64 -n 128 -r 1 -o json -q 2>/dev/null > $OUT/s42-$tree-$t-$rep.json
      node_modules/.bin/node src/cli/entry.ts bench -m $F/stories15m-Q8_0.gguf -t $t -p 64 -n 128 -r 1 -o json -q 2>/dev/null > $OUT/s15-$tree-$t-$rep.json
      node_modules/.bin/node src/cli/entry.ts bench -m $F/qwen2-0.5b-Q4_0.gguf -t $t -p 128 -n 64 -r 1 -o json -q 2>/dev/null > $OUT/q05-$tree-$t-$rep.json
      node_modules/.bin/node src/cli/entry.ts bench -m /work/main/models/stories260K.gguf -t $t -p 128 -n 256 -r 1 -o json -q 2>/dev/null > $OUT/s260-$tree-$t-$rep.json
    done
  done
done
/work/main/node_modules/.bin/node -e '
const fs=require("fs");const d=process.argv[1];const m=new Map();
for(const f of fs.readdirSync(d)){const [file,tree,t]=f.replace(".json","").split("-");let j;try{j=JSON.parse(fs.readFileSync(d+"/"+f,"utf8"))[0]}catch{continue}
for(const x of j.tests){const k=`${file} t${t} ${x.name}`;const e=m.get(k)??{old:[],new:[]};e[tree].push(x.stat.median);m.set(k,e)}}
const med=a=>{a=[...a].sort((x,y)=>x-y);return a[a.length>>1]};
console.log("| file threads test | old 015c36d | new | new/old |\n|---|---|---|---|");
for(const [k,e] of [...m].sort()) console.log(`| ${k} | ${med(e.old).toFixed(1)} | ${med(e.new).toFixed(1)} | ${(med(e.new)/med(e.old)).toFixed(2)}x |`);
' $OUT | tee $OUT/table.md
