// Keccak-256 and secp256k1 in BigInt arithmetic, for what WebCrypto lacks:
// checking an EIP-191 (Ethereum personal message) signature by recovering
// its signer's address. Only public data goes through this code
// (signatures, messages, addresses): it is not constant time and needs not
// be. An ES module (the listing page's verify.js imports it).

const M64 = (1n << 64n) - 1n;
const RC = [
  0x0000000000000001n, 0x0000000000008082n, 0x800000000000808an, 0x8000000080008000n,
  0x000000000000808bn, 0x0000000080000001n, 0x8000000080008081n, 0x8000000000008009n,
  0x000000000000008an, 0x0000000000000088n, 0x0000000080008009n, 0x000000008000000an,
  0x000000008000808bn, 0x800000000000008bn, 0x8000000000008089n, 0x8000000000008003n,
  0x8000000000008002n, 0x8000000000000080n, 0x000000000000800an, 0x800000008000000an,
  0x8000000080008081n, 0x8000000000008080n, 0x0000000080000001n, 0x8000000080008008n,
];
// Rotation offsets r[x][y] of Keccak-f[1600].
const ROT = [[0, 36, 3, 41, 18], [1, 44, 10, 45, 2], [62, 6, 43, 15, 61], [28, 55, 25, 21, 56], [27, 20, 39, 8, 14]];
const rotl = (v, n) => (n === 0 ? v : ((v << BigInt(n)) | (v >> BigInt(64 - n))) & M64);

function keccakF(A) {
  for (let round = 0; round < 24; round++) {
    const C = [0, 1, 2, 3, 4].map((x) => A[x] ^ A[x + 5] ^ A[x + 10] ^ A[x + 15] ^ A[x + 20]);
    for (let x = 0; x < 5; x++) {
      const D = C[(x + 4) % 5] ^ rotl(C[(x + 1) % 5], 1);
      for (let y = 0; y < 5; y++) A[x + 5 * y] ^= D;
    }
    const B = new Array(25);
    for (let x = 0; x < 5; x++)
      for (let y = 0; y < 5; y++) B[y + 5 * ((2 * x + 3 * y) % 5)] = rotl(A[x + 5 * y], ROT[x][y]);
    for (let x = 0; x < 5; x++)
      for (let y = 0; y < 5; y++)
        A[x + 5 * y] = B[x + 5 * y] ^ (~B[((x + 1) % 5) + 5 * y] & M64 & B[((x + 2) % 5) + 5 * y]);
    A[0] ^= RC[round];
  }
}

/** Keccak-256 (Ethereum's: padding 0x01) of `bytes`, 32 bytes. */
export function keccak256(bytes) {
  const rate = 136;
  const padded = new Uint8Array(Math.ceil((bytes.length + 1) / rate) * rate);
  padded.set(bytes);
  padded[bytes.length] ^= 0x01;
  padded[padded.length - 1] ^= 0x80;
  const A = new Array(25).fill(0n);
  for (let off = 0; off < padded.length; off += rate) {
    for (let i = 0; i < rate / 8; i++) {
      let v = 0n;
      for (let b = 7; b >= 0; b--) v = (v << 8n) | BigInt(padded[off + i * 8 + b]);
      A[i] ^= v;
    }
    keccakF(A);
  }
  const out = new Uint8Array(32);
  for (let i = 0; i < 4; i++) {
    let v = A[i];
    for (let b = 0; b < 8; b++) {
      out[i * 8 + b] = Number(v & 0xffn);
      v >>= 8n;
    }
  }
  return out;
}

/** The field prime, the group order and the generator of secp256k1. */
export const P = 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2fn;
export const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
export const G = [
  0x79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798n,
  0x483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8n,
];

/** `a` mod `m`, in [0, m). */
export const mod = (a, m) => ((a % m) + m) % m;

/** The inverse of `a` mod `m`. */
export function inv(a, m) {
  let [t, nt, r, nr] = [0n, 1n, m, mod(a, m)];
  while (nr !== 0n) {
    const q = r / nr;
    [t, nt] = [nt, t - q * nt];
    [r, nr] = [nr, r - q * nr];
  }
  return mod(t, m);
}

function pow(b, e, m) {
  let r = 1n;
  b = mod(b, m);
  while (e > 0n) {
    if (e & 1n) r = (r * b) % m;
    b = (b * b) % m;
    e >>= 1n;
  }
  return r;
}

/** The sum of two points (`null` is the point at infinity). */
export function add(p, q) {
  if (!p) return q;
  if (!q) return p;
  let l;
  if (p[0] === q[0]) {
    if (mod(p[1] + q[1], P) === 0n) return null;
    l = mod(3n * p[0] * p[0] * inv(2n * p[1], P), P);
  } else {
    l = mod((q[1] - p[1]) * inv(q[0] - p[0], P), P);
  }
  const x = mod(l * l - p[0] - q[0], P);
  return [x, mod(l * (p[0] - x) - p[1], P)];
}

/** `k` times the point `p`. */
export function mul(k, p) {
  let r = null;
  while (k > 0n) {
    if (k & 1n) r = add(r, p);
    p = add(p, p);
    k >>= 1n;
  }
  return r;
}

/** A big-endian unsigned integer of `bytes`. */
export const bigOf = (bytes) => BigInt("0x" + (Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("") || "0"));
const hex32 = (v) => v.toString(16).padStart(64, "0");
const bytes32 = (v) => Uint8Array.from(hex32(v).match(/../g), (h) => parseInt(h, 16));

/** The address (`0x` + 40 lowercase hex digits) of a public point. */
export function addressOf(point) {
  const raw = new Uint8Array(64);
  raw.set(bytes32(point[0]), 0);
  raw.set(bytes32(point[1]), 32);
  return "0x" + Array.from(keccak256(raw).slice(12), (b) => b.toString(16).padStart(2, "0")).join("");
}

/** The EIP-191 hash of a personal message: Keccak-256 of
 * "\x19Ethereum Signed Message:\n" + its length in bytes + the bytes. */
export function personalHash(message) {
  const prefix = new TextEncoder().encode("\x19Ethereum Signed Message:\n" + message.length);
  const whole = new Uint8Array(prefix.length + message.length);
  whole.set(prefix);
  whole.set(message, prefix.length);
  return keccak256(whole);
}

/** The address that signed the personal message `message` (bytes) with
 * `signatureHex` (r ‖ s ‖ v, 65 bytes, v 27/28 or 0/1), or `null` when the
 * signature is malformed or recovers no key. */
export function recoverPersonal(message, signatureHex) {
  const h = String(signatureHex).replace(/^0x/, "");
  if (!/^[0-9a-fA-F]{130}$/.test(h)) return null;
  const r = BigInt("0x" + h.slice(0, 64));
  const s = BigInt("0x" + h.slice(64, 128));
  let v = parseInt(h.slice(128), 16);
  if (v >= 27) v -= 27;
  if (v < 0 || v > 3 || r === 0n || s === 0n || r >= N || s >= N) return null;
  const x = v >= 2 ? r + N : r;
  if (x >= P) return null;
  const alpha = mod(x * x * x + 7n, P);
  let y = pow(alpha, (P + 1n) / 4n, P);
  if (mod(y * y, P) !== alpha) return null;
  if (Number(y & 1n) !== (v & 1)) y = P - y;
  const z = mod(bigOf(personalHash(message)), N);
  const rInv = inv(r, N);
  const q = add(mul(mod(-z * rInv, N), G), mul(mod(s * rInv, N), [x, y]));
  return q ? addressOf(q) : null;
}
