// Verify a listing's sample chunk in the browser, trusting nothing the
// server says: the signed dataset manifest's signatures (Ed25519 by the
// chain key named on the page, the card's; EIP-191 by the card's seller or
// machine, recovered with secp256k1.js), the chunk's ciphertext hash, its
// recomputed id and Ed25519 signature, and its RFC 6962 inclusion path to
// the signed Merkle root. WebCrypto (SHA-256, Ed25519) and this server's
// own Keccak/secp256k1 module; every request goes to this server.

import { recoverPersonal } from "./secp256k1.js";

const utf8 = new TextEncoder();

// The address of a `did:peaq:0x…`, lowercase; "" for anything else.
function addressOfDid(did) {
  const m = /^did:peaq:(0x[0-9a-fA-F]{40})$/.exec(String(did));
  return m ? m[1].toLowerCase() : "";
}

function unhex(text) {
  const h = String(text).replace(/^0x/, "");
  if (h.length % 2 !== 0 || /[^0-9a-fA-F]/.test(h)) throw new Error("not hex");
  const out = new Uint8Array(h.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(h.substr(2 * i, 2), 16);
  return out;
}

function hex(bytes) {
  return Array.from(new Uint8Array(bytes), (b) => b.toString(16).padStart(2, "0")).join("");
}

async function sha256(bytes) {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", bytes));
}

async function ed25519(publicKeyHex, signatureHex, data) {
  const key = await crypto.subtle.importKey("raw", unhex(publicKeyHex), { name: "Ed25519" }, false, ["verify"]);
  return crypto.subtle.verify({ name: "Ed25519" }, key, unhex(signatureHex), data);
}

function concat(...parts) {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) { out.set(p, at); at += p.length; }
  return out;
}

// The reference's canonical JSON (Python's json.dumps with sort_keys and
// compact separators): keys sorted, no whitespace, non-ASCII as \uXXXX.
function pyString(s) {
  const u = (c) => "\\u" + c.toString(16).padStart(4, "0");
  let out = '"';
  for (const ch of s) {
    const c = ch.codePointAt(0);
    if (ch === '"') out += '\\"';
    else if (ch === "\\") out += "\\\\";
    else if (c === 0x0a) out += "\\n";
    else if (c === 0x0d) out += "\\r";
    else if (c === 0x09) out += "\\t";
    else if (c === 0x08) out += "\\b";
    else if (c === 0x0c) out += "\\f";
    else if (c < 0x20 || c > 0x7e) {
      if (c > 0xffff) { const v = c - 0x10000; out += u(0xd800 + (v >> 10)) + u(0xdc00 + (v & 0x3ff)); }
      else out += c === 0x7f ? ch : u(c);
    } else out += ch;
  }
  return out + '"';
}

function canonical(v) {
  if (v === null) return "null";
  if (Array.isArray(v)) return "[" + v.map(canonical).join(",") + "]";
  switch (typeof v) {
    case "string": return pyString(v);
    case "boolean": return v ? "true" : "false";
    case "number":
      if (!Number.isSafeInteger(v)) throw new Error("a number the check cannot reproduce");
      return String(v);
    case "object":
      return "{" + Object.keys(v).sort().map((k) => pyString(k) + ":" + canonical(v[k])).join(",") + "}";
    default: throw new Error("not JSON");
  }
}

// RFC 9162 §2.1.3.2: the inclusion path from `leaf` (index `fn` of a tree
// of `size` leaves) to the root.
async function rootFromPath(leaf, index, size, path) {
  if (index >= size) return null;
  let fn = index, sn = size - 1, r = leaf;
  for (const p of path) {
    if (sn === 0) return null;
    const sibling = unhex(p);
    if ((fn & 1) === 1 || fn === sn) {
      r = await sha256(concat(Uint8Array.of(1), sibling, r));
      if ((fn & 1) === 0) { while ((fn & 1) === 0 && fn !== 0) { fn >>= 1; sn >>= 1; } }
    } else {
      r = await sha256(concat(Uint8Array.of(1), r, sibling));
    }
    fn >>= 1; sn >>= 1;
  }
  return sn === 0 ? r : null;
}

async function fetchOk(url, kind) {
  const res = await fetch(url, { credentials: "same-origin", cache: "no-store" });
  if (!res.ok) throw new Error(url + " answered " + res.status);
  return kind === "bytes" ? new Uint8Array(await res.arrayBuffer()) : res.json();
}

async function verify(button) {
  const dataset = button.dataset.dataset, listing = button.dataset.listing;
  const index = Number(button.dataset.index), chainKey = button.dataset.chainKey.toLowerCase();
  const enc = encodeURIComponent;
  const [view, proof, envelope, ciphertext] = await Promise.all([
    fetchOk(`/v1/datasets/${enc(dataset)}`),
    fetchOk(`/v1/datasets/${enc(dataset)}/proofs/${index}`),
    fetchOk(`/v1/datasets/${enc(dataset)}/chunks/${index}/envelope`),
    fetchOk(`/v1/listings/${enc(listing)}/samples/${index}/ciphertext`, "bytes"),
  ]);
  const manifest = view.manifest;
  if (!manifest) throw new Error("the dataset has no signed manifest");
  const checks = [];
  const check = (ok, what) => { checks.push([Boolean(ok), what]); };
  // The manifest: signed by the chain key the card names.
  check(String(manifest.chainPublicKeyHex).toLowerCase() === chainKey, "the dataset's chain key is the one on this listing's card");
  const unsigned = Object.assign({}, manifest); delete unsigned.signatures;
  const signedBytes = utf8.encode(canonical(unsigned));
  const signatures = manifest.signatures || [];
  const edSigs = signatures.filter((s) => s.algorithm === "ed25519");
  const ethSigs = signatures.filter((s) => s.algorithm === "eip191-secp256k1");
  // Who the card says may sign: the seller and the machine.
  const seller = String(button.dataset.seller || ""), machine = String(button.dataset.machine || "");
  const trusted = new Map([[addressOfDid(machine), "the listing's machine"], [addressOfDid(seller), "the listing's seller"]]);
  trusted.delete("");
  for (const s of edSigs) {
    const ok = String(s.publicKeyHex).toLowerCase() === chainKey && await ed25519(chainKey, s.value, signedBytes);
    check(ok, "the dataset manifest (its Merkle root) is signed with that chain key (Ed25519)");
  }
  for (const s of ethSigs) {
    const claimed = addressOfDid(s.signer);
    const role = trusted.get(claimed);
    const recovered = claimed && recoverPersonal(signedBytes, s.value);
    const ok = Boolean(role) && recovered === claimed;
    check(ok, role
      ? `the dataset manifest (its Merkle root) is signed by ${s.signer}, ${role} (EIP-191, secp256k1)`
      : `the dataset manifest is signed by ${s.signer}, who is neither the listing's seller nor its machine`);
  }
  if (edSigs.length === 0 && ethSigs.length === 0) {
    check(false, "the dataset manifest (its Merkle root) carries a signature by the chain key, the seller or the machine: it carries none");
  }
  // The chunk itself.
  check(envelope.index === index, `the envelope is chunk ${index}`);
  check("0x" + hex(await sha256(ciphertext)) === envelope.encryptedDataHash, "the sample's ciphertext hashes to the envelope's encryptedDataHash (SHA-256)");
  const id = "0x" + hex(await sha256(utf8.encode(`${envelope.previousChunkId ?? ""}|${envelope.encryptedDataHash}|${envelope.index}`)));
  check(id === envelope.chunkId, "the chunk id recomputes from its link, hash and index");
  const sig = envelope.signature || {};
  check(String(sig.publicKeyHex).toLowerCase() === chainKey && await ed25519(chainKey, sig.value, utf8.encode(envelope.encryptedDataHash)), "the chunk is signed with the chain key (Ed25519)");
  // Under the signed root.
  const leaf = await sha256(concat(Uint8Array.of(0), unhex(envelope.chunkId)));
  const root = await rootFromPath(leaf, index - manifest.firstIndex, manifest.chunkCount, proof.path || []);
  check(proof.treeSize === manifest.chunkCount, "the proof is for the whole signed tree");
  check(root !== null && "0x" + hex(root) === manifest.merkleRoot, "its inclusion path leads to the signed Merkle root");
  return checks;
}

function show(output, checks, error) {
  output.replaceChildren();
  const summary = document.createElement("p");
  const ok = !error && checks.every(([pass]) => pass);
  summary.className = ok ? "ok" : "failed";
  summary.textContent = ok ? "Verified: every check passed." : "Not verified: " + (error ? error.message : "a check failed.");
  summary.setAttribute("data-verdict", ok ? "verified" : "failed");
  output.append(summary);
  const list = document.createElement("ul");
  for (const [pass, what] of checks) {
    const item = document.createElement("li");
    item.className = pass ? "ok" : "failed";
    item.textContent = (pass ? "✓ " : "✗ ") + what;
    list.append(item);
  }
  output.append(list);
}

document.addEventListener("DOMContentLoaded", () => {
  const output = document.getElementById("verify-result");
  for (const button of document.querySelectorAll("button.verify")) {
    button.addEventListener("click", async () => {
      output.textContent = "Checking…";
      try { show(output, await verify(button), null); }
      catch (e) { show(output, [], e); }
    });
  }
});
