// An EIP-1193 test wallet the browser tests inject into every page before
// the page's own scripts (CDP Page.addScriptToEvaluateOnNewDocument): it
// holds one secp256k1 test key (the test writes its hex into the
// placeholder below) and answers eth_requestAccounts, eth_accounts,
// eth_chainId and personal_sign, signing EIP-191 personal messages itself
// (Keccak-256 and secp256k1 ECDSA in BigInt arithmetic, recovery id in v).
// Test code only: not constant time, random nonces.
(() => {
  const M64 = (1n << 64n) - 1n;
  const RC = [
    0x0000000000000001n, 0x0000000000008082n, 0x800000000000808an, 0x8000000080008000n,
    0x000000000000808bn, 0x0000000080000001n, 0x8000000080008081n, 0x8000000000008009n,
    0x000000000000008an, 0x0000000000000088n, 0x0000000080008009n, 0x000000008000000an,
    0x000000008000808bn, 0x800000000000008bn, 0x8000000000008089n, 0x8000000000008003n,
    0x8000000000008002n, 0x8000000000000080n, 0x000000000000800an, 0x800000008000000an,
    0x8000000080008081n, 0x8000000000008080n, 0x0000000080000001n, 0x8000000080008008n,
  ];
  // ROT[x][y]
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
  function keccak256(bytes) {
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
  const P = 0xfffffffffffffffffffffffffffffffffffffffffffffffffffffffefffffc2fn;
  const N = 0xfffffffffffffffffffffffffffffffebaaedce6af48a03bbfd25e8cd0364141n;
  const G = [
    0x79be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798n,
    0x483ada7726a3c4655da4fbfc0e1108a8fd17b448a68554199c47d08ffb10d4b8n,
  ];
  const mod = (a, m) => ((a % m) + m) % m;
  function inv(a, m) {
    let [t, nt, r, nr] = [0n, 1n, m, mod(a, m)];
    while (nr !== 0n) {
      const q = r / nr;
      [t, nt] = [nt, t - q * nt];
      [r, nr] = [nr, r - q * nr];
    }
    return mod(t, m);
  }
  function add(p, q) {
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
  function mul(k, p) {
    let r = null;
    while (k > 0n) {
      if (k & 1n) r = add(r, p);
      p = add(p, p);
      k >>= 1n;
    }
    return r;
  }
  const big = (bytes) => BigInt("0x" + ([...bytes].map((b) => b.toString(16).padStart(2, "0")).join("") || "0"));
  const hex32 = (v) => v.toString(16).padStart(64, "0");
  const bytesOf = (v) => Uint8Array.from(hex32(v).match(/../g).map((h) => parseInt(h, 16)));

  const secret = BigInt("0x__SECRET_KEY_HEX__");
  const pub = mul(secret, G);
  const pubBytes = new Uint8Array(64);
  pubBytes.set(bytesOf(pub[0]), 0);
  pubBytes.set(bytesOf(pub[1]), 32);
  const address = "0x" + [...keccak256(pubBytes).slice(12)].map((b) => b.toString(16).padStart(2, "0")).join("");

  function personalSign(message) {
    const prefix = new TextEncoder().encode("\x19Ethereum Signed Message:\n" + message.length);
    const whole = new Uint8Array(prefix.length + message.length);
    whole.set(prefix);
    whole.set(message, prefix.length);
    const z = big(keccak256(whole));
    for (;;) {
      const k = mod(big(crypto.getRandomValues(new Uint8Array(32))), N);
      if (k === 0n) continue;
      const R = mul(k, G);
      const r = mod(R[0], N);
      if (r === 0n) continue;
      let s = mod(inv(k, N) * (z + r * secret), N);
      if (s === 0n) continue;
      let recovery = Number(R[1] & 1n) + (R[0] >= N ? 2 : 0);
      if (s > N / 2n) {
        s = N - s;
        recovery ^= 1;
      }
      return "0x" + hex32(r) + hex32(s) + (27 + recovery).toString(16);
    }
  }

  window.__testWallet = { address, signed: 0 };
  window.ethereum = {
    isSealstreamTestWallet: true,
    async request({ method, params }) {
      switch (method) {
        case "eth_requestAccounts":
        case "eth_accounts":
          return [address];
        case "eth_chainId":
          return "0xd0d";
        case "personal_sign": {
          const [text, from] = params || [];
          if (String(from).toLowerCase() !== address) {
            throw { code: 4100, message: "not this wallet's account" };
          }
          const bytes = /^0x([0-9a-fA-F]{2})*$/.test(text)
            ? Uint8Array.from(text.slice(2).match(/../g) || [], (h) => parseInt(h, 16))
            : new TextEncoder().encode(text);
          window.__testWallet.signed += 1;
          return personalSign(bytes);
        }
        default:
          throw { code: 4200, message: "unsupported method " + method };
      }
    },
  };
})();
