#!/usr/bin/env node
// Compiles TestToken.sol with solcjs (pinned in package.json) and writes its
// creation bytecode, as hex without 0x, to build/TestToken.bin (through a
// temporary file and a rename, so a reader never sees half a file).
"use strict";

const fs = require("fs");
const path = require("path");
const solc = require("solc");

const here = __dirname;
const sourcePath = path.join(here, "TestToken.sol");
const outDir = path.join(here, "build");
const outPath = path.join(outDir, "TestToken.bin");

const input = {
  language: "Solidity",
  sources: { "TestToken.sol": { content: fs.readFileSync(sourcePath, "utf8") } },
  settings: {
    evmVersion: "shanghai",
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { "TestToken.sol": { TestToken: ["evm.bytecode.object"] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input)));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) {
  process.stderr.write(e.formattedMessage || e.message);
}
if (errors.length > 0) {
  process.stderr.write(`compile-token.js: ${sourcePath} did not compile\n`);
  process.exit(1);
}
const bytecode = output.contracts["TestToken.sol"].TestToken.evm.bytecode.object;
if (!/^[0-9a-f]+$/.test(bytecode)) {
  process.stderr.write("compile-token.js: solc returned no bytecode for TestToken\n");
  process.exit(1);
}

fs.mkdirSync(outDir, { recursive: true });
const tmp = `${outPath}.tmp-${process.pid}`;
fs.writeFileSync(tmp, bytecode + "\n");
fs.renameSync(tmp, outPath);
process.stdout.write(`wrote ${path.relative(process.cwd(), outPath)} (${bytecode.length / 2} bytes, solc ${solc.version()})\n`);
