// Boots the generated verifier/assets/paywall.js (the IIFE itself) against a fake page.
import { test } from "node:test";
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import vm from "node:vm";
import { decodeHeader, encodeHeader } from "../dist/index.js";
import * as f from "./fixtures.mjs";

const BUNDLE = new URL("../../verifier/assets/paywall.js", import.meta.url);
const WALLET = new URL("../dist/test-wallet.js", import.meta.url);

class FakeElement {
  constructor(text = "") {
    Object.assign(this, { textContent: text, hidden: false, disabled: false, attributes: {}, listeners: [] });
  }
  setAttribute(n, v) {
    this.attributes[n] = String(v);
  }
  addEventListener(_type, l) {
    this.listeners.push(l);
  }
}

test("the paywall bundle boots, finds the test wallet, pays and shows the answer", async () => {
  const els = {
    "x402-challenge": new FakeElement(JSON.stringify(f.challengeV2())),
    "x402-pay": new FakeElement("Pay"),
    "x402-status": new FakeElement(),
    "x402-content": new FakeElement(),
    "x402-explorer": new FakeElement(),
  };
  const sent = [];
  const win = new EventTarget();
  win.isSecureContext = true;
  win.__X402_TEST_WALLET__ = { secretKey: f.BUYER_SECRET };
  win.fetch = async (url, init) => {
    if (!init.headers["PAYMENT-SIGNATURE"]) return f.response402(f.challengeV2());
    sent.push({ url, header: init.headers["PAYMENT-SIGNATURE"] });
    return new Response("the poem", {
      headers: { "PAYMENT-RESPONSE": encodeHeader({ success: true, transaction: "5Sig", network: f.DEVNET }) },
    });
  };
  const saved = {
    window: globalThis.window,
    document: globalThis.document,
    location: globalThis.location,
  };
  Object.assign(globalThis, {
    isSecureContext: true,
    window: win,
    document: { readyState: "complete", getElementById: (id) => els[id] ?? null },
    location: { href: "http://127.0.0.1:8402/paid" },
  });
  try {
    // The wallet extension's script runs first, as addInitScript does.
    vm.runInThisContext(readFileSync(WALLET, "utf8"));
    vm.runInThisContext(readFileSync(BUNDLE, "utf8"));
  } finally {
    for (const [k, v] of Object.entries(saved)) if (v === undefined) delete globalThis[k]; else globalThis[k] = v;
  }
  assert.equal(win.x402Paywall.MESSAGES.paid, "Paid.");
  assert.equal(els["x402-pay"].listeners.length, 1);
  els["x402-pay"].listeners[0]();
  for (let i = 0; i < 100 && els["x402-status"].attributes["data-state"] !== "paid"; i++) {
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.equal(els["x402-status"].attributes["data-state"], "paid", els["x402-status"].textContent);
  assert.equal(els["x402-content"].textContent, "the poem");
  delete globalThis.isSecureContext;
  assert.equal(sent[0].url, "http://127.0.0.1:8402/paid");
  assert.ok(f.verifyBuyer(f.decodeTx(decodeHeader(sent[0].header).payload.transaction).tx));
});
