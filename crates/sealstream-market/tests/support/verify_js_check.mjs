// Runs the listing page's own verification code (static/verify.js) under
// Node's WebCrypto against the documented examples (docs/examples): the
// canonical JSON of the manifest, its Ed25519 signature, the inclusion
// path to the signed root; and against tampered copies of each, which
// must fail. Prints one JSON object of results.
import fs from "node:fs";
import path from "node:path";
import os from "node:os";

const [scriptPath, examples] = process.argv.slice(2);
const src = fs.readFileSync(scriptPath, "utf8").replace(/document\.addEventListener[\s\S]*$/, "")
  + "\nexport { canonical, ed25519, utf8, rootFromPath, sha256, unhex, hex, concat };\n";
const dir = fs.mkdtempSync(path.join(os.tmpdir(), "verify-js-"));
const module = path.join(dir, "verify.mjs");
fs.writeFileSync(module, src);
// verify.js imports its Keccak/secp256k1 module from beside it.
fs.copyFileSync(path.join(path.dirname(scriptPath), "secp256k1.js"), path.join(dir, "secp256k1.js"));
const m = await import(module);
const k = await import(path.join(dir, "secp256k1.js"));

const manifest = JSON.parse(fs.readFileSync(path.join(examples, "dataset.json"), "utf8"));
const signedBytes = fs.readFileSync(path.join(examples, "dataset.signed-bytes.txt"), "utf8");
const proof = JSON.parse(fs.readFileSync(path.join(examples, "inclusion-proof.json"), "utf8"));
const unsigned = Object.assign({}, manifest); delete unsigned.signatures;
const text = m.canonical(unsigned);
const ed = manifest.signatures.find((s) => s.algorithm === "ed25519");
const root = async (chunkId, p) => {
  const leaf = await m.sha256(m.concat(Uint8Array.of(0), m.unhex(chunkId)));
  const r = await m.rootFromPath(leaf, proof.leafIndex, proof.treeSize, p);
  return r === null ? null : "0x" + m.hex(r);
};
const flip = (h) => h.slice(0, -1) + (h.endsWith("0") ? "1" : "0");
const eth = manifest.signatures.find((s) => s.algorithm === "eip191-secp256k1");
const machine = manifest.machineDid.slice("did:peaq:".length).toLowerCase();
const result = {
  canonicalEqual: text === signedBytes,
  unicode: m.canonical({ b: "caf\u00e9 \u2028 \u{1F600}", a: [1, null, true] }),
  signatureHolds: await m.ed25519(ed.publicKeyHex, ed.value, m.utf8.encode(text)),
  changedManifestFails: !(await m.ed25519(ed.publicKeyHex, ed.value, m.utf8.encode(text.replace('"chunkCount":3', '"chunkCount":4')))),
  rootMatches: (await root(proof.chunkId, proof.path)) === manifest.merkleRoot,
  otherChunkFails: (await root(flip(proof.chunkId), proof.path)) !== manifest.merkleRoot,
  eip191Recovers: k.recoverPersonal(m.utf8.encode(text), eth.value) === machine,
  eip191ChangedManifestFails: k.recoverPersonal(m.utf8.encode(text.replace('"chunkCount":3', '"chunkCount":4')), eth.value) !== machine,
  eip191MalformedIsNull: k.recoverPersonal(m.utf8.encode(text), eth.value.slice(0, -2)) === null,
  keccakEmpty: Buffer.from(k.keccak256(new Uint8Array())).toString("hex"),
  changedPathFails: (await root(proof.chunkId, [flip(proof.path[0]), ...proof.path.slice(1)])) !== manifest.merkleRoot,
};
console.log(JSON.stringify(result));
