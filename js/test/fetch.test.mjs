import { test } from "node:test";
import assert from "node:assert/strict";
import { fetchWithPayment, decodeHeader, encodeHeader, X402Error, spentUnder } from "../dist/index.js";
import { ed25519 } from "@noble/curves/ed25519.js";
import { getBase58Decoder, getBase58Encoder } from "@solana/kit";
import * as f from "./fixtures.mjs";

const SETTLEMENT = {
  success: true,
  transaction: "5sig",
  network: f.DEVNET,
  payer: f.BUYER,
  reference: f.REFERENCE,
  receipt: f.RECEIPT,
  scheme: "receipt",
};

/** A mock fetch answering from a list of functions, recording each request's headers. */
function mockFetch(...answers) {
  const calls = [];
  const fetch = async (url, init) => {
    const headers = new Headers(init?.headers);
    calls.push({ url: String(url), headers });
    const answer = answers[Math.min(calls.length - 1, answers.length - 1)];
    return answer(headers);
  };
  return { fetch, calls };
}

/**
 * A policy allowing devnet, where the fixtures' offers are: without rpcUrl an offer is
 * signed over the seller's blockhash, and paid only on a network named here.
 */
const devnet = (more = {}) => ({ networks: [f.DEVNET], ...more });

const paid = () =>
  new Response("the poem", { status: 200, headers: { "PAYMENT-RESPONSE": encodeHeader(SETTLEMENT) } });

/** A signer that counts payments signed (`count`) and proofs signed (`proofs`). */
async function countingSigner() {
  const inner = await f.buyerSigner();
  const counter = { count: 0, proofs: 0 };
  counter.signer = {
    address: inner.address,
    async signTransactions(txs) {
      counter.count++;
      return inner.signTransactions(txs);
    },
    async signMessages(messages) {
      counter.proofs++;
      return inner.signMessages(messages);
    },
  };
  return counter;
}

test("no 402: the response passes through, nothing paid", async () => {
  const { fetch } = mockFetch(() => new Response("free", { status: 200 }));
  const r = await fetchWithPayment("http://x/free", undefined, { fetch });
  assert.equal(await r.response.text(), "free");
  assert.equal(r.settlement, null);
  assert.equal(r.payment, null);
});

test("v2: pays the receipt offer and returns the decoded settlement", async () => {
  const { fetch, calls } = mockFetch(() => f.response402(), paid);
  const { signer } = await countingSigner();
  const r = await fetchWithPayment("http://x/api", { method: "POST", body: "{}" }, { fetch, signer, policy: devnet() });
  assert.equal(calls.length, 2);
  const sent = decodeHeader(calls[1].headers.get("PAYMENT-SIGNATURE"));
  assert.equal(sent.x402Version, 2);
  assert.deepEqual(sent.accepted, f.receiptOffer());
  assert.deepEqual(r.settlement, SETTLEMENT);
  assert.equal(await r.response.text(), "the poem");
});

test("schemes option prefers exact", async () => {
  const { fetch, calls } = mockFetch(() => f.response402(), paid);
  const { signer } = await countingSigner();
  // Without rpcUrl, exact is paid only on a network the policy names.
  const policy = { networks: [f.DEVNET] };
  await fetchWithPayment("http://x/api", undefined, { fetch, signer, policy, schemes: ["exact", "receipt"] });
  assert.equal(decodeHeader(calls[1].headers.get("PAYMENT-SIGNATURE")).accepted.scheme, "exact");
});

test("v1: reads the JSON body and pays with X-PAYMENT", async () => {
  const o = f.receiptOffer();
  const v1 = {
    x402Version: 1,
    error: "X-PAYMENT header is required",
    accepts: [
      {
        scheme: "receipt",
        network: "solana-devnet",
        maxAmountRequired: o.amount,
        resource: "http://x/api",
        description: "d",
        mimeType: "text/plain",
        payTo: o.payTo,
        maxTimeoutSeconds: 60,
        asset: o.asset,
        extra: o.extra,
      },
    ],
  };
  const settle = () =>
    new Response("ok", { status: 200, headers: { "X-PAYMENT-RESPONSE": encodeHeader(SETTLEMENT) } });
  const { fetch, calls } = mockFetch(() => Response.json(v1, { status: 402 }), settle);
  const { signer } = await countingSigner();
  const r = await fetchWithPayment("http://x/api", undefined, { fetch, signer, policy: devnet() });
  const sent = decodeHeader(calls[1].headers.get("X-PAYMENT"));
  assert.deepEqual(Object.keys(sent).sort(), ["network", "payload", "scheme", "x402Version"]);
  assert.equal(sent.x402Version, 1);
  assert.equal(sent.network, "solana-devnet");
  assert.ok(f.verifyBuyer(f.decodeTx(sent.payload.transaction).tx));
  assert.deepEqual(r.settlement, SETTLEMENT);
});

test("503 after paying is retried with the same header, honouring Retry-After, never re-signed", async () => {
  const busy = () => new Response("busy", { status: 503, headers: { "Retry-After": "2" } });
  const { fetch, calls } = mockFetch(() => f.response402(), busy, busy, paid);
  const counter = await countingSigner();
  const slept = [];
  const r = await fetchWithPayment("http://x/api", undefined, {
    fetch,
    signer: counter.signer,
    policy: devnet(),
    sleep: async (ms) => void slept.push(ms),
  });
  assert.equal(r.response.status, 200);
  assert.equal(counter.count, 1);
  assert.deepEqual(slept, [2000, 2000]);
  const headers = calls.slice(1).map((c) => c.headers.get("PAYMENT-SIGNATURE"));
  assert.equal(new Set(headers).size, 1);
});

test("503 that persists: 'unavailable' keeps the payment; resending it does not sign again", async () => {
  const busy = () => new Response("busy", { status: 503 });
  const { fetch, calls } = mockFetch(() => f.response402(), busy);
  const counter = await countingSigner();
  const error = await fetchWithPayment("http://x/api", undefined, {
    fetch,
    signer: counter.signer,
    policy: devnet(),
    retries: 2,
    sleep: async () => {},
  }).catch((e) => e);
  assert.ok(error instanceof X402Error);
  assert.equal(error.code, "unavailable");
  assert.equal(calls.length, 4);
  const header = error.payment.headerValue;

  const again = mockFetch(paid);
  const r = await fetchWithPayment("http://x/api", undefined, {
    fetch: again.fetch,
    signer: counter.signer,
    payment: error.payment,
  });
  assert.equal(r.response.status, 200);
  assert.equal(again.calls.length, 1);
  assert.equal(again.calls[0].headers.get("PAYMENT-SIGNATURE"), header);
  assert.equal(counter.count, 1);
});

/** The proof message, written out here as protocol/src/proof.rs defines it. */
const proofBytes = (reference, method, path, host) =>
  new TextEncoder().encode(`x402-receipt-proof\n${reference}\n${method}\n${path}\n${host}`);

/** Asserts `header` is `<reference>:<proof>`, the proof BUYER's signature for this request. */
function assertProof(header, reference, method, path, host) {
  assert.ok(header, "X-Payment-Proof is sent");
  const [named, proof, ...rest] = header.split(":");
  assert.equal(named, reference);
  assert.equal(rest.length, 0);
  const buyer = getBase58Encoder().encode(f.BUYER);
  assert.ok(ed25519.verify(getBase58Encoder().encode(proof), proofBytes(reference, method, path, host), buyer), "valid proof");
  // Bound to the request: not valid for another path.
  assert.ok(!ed25519.verify(getBase58Encoder().encode(proof), proofBytes(reference, method, "/other", host), buyer));
}

test("5xx after paying: the same payment is presented again with its payer's proof, signed once, charged once", async () => {
  const failed = () => new Response("upstream failed", { status: 500 });
  const { fetch, calls } = mockFetch(() => f.response402(), failed, paid);
  const counter = await countingSigner();
  const policy = devnet({ budget: 50_000n });
  const slept = [];
  const r = await fetchWithPayment("http://Shop.Example:8402/api/poem?n=1", { method: "post", body: "{}" }, {
    fetch,
    signer: counter.signer,
    policy,
    sleep: async (ms) => void slept.push(ms),
  });
  assert.equal(r.response.status, 200);
  assert.equal(calls.length, 3);
  const [, first, second] = calls;
  assert.equal(second.headers.get("PAYMENT-SIGNATURE"), first.headers.get("PAYMENT-SIGNATURE"));
  assert.equal(first.headers.get("X-Payment-Proof"), null, "a first presentation needs no proof");
  assertProof(second.headers.get("X-Payment-Proof"), f.REFERENCE, "POST", "/api/poem", "shop.example:8402");
  assert.deepEqual(slept, [1000]);
  assert.equal(counter.count, 1, "one payment signed");
  assert.equal(spentUnder(policy), 10_000n, "charged once");
});

test("5xx that persists: 'unavailable' keeps the payment; resuming presents it with a proof, never re-signed", async () => {
  const failed = () => new Response("bad gateway", { status: 502 });
  const { fetch, calls } = mockFetch(() => f.response402(), failed);
  const counter = await countingSigner();
  const policy = devnet({ budget: 50_000n });
  const error = await fetchWithPayment("http://x/api", undefined, {
    fetch,
    signer: counter.signer,
    policy,
    retries: 1,
    sleep: async () => {},
  }).catch((e) => e);
  assert.ok(error instanceof X402Error);
  assert.equal(error.code, "unavailable");
  assert.match(error.message, /502/);
  assert.equal(error.response.status, 502);
  assert.equal(calls.length, 3);
  assert.equal(error.payment.reference, f.REFERENCE);

  const again = mockFetch(paid);
  const r = await fetchWithPayment("http://x/api", undefined, {
    fetch: again.fetch,
    signer: counter.signer,
    policy,
    payment: error.payment,
  });
  assert.equal(r.response.status, 200);
  assert.equal(again.calls.length, 1);
  assert.equal(again.calls[0].headers.get("PAYMENT-SIGNATURE"), calls[1].headers.get("PAYMENT-SIGNATURE"));
  assertProof(again.calls[0].headers.get("X-Payment-Proof"), f.REFERENCE, "GET", "/api", "x");
  assert.equal(counter.count, 1);
  assert.equal(spentUnder(policy), 10_000n, "the budget is not charged again");

  // Only its payer proves it: without that signer, it is presented bare (the seller judges).
  const bare = mockFetch(paid);
  await fetchWithPayment("http://x/api", undefined, { fetch: bare.fetch, payment: error.payment });
  assert.equal(bare.calls[0].headers.get("PAYMENT-SIGNATURE"), calls[1].headers.get("PAYMENT-SIGNATURE"));
  assert.equal(bare.calls[0].headers.get("X-Payment-Proof"), null);
});

test("a payer that declines to sign the proof: 'wallet_rejected', the payment kept", async () => {
  const { fetch } = mockFetch(() => f.response402(), () => new Response("", { status: 500 }));
  const counter = await countingSigner();
  counter.signer.signMessages = async () => {
    throw new Error("User rejected the request");
  };
  const options = { fetch, signer: counter.signer, policy: devnet(), sleep: async () => {} };
  const error = await fetchWithPayment("http://x/api", undefined, options).catch(
    (e) => e,
  );
  assert.equal(error.code, "wallet_rejected");
  assert.equal(error.payment.reference, f.REFERENCE);
  assert.equal(counter.count, 1);
});

test("5xx after an exact payment: the proof names the reference its Memo holds", async () => {
  // A reference as the verifier issues them (bytes 0..4 and 12..16 zero), its Memo the compact form.
  const reference = new Uint8Array(32);
  reference.set([1, 2, 3, 4, 5, 6, 7, 8], 4);
  reference.set(Array.from({ length: 16 }, (_, i) => 100 + i), 16);
  const memo = Buffer.concat([reference.subarray(4, 12), reference.subarray(16)]).toString("base64url");
  const offer = f.exactOffer();
  offer.extra = { ...offer.extra, memo };
  const challenge = () => f.response402(f.challengeV2([offer]));
  const { fetch, calls } = mockFetch(challenge, () => new Response("", { status: 503 }), paid);
  const counter = await countingSigner();
  await fetchWithPayment("http://x:8080/api", undefined, {
    fetch,
    signer: counter.signer,
    policy: { networks: [f.DEVNET] },
    sleep: async () => {},
  });
  assert.equal(calls[2].headers.get("PAYMENT-SIGNATURE"), calls[1].headers.get("PAYMENT-SIGNATURE"));
  assertProof(calls[2].headers.get("X-Payment-Proof"), getBase58Decoder().decode(reference), "GET", "/api", "x:8080");
  assert.equal(counter.count, 1);
});

test("no answer after paying: 'unavailable' keeps the payment", async () => {
  let n = 0;
  const fetch = async () => {
    if (++n === 1) return f.response402();
    throw new TypeError("fetch failed");
  };
  const counter = await countingSigner();
  const error = await fetchWithPayment("http://x/api", undefined, { fetch, signer: counter.signer, policy: devnet() }).catch(
    (e) => e,
  );
  assert.equal(error.code, "unavailable");
  assert.equal(error.payment.amount, 10_000n);
  assert.equal(counter.count, 1);
});

test("402 after paying throws 'refused' with the server's reason and keeps the budget spent", async () => {
  const policy = devnet({ budget: 50_000n });
  const refusal = () => f.response402(f.challengeV2(undefined, "transaction_failed"));
  const { fetch } = mockFetch(() => f.response402(), refusal);
  const { signer } = await countingSigner();
  const error = await fetchWithPayment("http://x/api", undefined, { fetch, signer, policy }).catch((e) => e);
  assert.ok(error instanceof X402Error);
  assert.equal(error.code, "refused");
  assert.equal(error.reason, "transaction_failed");
  // The seller may have submitted it anyway: a refund would let it take the budget again.
  assert.equal(spentUnder(policy), 10_000n);
});

test("policy: checked before signing, per offer", async () => {
  const counter = await countingSigner();
  const cases = [
    [{ maxPerRequest: "9999" }, /maxPerRequest/],
    [{ payees: [f.key(4)] }, /payee/],
    [{ mints: [f.key(4)] }, /mint/],
    [{ networks: ["solana"] }, /network/],
  ];
  for (const [policy, pattern] of cases) {
    const { fetch, calls } = mockFetch(() => f.response402());
    const error = await fetchWithPayment("http://x/api", undefined, { fetch, signer: counter.signer, policy }).catch(
      (e) => e,
    );
    assert.equal(error.code, "policy", JSON.stringify(policy));
    assert.equal(error.offers.length, 2);
    assert.match(error.offers[0].reason, pattern);
    assert.equal(calls.length, 1);
  }
  assert.equal(counter.count, 0);

  // A program not in `programs` rules out the receipt offer only: exact is paid.
  const { fetch, calls } = mockFetch(() => f.response402(), paid);
  const policy = { programs: [f.key(6)], networks: [f.DEVNET] };
  await fetchWithPayment("http://x/api", undefined, { fetch, signer: counter.signer, policy });
  assert.equal(decodeHeader(calls[1].headers.get("PAYMENT-SIGNATURE")).accepted.scheme, "exact");
  // networks accept v1 names for CAIP-2 offers.
  const ok = mockFetch(() => f.response402(), paid);
  await fetchWithPayment("http://x/api", undefined, { fetch: ok.fetch, signer: counter.signer, policy: { networks: ["solana-devnet"] } });
  assert.equal(ok.calls.length, 2);
});

test("policy: the budget is spent across calls", async () => {
  const policy = devnet({ budget: "15000" });
  const { signer } = await countingSigner();
  const first = mockFetch(() => f.response402(), paid);
  await fetchWithPayment("http://x/api", undefined, { fetch: first.fetch, signer, policy });
  assert.equal(spentUnder(policy), 10000n);
  const second = mockFetch(() => f.response402(), paid);
  const error = await fetchWithPayment("http://x/api", undefined, { fetch: second.fetch, signer, policy }).catch((e) => e);
  assert.equal(error.code, "policy");
  assert.match(error.offers[0].reason, /budget/);
});

test("no payable offer lists each offer and why; no signer is 'no_wallet'", async () => {
  const evm = f.receiptOffer({ network: "eip155:8453" });
  const unsponsored = f.receiptOffer();
  unsponsored.extra = { ...unsponsored.extra, feePayer: undefined };
  const other = f.exactOffer({ scheme: "upto" });
  const { fetch } = mockFetch(() => f.response402(f.challengeV2([evm, unsponsored, other])));
  const error = await fetchWithPayment("http://x/api", undefined, { fetch, signer: (await countingSigner()).signer }).catch(
    (e) => e,
  );
  assert.equal(error.code, "no_payable_offer");
  assert.equal(error.offers.length, 3);
  assert.match(error.message, /not Solana/);
  assert.match(error.message, /not sponsored/);
  assert.match(error.message, /upto/);

  const none = mockFetch(() => f.response402());
  const noWallet = await fetchWithPayment("http://x/api", undefined, { fetch: none.fetch, policy: devnet() }).catch((e) => e);
  assert.equal(noWallet.code, "no_wallet");
});

test("a signer that throws is 'wallet_rejected'", async () => {
  const { fetch } = mockFetch(() => f.response402());
  const signer = { address: f.BUYER, signTransactions: async () => { throw new Error("User rejected the request"); } };
  const error = await fetchWithPayment("http://x/api", undefined, { fetch, signer, policy: devnet() }).catch((e) => e);
  assert.equal(error.code, "wallet_rejected");
});

test("policy: two calls at once sharing a budget for one payment: exactly one pays", async () => {
  const policy = devnet({ budget: 15_000n });
  const counter = await countingSigner();
  const slow = counter.signer.signTransactions;
  // Signing takes a while, as a person approving does: the other call reaches the budget meanwhile.
  counter.signer.signTransactions = async (txs) => {
    await new Promise((resolve) => setTimeout(resolve, 20));
    return slow(txs);
  };
  // Both challenges are answered together, so both calls check the budget in the same turn.
  let release;
  const together = new Promise((resolve) => (release = resolve));
  let challenged = 0;
  const paidRequests = [];
  const fetch = async (_url, init) => {
    const headers = new Headers(init?.headers);
    if (headers.has("PAYMENT-SIGNATURE")) {
      paidRequests.push(headers.get("PAYMENT-SIGNATURE"));
      return paid();
    }
    if (++challenged === 2) release();
    await together;
    return f.response402();
  };
  const call = () => fetchWithPayment("http://x/api", undefined, { fetch, signer: counter.signer, policy }).catch((e) => e);
  const results = await Promise.all([call(), call()]);
  const served = results.filter((r) => r.response?.status === 200);
  const refused = results.filter((r) => r instanceof X402Error);
  assert.equal(served.length, 1, "exactly one pays");
  assert.equal(refused.length, 1);
  assert.equal(refused[0].code, "policy");
  assert.match(refused[0].offers[0].reason, /budget left \(5000\)/);
  assert.equal(counter.count, 1, "one payment signed");
  assert.equal(paidRequests.length, 1, "one payment sent");
  assert.equal(spentUnder(policy), 10_000n);
});

test("policy: a reservation whose payment was not signed is given back", async () => {
  const policy = devnet({ budget: 15_000n });
  const { signer } = await countingSigner();
  const declining = { address: signer.address, signTransactions: async () => { throw new Error("User rejected the request"); } };
  const declined = mockFetch(() => f.response402());
  const error = await fetchWithPayment("http://x/api", undefined, { fetch: declined.fetch, signer: declining, policy }).catch((e) => e);
  assert.equal(error.code, "wallet_rejected");
  assert.equal(spentUnder(policy), 0n, "nothing signed, nothing spent");
  const ok = mockFetch(() => f.response402(), paid);
  const r = await fetchWithPayment("http://x/api", undefined, { fetch: ok.fetch, signer, policy });
  assert.equal(r.response.status, 200);
  assert.equal(spentUnder(policy), 10_000n);
});
