import { test } from "node:test";
import assert from "node:assert/strict";
import { startPaywall, MESSAGES, STATES, refusedMessage } from "../dist/paywall.js";
import { decodeHeader, encodeHeader } from "../dist/index.js";
import { ed25519 } from "@noble/curves/ed25519.js";
import { getBase58Encoder } from "@solana/kit";
import { loadTestWallet } from "./wallet-env.mjs";
import * as f from "./fixtures.mjs";

class FakeElement {
  constructor(text = "") {
    this.textContent = text;
    this.hidden = false;
    this.disabled = false;
    this.attributes = {};
    this.listeners = [];
  }
  setAttribute(name, value) {
    this.attributes[name] = String(value);
  }
  addEventListener(type, listener) {
    this.listeners.push(listener);
  }
}

const URL_ = "http://127.0.0.1:8402/api/generate";

function page({ wallets = [], answers, challenge = f.challengeV2(), fresh = challenge }) {
  const els = {
    "x402-challenge": new FakeElement(JSON.stringify(challenge)),
    "x402-pay": new FakeElement("Pay"),
    "x402-status": new FakeElement(""),
    "x402-content": new FakeElement(""),
    "x402-explorer": new FakeElement(""),
  };
  els["x402-content"].hidden = true;
  els["x402-explorer"].hidden = true;
  const sent = [];
  const proofs = [];
  let asked = 0;
  const fetch = async (url, init) => {
    assert.equal(url, URL_);
    assert.equal(init.method, "GET");
    // Before signing, the page asks for a fresh challenge (its own may be stale).
    if (!init.headers["PAYMENT-SIGNATURE"]) {
      asked += 1;
      return f.response402(fresh);
    }
    sent.push(init.headers["PAYMENT-SIGNATURE"]);
    proofs.push(init.headers["X-Payment-Proof"] ?? null);
    return answers[Math.min(sent.length - 1, answers.length - 1)]();
  };
  const { pay } = startPaywall({
    document: { getElementById: (id) => els[id] ?? null },
    fetch,
    wallets: { get: () => wallets },
    url: URL_,
  });
  const status = () => [els["x402-status"].attributes["data-state"], els["x402-status"].textContent];
  return { els, sent, proofs, pay, status, asked: () => asked };
}

const wallet = (reject = false) => loadTestWallet({ secretKey: f.BUYER_SECRET, reject }).wallet;
const settlement = (network = f.DEVNET) => ({ success: true, transaction: "5Sig", network, payer: f.BUYER });
const ok = (network) => () =>
  new Response("the poem", { status: 200, headers: { "PAYMENT-RESPONSE": encodeHeader(settlement(network)) } });
const refused = (error) => () => f.response402(f.challengeV2(undefined, error));
const busy = () => new Response("", { status: 503, headers: { "Retry-After": "1" } });

test("pay: signs the sponsored receipt offer, shows the answer and the explorer link", async () => {
  const p = page({ wallets: [wallet()], answers: [ok()] });
  await p.pay();
  assert.deepEqual(p.status(), [STATES.paid, MESSAGES.paid]);
  assert.equal(p.els["x402-content"].textContent, "the poem");
  assert.equal(p.els["x402-content"].hidden, false);
  assert.equal(p.els["x402-explorer"].attributes.href, "https://explorer.solana.com/tx/5Sig?cluster=devnet");
  assert.equal(p.els["x402-explorer"].textContent, "View the payment on the explorer");
  assert.equal(p.els["x402-explorer"].hidden, false);
  const header = decodeHeader(p.sent[0]);
  assert.equal(header.accepted.scheme, "receipt");
  assert.ok(f.verifyBuyer(f.decodeTx(header.payload.transaction).tx));
});

test("the offer paid is a fresh challenge's, not the page's (whose blockhash may be stale)", async () => {
  const stale = f.challengeV2([f.exactOffer()]);
  const p = page({ wallets: [wallet()], answers: [ok()], challenge: stale, fresh: f.challengeV2() });
  await p.pay();
  assert.equal(p.asked(), 1);
  assert.equal(decodeHeader(p.sent[0]).accepted.scheme, "receipt");
});

test("explorer cluster: none on mainnet, custom elsewhere", async () => {
  const main = page({ wallets: [wallet()], answers: [ok("solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp")] });
  await main.pay();
  assert.equal(main.els["x402-explorer"].attributes.href, "https://explorer.solana.com/tx/5Sig");
  const local = page({ wallets: [wallet()], answers: [ok("solana:4uhcVJyU9pJkvQyS88uRDiswHXSCkY3zQ")] });
  await local.pay();
  assert.equal(local.els["x402-explorer"].attributes.href, "https://explorer.solana.com/tx/5Sig?cluster=custom");
});

test("exact only: decimals and token program from the table", async () => {
  const p = page({ wallets: [wallet()], answers: [ok()], challenge: f.challengeV2([f.exactOffer()]) });
  await p.pay();
  assert.equal(p.status()[0], STATES.paid);
  assert.equal(decodeHeader(p.sent[0]).accepted.scheme, "exact");
});

test("no wallet", async () => {
  const p = page({ wallets: [{ name: "evm", chains: ["eip155:1"], features: {}, accounts: [] }], answers: [ok()] });
  await p.pay();
  assert.deepEqual(p.status(), [STATES.noWallet, MESSAGES.noWallet]);
  assert.equal(MESSAGES.noWallet, "No Solana wallet found. Install Phantom, Solflare or Backpack, then reload.");
  assert.equal(p.sent.length, 0);
});

test("wallet rejected", async () => {
  const p = page({ wallets: [wallet(true)], answers: [ok()] });
  await p.pay();
  assert.deepEqual(p.status(), [STATES.walletRejected, "You declined in your wallet. Nothing was paid."]);
  assert.equal(p.sent.length, 0);
});

test("402 outcomes: insufficient funds, expired, other reasons", async () => {
  const poor = page({ wallets: [wallet()], answers: [refused("transaction_failed")] });
  await poor.pay();
  assert.deepEqual(poor.status(), [STATES.insufficientFunds, MESSAGES.insufficientFunds]);
  assert.equal(poor.els["x402-pay"].disabled, false);
  for (const reason of ["expired_reference", "expiring_reference"]) {
    const late = page({ wallets: [wallet()], answers: [refused(reason)] });
    await late.pay();
    assert.deepEqual(late.status(), [STATES.expired, "This offer has expired. Reload the page for a new one."]);
    assert.equal(late.els["x402-pay"].disabled, true);
  }
  const other = page({ wallets: [wallet()], answers: [refused("transaction_wrong_payment")] });
  await other.pay();
  assert.deepEqual(other.status(), [STATES.refused, "The payment was refused: transaction_wrong_payment."]);
  assert.equal(refusedMessage("x."), "The payment was refused: x.");
});

test("503: Retry resends the same header without signing again", async () => {
  const w = wallet();
  let signs = 0;
  const feature = w.features["solana:signTransaction"];
  const counted = {
    ...w,
    name: w.name,
    chains: w.chains,
    accounts: w.accounts,
    features: {
      ...w.features,
      "solana:signTransaction": { ...feature, signTransaction: (...a) => (signs++, feature.signTransaction(...a)) },
    },
  };
  const p = page({ wallets: [counted], answers: [busy, ok()] });
  await p.pay();
  assert.deepEqual(p.status(), [STATES.unavailable, MESSAGES.unavailable]);
  assert.equal(p.els["x402-pay"].textContent, "Retry");
  assert.equal(p.els["x402-pay"].disabled, false);
  p.els["x402-pay"].listeners[0]();
  await new Promise((r) => setTimeout(r, 50));
  assert.equal(p.status()[0], STATES.paid);
  assert.equal(p.sent.length, 2);
  assert.equal(p.sent[0], p.sent[1]);
  assert.equal(signs, 1);
});

test("a retried payment already accepted (its answer lost) invites no second payment", async () => {
  const p = page({ wallets: [wallet()], answers: [busy, refused("reference_already_used")] });
  await p.pay();
  assert.equal(p.status()[0], STATES.unavailable);
  await p.pay();
  assert.deepEqual(p.status(), [STATES.alreadyUsed, MESSAGES.alreadyUsed]);
  assert.equal(p.sent.length, 2);
  assert.equal(p.sent[0], p.sent[1], "the same payment, not a new one");
  assert.equal(p.els["x402-pay"].disabled, true);
});

/** `w` with its signTransaction and signMessage calls counted; without signMessage when `messages` is false. */
function counting(w, { messages = true } = {}) {
  const counts = { transactions: 0, messages: 0 };
  const features = { ...w.features };
  const tx = features["solana:signTransaction"];
  features["solana:signTransaction"] = { ...tx, signTransaction: (...a) => (counts.transactions++, tx.signTransaction(...a)) };
  const msg = features["solana:signMessage"];
  if (messages) features["solana:signMessage"] = { ...msg, signMessage: (...a) => (counts.messages++, msg.signMessage(...a)) };
  else delete features["solana:signMessage"];
  return { wallet: { name: w.name, chains: w.chains, accounts: w.accounts, features }, counts };
}

const failed = (status) => () => new Response("upstream failed", { status });

test("a seller's 5xx: the same payment is presented again with its payer's proof, never signed twice", async () => {
  for (const status of [500, 502, 504]) {
    const { wallet: w, counts } = counting(wallet());
    const p = page({ wallets: [w], answers: [failed(status), ok()] });
    await p.pay();
    assert.deepEqual(p.status(), [STATES.failed, MESSAGES.failed], String(status));
    assert.equal(p.els["x402-pay"].textContent, "Retry");
    assert.equal(p.els["x402-pay"].disabled, false);
    assert.equal(p.proofs[0], null, "a first presentation needs no proof");
    await p.pay();
    assert.equal(p.status()[0], STATES.paid);
    assert.equal(p.sent.length, 2);
    assert.equal(p.sent[1], p.sent[0], "the same payment, not a new one");
    assert.equal(counts.transactions, 1, "one payment signed");
    assert.equal(counts.messages, 1, "one proof signed");
    // The proof: the payer's signature over its reference and this request (GET /api/generate at 127.0.0.1:8402).
    const [reference, proof, ...rest] = p.proofs[1].split(":");
    assert.equal(reference, f.REFERENCE);
    assert.equal(rest.length, 0);
    const message = new TextEncoder().encode(`x402-receipt-proof\n${f.REFERENCE}\nGET\n/api/generate\n127.0.0.1:8402`);
    const buyer = getBase58Encoder().encode(f.BUYER);
    assert.ok(ed25519.verify(getBase58Encoder().encode(proof), message, buyer), "the payer's proof for this request");
  }
});

test("a seller's 5xx, then another: the proof is asked of the wallet once", async () => {
  const { wallet: w, counts } = counting(wallet());
  const p = page({ wallets: [w], answers: [failed(500), failed(502), ok()] });
  await p.pay();
  await p.pay();
  assert.equal(p.status()[0], STATES.failed);
  await p.pay();
  assert.equal(p.status()[0], STATES.paid);
  assert.equal(new Set(p.sent).size, 1);
  assert.equal(p.proofs[1], p.proofs[2]);
  assert.deepEqual(counts, { transactions: 1, messages: 1 });
});

test("a seller's 5xx, the proof declined: the payment is kept, nothing sent, nothing signed again", async () => {
  const env = loadTestWallet({ secretKey: f.BUYER_SECRET });
  const { wallet: w, counts } = counting(env.wallet);
  const p = page({ wallets: [w], answers: [failed(500), ok()] });
  await p.pay();
  env.config.reject = true;
  await p.pay();
  assert.deepEqual(p.status(), [STATES.proofDeclined, MESSAGES.proofDeclined]);
  assert.match(MESSAGES.proofDeclined, /Do not pay again/);
  assert.equal(p.sent.length, 1);
  assert.equal(p.els["x402-pay"].disabled, false);
  env.config.reject = false;
  await p.pay();
  assert.equal(p.status()[0], STATES.paid);
  assert.equal(p.sent[1], p.sent[0]);
  assert.equal(counts.transactions, 1);
});

test("a seller's 5xx with a wallet that cannot sign messages: presented again bare, and never a second payment", async () => {
  const { wallet: w, counts } = counting(wallet(), { messages: false });
  const p = page({ wallets: [w], answers: [failed(500), refused("invalid_proof")] });
  await p.pay();
  // Told before retrying: the seller may refuse it, and they must not pay again.
  assert.deepEqual(p.status(), [STATES.failed, MESSAGES.failedUnprovable]);
  assert.match(MESSAGES.failedUnprovable, /may refuse it\. Do not pay again\./);
  assert.equal(p.els["x402-pay"].disabled, false);
  await p.pay();
  assert.deepEqual(p.status(), [STATES.unproven, MESSAGES.unproven]);
  assert.match(MESSAGES.unproven, /do not pay again/);
  assert.equal(p.sent.length, 2);
  assert.equal(p.sent[1], p.sent[0], "the same payment, not a new one");
  assert.deepEqual(p.proofs, [null, null]);
  assert.equal(p.els["x402-pay"].disabled, true, "no invitation to pay again");
  await p.pay();
  assert.equal(p.sent.length, 2);
  assert.equal(counts.transactions, 1);
});

test("503, then Retry: the kept payment carries its payer's proof (an upstream 503 gives it back too)", async () => {
  const { wallet: w, counts } = counting(wallet());
  const p = page({ wallets: [w], answers: [busy, ok()] });
  await p.pay();
  assert.deepEqual(p.status(), [STATES.unavailable, MESSAGES.unavailable]);
  await p.pay();
  assert.equal(p.status()[0], STATES.paid);
  assert.equal(p.sent[1], p.sent[0]);
  assert.match(p.proofs[1], new RegExp(`^${f.REFERENCE}:`));
  assert.deepEqual(counts, { transactions: 1, messages: 1 });
});
