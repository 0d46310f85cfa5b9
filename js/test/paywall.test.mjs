import { test } from "node:test";
import assert from "node:assert/strict";
import { startPaywall, MESSAGES, STATES, refusedMessage } from "../dist/paywall.js";
import { decodeHeader, encodeHeader } from "../dist/index.js";
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
    return answers[Math.min(sent.length - 1, answers.length - 1)]();
  };
  const { pay } = startPaywall({
    document: { getElementById: (id) => els[id] ?? null },
    fetch,
    wallets: { get: () => wallets },
    url: URL_,
  });
  const status = () => [els["x402-status"].attributes["data-state"], els["x402-status"].textContent];
  return { els, sent, pay, status, asked: () => asked };
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
