import { test } from "node:test";
import assert from "node:assert/strict";
import { createPayment, parseChallenge, decodeHeader } from "../dist/index.js";
import { loadTestWallet } from "./wallet-env.mjs";
import * as f from "./fixtures.mjs";

test("the test wallet registers through the Wallet Standard events", () => {
  const { wallet, registered } = loadTestWallet({ secretKey: f.BUYER_SECRET });
  assert.equal(registered.length, 1);
  assert.equal(wallet.name, "x402 Test Wallet");
  assert.deepEqual([...wallet.chains], ["solana:devnet", "solana:localnet", "solana:mainnet"]);
  for (const feature of ["standard:connect", "standard:events", "solana:signTransaction", "solana:signMessage"]) {
    assert.ok(wallet.features[feature], feature);
  }
  assert.equal(wallet.accounts.length, 0);
});

test("it also answers an app that becomes ready later", () => {
  const win = new EventTarget();
  win.__X402_TEST_WALLET__ = { secretKey: f.BUYER_SECRET };
  // No register listener: the wallet waits for app-ready.
  globalThis.window = win;
  return import("node:fs").then(async ({ readFileSync }) => {
    (await import("node:vm")).default.runInThisContext(readFileSync(new URL("../dist/test-wallet.js", import.meta.url), "utf8"));
    delete globalThis.window;
    const got = [];
    const event = new Event("wallet-standard:app-ready");
    Object.defineProperty(event, "detail", { value: { register: (w) => got.push(w) } });
    win.dispatchEvent(event);
    assert.equal(got.length, 1);
  });
});

test("connect, then sign a receipt payment as a Wallet Standard signer", async () => {
  const { wallet } = loadTestWallet({ secretKey: f.BUYER_SECRET });
  const { accounts } = await wallet.features["standard:connect"].connect();
  assert.equal(accounts[0].address, f.BUYER);
  assert.equal(wallet.accounts.length, 1);
  const challenge = parseChallenge(f.challengeV2());
  for (const offer of challenge.offers) {
    const payment = await createPayment(challenge, offer, { wallet, account: accounts[0] });
    const { tx } = f.decodeTx(decodeHeader(payment.headerValue).payload.transaction);
    assert.ok(f.verifyBuyer(tx), offer.scheme);
    assert.equal(tx.signatures[f.FEE_PAYER], null);
  }
});

test("reject: connect and signTransaction throw user rejections; createPayment says wallet_rejected", async () => {
  const env = loadTestWallet({ secretKey: f.BUYER_SECRET, reject: true });
  await assert.rejects(env.wallet.features["standard:connect"].connect(), (e) => e.code === 4001);
  env.config.reject = false;
  const { accounts } = await env.wallet.features["standard:connect"].connect();
  env.config.reject = true;
  const challenge = parseChallenge(f.challengeV2());
  await assert.rejects(createPayment(challenge, challenge.offers[0], { wallet: env.wallet, account: accounts[0] }), (e) => {
    assert.equal(e.code, "wallet_rejected");
    return true;
  });
});

test("a wallet's solana:signMessage signs the proof; one that signs other bytes is refused", async () => {
  const { ed25519 } = await import("@noble/curves/ed25519.js");
  const { getBase58Encoder } = await import("@solana/kit");
  const { signProof, proofMessage } = await import("../dist/index.js");
  const wallet = (tamper) => ({
    wallet: {
      features: {
        "solana:signMessage": {
          async signMessage({ message }) {
            const signed = tamper ? Uint8Array.from([...message, 0]) : message;
            return [{ signedMessage: signed, signature: ed25519.sign(signed, f.BUYER_SEED) }];
          },
        },
      },
    },
    account: { address: f.BUYER },
  });
  const target = { method: "get", path: "/api", host: "X:8080" };
  const proof = await signProof(wallet(false), f.REFERENCE, target);
  const expected = new TextEncoder().encode(`x402-receipt-proof\n${f.REFERENCE}\nGET\n/api\nx:8080`);
  assert.deepEqual(proofMessage(f.REFERENCE, target), expected);
  assert.ok(ed25519.verify(getBase58Encoder().encode(proof), expected, getBase58Encoder().encode(f.BUYER)));
  await assert.rejects(signProof(wallet(true), f.REFERENCE, target), (e) => e.code === "wallet_rejected");
  const none = { wallet: { features: {} }, account: { address: f.BUYER } };
  await assert.rejects(signProof(none, f.REFERENCE, target), (e) => e.code === "no_wallet");
});

test("the test wallet signs a payer's proof with solana:signMessage, and refuses when told to", async () => {
  const { ed25519 } = await import("@noble/curves/ed25519.js");
  const { getBase58Encoder } = await import("@solana/kit");
  const { signProof, proofMessage, canSignMessages } = await import("../dist/index.js");
  const env = loadTestWallet({ secretKey: f.BUYER_SECRET });
  const { accounts } = await env.wallet.features["standard:connect"].connect();
  assert.ok(accounts[0].features.includes("solana:signMessage"));
  const signer = { wallet: env.wallet, account: accounts[0] };
  assert.ok(canSignMessages(signer));
  const target = { method: "GET", path: "/api", host: "x:8080" };
  const proof = await signProof(signer, f.REFERENCE, target);
  const buyer = getBase58Encoder().encode(f.BUYER);
  assert.ok(ed25519.verify(getBase58Encoder().encode(proof), proofMessage(f.REFERENCE, target), buyer));
  env.config.reject = true;
  await assert.rejects(signProof(signer, f.REFERENCE, target), (e) => e.code === "wallet_rejected");
});
