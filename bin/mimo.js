#!/usr/bin/env node
// The `mimo` command. The Node version is checked before anything that needs a newer one loads
// (package.json's engines: the argument parser, commander 15, needs Node 22.12); then the compiled
// CLI runs (`npm install` builds dist/ in its prepare step).
const [major = 0, minor = 0] = process.versions.node.split(".").map(Number);
if (major < 22 || (major === 22 && minor < 12)) {
  process.stderr.write(
    `mimo: error: this is Node ${process.versions.node}; mimo needs Node 22.12 or newer (install a current LTS from https://nodejs.org, or run \`nvm install --lts\`)\n`,
  );
  process.exit(1);
}
await import("../dist/cli/entry.js");
