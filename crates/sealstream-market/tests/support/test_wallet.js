// An EIP-1193 test wallet the browser tests inject into every page before
// the page's own scripts (CDP Page.addScriptToEvaluateOnNewDocument). The
// test puts it after the server's own static/secp256k1.js (its `export`s
// dropped, in one function scope) and writes its secp256k1 test key's hex
// into the placeholder below. It answers eth_requestAccounts,
// eth_accounts, eth_chainId and personal_sign, signing EIP-191 personal
// messages in the page (ECDSA with the recovery id in v, low s). Test code
// only: not constant time, random nonces.
const secret = BigInt("0x__SECRET_KEY_HEX__");
const address = addressOf(mul(secret, G));

function personalSign(message) {
  const z = bigOf(personalHash(message));
  const hex32 = (v) => v.toString(16).padStart(64, "0");
  for (;;) {
    const k = mod(bigOf(crypto.getRandomValues(new Uint8Array(32))), N);
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

window.__testWallet = { address };
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
        return personalSign(bytes);
      }
      default:
        throw { code: 4200, message: "unsupported method " + method };
    }
  },
};
