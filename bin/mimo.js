#!/usr/bin/env node
// The compiled CLI; `npm install` builds dist/ in its prepare step.
import "../dist/cli/entry.js";
