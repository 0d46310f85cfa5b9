// The spending policy's guards against a hostile 402: the default cap per request, and
// the network label tied to the money.
import { test } from "node:test";
import assert from "node:assert/strict";
import { createPayment, fetchWithPayment, parseChallenge, parseUnits, TOKEN_PROGRAM } from "../dist/index.js";
import * as f from "./fixtures.mjs";

const USDC_MAINNET = "EPjFWdd5AufqSSqeM2qN1xzybapC8G4wEGGkZwyTDt1v";
const MAINNET = "solana:5eykt4UsFv8P8NJdTREpY1vzqKqZKvdp";
const UNKNOWN_MINT = f.key(7);

/** Pays one challenge of `offers` through a mock server; what was signed and sent. */
async function attempt(offers, options = {}) {
  const inner = await f.buyerSigner();
  let signed = 0;
  const signer = {
    address: inner.address,
    async signTransactions(txs) {
      signed++;
      return inner.signTransactions(txs);
    },
  };
  const sent = [];
  const fetch = async (_url, init) => {
    const headers = new Headers(init?.headers);
    if (headers.has("PAYMENT-SIGNATURE")) sent.push(headers.get("PAYMENT-SIGNATURE"));
    return sent.length ? new Response("served") : f.response402(f.challengeV2(offers));
  };
  const result = await fetchWithPayment("http://x/api", undefined, { fetch, signer, ...options }).catch((e) => e);
  return { result, signed, sent };
}

/** Asserts nothing was signed nor sent, and the refusal's reason matches `pattern`. */
function assertRefused({ result, signed, sent }, code, pattern) {
  assert.equal(result.code, code, String(result.message ?? result));
  assert.match(result.message, pattern);
  assert.equal(signed, 0, "nothing signed");
  assert.equal(sent.length, 0, "nothing sent");
}

function assertPaid({ result, signed, sent }) {
  assert.equal(result.response?.status, 200, String(result.message ?? result));
  assert.equal(signed, 1);
  assert.equal(sent.length, 1);
}

test("parseUnits reads decimal amounts exactly, refusing what is not one", () => {
  assert.equal(parseUnits("1", 6), 1_000_000n);
  assert.equal(parseUnits("0.05", 6), 50_000n);
  assert.equal(parseUnits("1.500000", 6), 1_500_000n);
  assert.equal(parseUnits("0.3", 6), 300_000n);
  for (const bad of ["", ".5", "5.", "-1", "1e6", " 1", "1,5", "0.0000001"]) assert.equal(parseUnits(bad, 6), null, bad);
});

test("default cap: without a limit, a hostile 402 for 1,000,000 USDC is refused before signing", async () => {
  const huge = "1000000000000"; // 1,000,000 USDC (6 decimals)
  const offers = [f.receiptOffer({ amount: huge }), f.exactOffer({ amount: huge })];
  const networks = [f.DEVNET];
  assertRefused(await attempt(offers, { policy: { networks } }), "policy", /default cap.*1000000 base units/);
  // A budget is no per-request limit: the default cap still applies.
  assertRefused(await attempt(offers, { policy: { networks, budget: huge } }), "policy", /default cap/);
  // 1.00 USDC is within it; one base unit more is not.
  assertPaid(await attempt([f.receiptOffer({ amount: "1000000" })], { policy: { networks } }));
  assertRefused(await attempt([f.receiptOffer({ amount: "1000001" })], { policy: { networks } }), "policy", /default cap/);
});

test("default cap: lifted only explicitly, by maxPerRequest (decimal or base units) or noLimit", async () => {
  const huge = [f.receiptOffer({ amount: "1000000000000" })];
  const networks = [f.DEVNET];
  assertPaid(await attempt(huge, { policy: { networks, noLimit: true } }));
  assertPaid(await attempt(huge, { policy: { networks, maxPerRequest: { decimal: "1000000" } } }));
  assertPaid(await attempt(huge, { policy: { networks, maxPerRequest: 1_000_000_000_000n } }));
  // An explicit limit below 1 USDC is the limit, in either form.
  const twoCents = [f.receiptOffer({ amount: "20000" })];
  assertRefused(await attempt(twoCents, { policy: { networks, maxPerRequest: { decimal: "0.01" } } }), "policy", /maxPerRequest/);
  assertRefused(await attempt(twoCents, { policy: { networks, maxPerRequest: "10000" } }), "policy", /maxPerRequest/);
  assertRefused(await attempt(twoCents, { policy: { networks, maxPerRequest: "0.05" } }), "policy", /not a whole number/);
});

test("default cap: a known stablecoin only; any other mint is refused, even one whose decimals the client knows", async () => {
  // The seller picks the mint: 1.00 of a token the client has decimals for may be 1 wBTC.
  // It also claims 2 decimals (50 base units = 0.50): its word is never the client's.
  const offer = f.receiptOffer({ asset: UNKNOWN_MINT, amount: "50" });
  offer.extra = { ...offer.extra, decimals: 2 };
  const networks = [f.DEVNET];
  const notStable = new RegExp(`mint ${UNKNOWN_MINT} is not a stablecoin this client knows.*set maxPerRequest.*or noLimit`);
  assertRefused(await attempt([offer], { policy: { networks } }), "policy", notStable);
  // Decimals the caller gives as trusted mint facts are still no dollar...
  const mints = { [UNKNOWN_MINT]: { decimals: 2, tokenProgram: TOKEN_PROGRAM } };
  assertRefused(await attempt([offer], { mints, policy: { networks } }), "policy", notStable);
  // ...nor is a caller's word that it is a stablecoin: only the built-in table says so.
  const claimed = { [UNKNOWN_MINT]: { decimals: 2, tokenProgram: TOKEN_PROGRAM, stablecoin: true } };
  assertRefused(await attempt([offer], { mints: claimed, policy: { networks } }), "policy", notStable);
  // The caller's own limit pays it: base units, a decimal read with trusted decimals, or none.
  assertPaid(await attempt([offer], { policy: { networks, maxPerRequest: "100" } }));
  assertPaid(await attempt([offer], { policy: { networks, noLimit: true } }));
  const decimal = { networks, maxPerRequest: { decimal: "1" } };
  assertPaid(await attempt([offer], { mints, policy: decimal }));
  const above = f.receiptOffer({ asset: UNKNOWN_MINT, amount: "101" });
  assertRefused(await attempt([above], { mints, policy: decimal }), "policy", /maxPerRequest: 100 base units/);
  // A decimal limit without trusted decimals: never the seller's.
  assertRefused(await attempt([offer], { policy: decimal }), "policy", /decimals are unknown/);
});

test("network: an offer labelled devnet but priced in mainnet USDC is refused before signing", async () => {
  const mainnetBlockhash = f.key(21);
  const receipt = f.receiptOffer({ asset: USDC_MAINNET });
  receipt.extra = { ...receipt.extra, recentBlockhash: mainnetBlockhash };
  const exact = f.exactOffer({ asset: USDC_MAINNET });
  exact.extra = { ...exact.extra, recentBlockhash: mainnetBlockhash };
  // The user allowed devnet: the label says devnet, the money is mainnet's.
  const outcome = await attempt([receipt, exact], { policy: { networks: [f.DEVNET] } });
  assertRefused(outcome, "no_payable_offer", new RegExp(`mint ${USDC_MAINNET} is on ${MAINNET}, but the offer names ${f.DEVNET}`));
  assert.equal(outcome.result.offers.length, 2);
  // A caller's facts for the mint that do not name its network keep the known one.
  const mints = { [USDC_MAINNET]: { decimals: 6, tokenProgram: TOKEN_PROGRAM } };
  assertRefused(await attempt([receipt], { mints, policy: { networks: [f.DEVNET] } }), "no_payable_offer", /is on solana:5eykt/);
  // The same offers labelled mainnet are paid, mainnet allowed.
  assertPaid(await attempt([{ ...receipt, network: MAINNET }], { policy: { networks: ["solana"] } }));
  assertPaid(await attempt([{ ...exact, network: "solana" }], { policy: { networks: [MAINNET] } }));
});

test("network: createPayment refuses a mislabelled offer too (the paywall's path)", async () => {
  const challenge = parseChallenge(f.challengeV2([f.exactOffer({ asset: USDC_MAINNET })]));
  await assert.rejects(createPayment(challenge, challenge.offers[0], await f.buyerSigner()), (e) => {
    assert.equal(e.code, "no_payable_offer");
    assert.match(e.message, /is on solana:5eykt/);
    return true;
  });
});

test("network: without rpcUrl an exact offer is paid only on a network the policy names", async () => {
  const exact = [f.exactOffer()];
  assertRefused(await attempt(exact), "policy", /cannot be checked without rpcUrl.*networks/);
  assertRefused(await attempt(exact, { policy: { maxPerRequest: "10000" } }), "policy", /without rpcUrl/);
  assertRefused(await attempt(exact, { policy: { networks: [MAINNET] } }), "policy", /not allowed/);
  assertPaid(await attempt(exact, { policy: { networks: [f.DEVNET] } }));
  assertPaid(await attempt(exact, { policy: { networks: ["solana-devnet"] } }));
});

test("network: without rpcUrl a sponsored receipt offer is paid only on a network the policy names", async () => {
  // Signed over the seller's blockhash, as exact without rpcUrl: it lands wherever that
  // blockhash is, whatever the label (and this mint says nothing of its cluster).
  const receipt = [f.receiptOffer({ asset: UNKNOWN_MINT })];
  const limit = { maxPerRequest: "10000" };
  assertRefused(await attempt(receipt, { policy: limit }), "policy", /cannot be checked without rpcUrl: list it in networks to pay receipt offers/);
  assertRefused(await attempt(receipt, { policy: { ...limit, networks: [MAINNET] } }), "policy", /not allowed/);
  assertPaid(await attempt(receipt, { policy: { ...limit, networks: ["solana-devnet"] } }));
  // USDC under the default cap: the same rule.
  assertRefused(await attempt([f.receiptOffer()]), "policy", /without rpcUrl/);
  assertPaid(await attempt([f.receiptOffer()], { policy: { networks: [f.DEVNET] } }));
});
