// Sign-In with Ethereum through the browser's wallet (EIP-1193
// window.ethereum). The server writes the EIP-4361 message (with the
// address in its EIP-55 form and a fresh nonce), the wallet signs it
// (personal_sign), and the server checks it and keeps the session in an
// HttpOnly cookie: this script never sees a session token.

const button = document.getElementById("wallet-signin");
const status = document.getElementById("wallet-status");

function say(text, failed) {
  status.textContent = text;
  status.className = "verify-result " + (failed ? "failed" : "ok");
}

async function post(path, body) {
  const response = await fetch(path, {
    method: "POST",
    headers: { "content-type": "application/json" },
    body: JSON.stringify(body),
    credentials: "same-origin",
  });
  const answer = await response.json().catch(() => ({}));
  if (!response.ok) {
    const e = answer.error || {};
    throw new Error((e.field ? e.field + ": " : "") + (e.message || response.statusText));
  }
  return answer;
}

async function signIn() {
  const wallet = window.ethereum;
  if (!wallet || typeof wallet.request !== "function") {
    say("No wallet found in this browser (EIP-1193 window.ethereum). Use a one-time link instead.", true);
    return;
  }
  button.disabled = true;
  try {
    say("Asking your wallet for its account…");
    const accounts = await wallet.request({ method: "eth_requestAccounts" });
    if (!accounts || !accounts.length) throw new Error("the wallet gave no account");
    const address = accounts[0];
    const { message } = await post("/signin/message", { address });
    say("Sign the message in your wallet…");
    const signature = await wallet.request({ method: "personal_sign", params: [message, address] });
    const { redirect } = await post("/signin/wallet", { message, signature });
    say("Signed in.");
    window.location.assign(redirect);
  } catch (e) {
    say("Not signed in: " + (e && e.message ? e.message : String(e)), true);
  } finally {
    button.disabled = false;
  }
}

if (button) button.addEventListener("click", signIn);
