#!/usr/bin/env node
// Compiles contracts/SealstreamEscrow.sol (OpenZeppelin 5 imports, resolved
// from peers/node_modules) with solcjs (pinned in package.json) and writes
// its creation bytecode, as hex without 0x, to build/SealstreamEscrow.bin and
// its ABI to build/SealstreamEscrow.abi.json (each through a temporary file
// and a rename, so a reader never sees half a file).
"use strict";

const fs = require("fs");
const path = require("path");
const solc = require("solc");

const here = __dirname;
const sourcePath = path.join(here, "..", "contracts", "SealstreamEscrow.sol");
const outDir = path.join(here, "build");

function findImports(p) {
  try {
    return { contents: fs.readFileSync(require.resolve(p, { paths: [here] }), "utf8") };
  } catch {
    return { error: `not found: ${p}` };
  }
}

const input = {
  language: "Solidity",
  sources: { "SealstreamEscrow.sol": { content: fs.readFileSync(sourcePath, "utf8") } },
  settings: {
    evmVersion: "shanghai",
    optimizer: { enabled: true, runs: 200 },
    outputSelection: { "SealstreamEscrow.sol": { SealstreamEscrow: ["abi", "evm.bytecode.object"] } },
  },
};

const output = JSON.parse(solc.compile(JSON.stringify(input), { import: findImports }));
const errors = (output.errors || []).filter((e) => e.severity === "error");
for (const e of output.errors || []) {
  process.stderr.write(e.formattedMessage || e.message);
}
if (errors.length > 0) {
  process.stderr.write(`compile-escrow.js: ${sourcePath} did not compile\n`);
  process.exit(1);
}
const contract = output.contracts["SealstreamEscrow.sol"].SealstreamEscrow;
const bytecode = contract.evm.bytecode.object;
if (!/^[0-9a-f]+$/.test(bytecode)) {
  process.stderr.write("compile-escrow.js: solc returned no bytecode for SealstreamEscrow\n");
  process.exit(1);
}

function writeAtomically(file, text) {
  const tmp = `${file}.tmp-${process.pid}`;
  fs.writeFileSync(tmp, text);
  fs.renameSync(tmp, file);
}

fs.mkdirSync(outDir, { recursive: true });
writeAtomically(path.join(outDir, "SealstreamEscrow.abi.json"), JSON.stringify(contract.abi, null, 2) + "\n");
const binPath = path.join(outDir, "SealstreamEscrow.bin");
writeAtomically(binPath, bytecode + "\n");
process.stdout.write(`wrote ${path.relative(process.cwd(), binPath)} (${bytecode.length / 2} bytes, solc ${solc.version()})\n`);
