import { test } from "node:test";
import assert from "node:assert/strict";
import { encodeHeader, decodeHeader, parseChallenge, readChallenge, readSettlement, paymentHeader } from "../dist/index.js";
import * as f from "./fixtures.mjs";

test("header encoding is standard padded base64 of compact JSON, as the Rust side", () => {
  assert.equal(encodeHeader({ a: 1 }), "eyJhIjoxfQ==");
  const message = { k: "\u00fb\u00ff\u00bf>?", n: "ünïcödé + / =" };
  const standard = encodeHeader(message);
  assert.deepEqual(decodeHeader(standard), message);
  const urlSafe = standard.replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  assert.deepEqual(decodeHeader(`  ${urlSafe} `), message);
  assert.throws(() => decodeHeader("!".repeat(16 * 1024 + 1)), /too large/);
  assert.throws(() => decodeHeader(Buffer.from("not json").toString("base64")));
});

test("v2 challenge from the header; v1 from the body; garbage is null", async () => {
  const v2 = await readChallenge(f.response402());
  assert.equal(v2.version, 2);
  assert.equal(v2.offers.length, 2);
  assert.equal(v2.offers[0].amount, 10000n);
  assert.deepEqual(v2.offers[0].resource, f.RESOURCE);

  const v1 = parseChallenge({
    x402Version: 1,
    error: "e",
    accepts: [{ scheme: "exact", network: "solana-devnet", maxAmountRequired: "5", resource: "http://r", payTo: f.PAY_TO, asset: f.USDC_DEVNET, maxTimeoutSeconds: 1 }],
  });
  assert.equal(v1.offers[0].amount, 5n);
  assert.equal(v1.offers[0].resource.url, "http://r");

  const bad = parseChallenge({ x402Version: 2, resource: f.RESOURCE, accepts: [{ scheme: "exact", amount: "-1" }] });
  assert.equal(bad.offers.length, 0);
  assert.equal(bad.malformed.length, 1);
  assert.equal(await readChallenge(new Response("nope", { status: 402 })), null);
  assert.equal(parseChallenge({ x402Version: 3, accepts: [] }), null);
});

test("payment header: v2 echoes the offer exactly, unknown fields included", () => {
  const raw = { ...f.receiptOffer(), futureField: { x: 1 } };
  const challenge = parseChallenge(f.challengeV2([raw]));
  const { name, value } = paymentHeader(challenge, challenge.offers[0], { transaction: "AA==" });
  assert.equal(name, "PAYMENT-SIGNATURE");
  assert.equal(value, encodeHeader({ x402Version: 2, resource: f.RESOURCE, accepted: raw, payload: { transaction: "AA==" } }));
});

test("settlement: PAYMENT-RESPONSE or X-PAYMENT-RESPONSE", () => {
  const s = { success: true, transaction: "t", network: "n", reference: "r" };
  assert.deepEqual(readSettlement(new Response("", { headers: { "PAYMENT-RESPONSE": encodeHeader(s) } })), s);
  assert.deepEqual(readSettlement(new Response("", { headers: { "X-PAYMENT-RESPONSE": encodeHeader(s) } })), s);
  assert.equal(readSettlement(new Response("")), null);
});
