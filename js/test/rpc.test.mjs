import { test } from "node:test";
import assert from "node:assert/strict";
import { createPayment, fetchWithPayment, decodeHeader, parseChallenge, rpcSources, TOKEN_2022_PROGRAM } from "../dist/index.js";
import * as f from "./fixtures.mjs";

const MINT = f.key(7);
const BLOCKHASH = f.key(12);
const DEVNET_GENESIS = "EtWTRABZaYq6iMfeYKouRu166VU2xqa1wcaWoxPkrZBG";
const MAINNET_GENESIS = "5eykt4UsFv8P8NJdTREpY1vzqKqZKvdpKuc147dw2N9d";

/** A mint's account data: 9 decimals, then Token-2022 extensions as [type, length] (zero values). */
function mintData(extensions = []) {
  const base = new Uint8Array(82);
  base[44] = 9;
  if (!extensions.length) return base;
  const entries = extensions.map(([type, length]) => {
    const entry = Buffer.alloc(4 + length);
    entry.writeUInt16LE(type, 0);
    entry.writeUInt16LE(length, 2);
    return entry;
  });
  // Zeros up to a token account's size (165), then the account type: 1, a mint.
  return Buffer.concat([base, Buffer.alloc(165 - 82), Buffer.from([1]), ...entries]);
}

/** Token-2022 extension types and the lengths of their values. */
const TRANSFER_FEE_CONFIG = [1, 108];
const TRANSFER_HOOK = [14, 64];
const MINT_CLOSE_AUTHORITY = [3, 32];

/** Answers kit's JSON-RPC calls through a patched globalThis.fetch; the mint's account holds `data`. */
async function withRpc(run, genesis = DEVNET_GENESIS, data = mintData()) {
  const original = globalThis.fetch;
  const methods = [];
  globalThis.fetch = async (url, init) => {
    assert.equal(String(url), "http://127.0.0.1:8899");
    const { id, method } = JSON.parse(init.body);
    methods.push(method);
    const result =
      method === "getGenesisHash"
        ? genesis
        : method === "getLatestBlockhash"
        ? { context: { slot: 1 }, value: { blockhash: BLOCKHASH, lastValidBlockHeight: 100 } }
        : method === "getSlot"
        ? 4242
        : {
            context: { slot: 1 },
            value: {
              owner: TOKEN_2022_PROGRAM,
              data: [Buffer.from(data).toString("base64"), "base64"],
              executable: false,
              lamports: 1,
              rentEpoch: 0,
              space: data.length,
            },
          };
    return Response.json({ jsonrpc: "2.0", id, result });
  };
  try {
    return await run(methods);
  } finally {
    globalThis.fetch = original;
  }
}

test("rpcSources reads the blockhash and the mint's decimals and token program", () =>
  withRpc(async () => {
    const sources = rpcSources("http://127.0.0.1:8899");
    assert.equal(await sources.getLatestBlockhash(), BLOCKHASH);
    assert.deepEqual(await sources.getMint(MINT), { decimals: 9, tokenProgram: TOKEN_2022_PROGRAM });
  }));

test("exact offer without blockhash, unknown mint: both from rpcUrl, never from the seller", () =>
  withRpc(async (methods) => {
    const offer = f.exactOffer({ asset: MINT });
    offer.extra = { feePayer: f.FEE_PAYER, memo: "m", decimals: 2 };
    const calls = [];
    const fetch = async (_url, init) => {
      calls.push(new Headers(init?.headers));
      return calls.length === 1 ? f.response402(f.challengeV2([offer])) : new Response("ok");
    };
    // No stablecoin: a limit of the caller's own, in base units.
    const policy = { maxPerRequest: "10000" };
    await fetchWithPayment("http://x/api", undefined, { fetch, signer: await f.buyerSigner(), rpcUrl: "http://127.0.0.1:8899", policy });
    assert.deepEqual(methods.sort(), ["getAccountInfo", "getGenesisHash", "getLatestBlockhash"]);
    const { message } = f.decodeTx(decodeHeader(calls[1].get("PAYMENT-SIGNATURE")).payload.transaction);
    assert.equal(message.lifetimeToken, BLOCKHASH);
    const transfer = f.resolve(message, message.instructions[2]);
    assert.equal(transfer.program, TOKEN_2022_PROGRAM);
    assert.equal(transfer.data.at(-1), 9);
    assert.equal(transfer.accounts[0], f.ata(f.BUYER, MINT, TOKEN_2022_PROGRAM));
  }));

test("upto offer without blockhash, slot or a known mint: the ledger's, and the mint's own token program", () =>
  withRpc(async (methods) => {
    const offer = f.uptoOffer({ asset: MINT });
    const { recentBlockhash, recentSlot, ...extra } = offer.extra;
    void recentBlockhash, void recentSlot;
    offer.extra = { ...extra, tokenProgram: TOKEN_2022_PROGRAM };
    const sent = [];
    const fetch = async (_url, init) => {
      sent.push(new Headers(init?.headers).get("PAYMENT-SIGNATURE"));
      return sent.length === 1 ? f.response402(f.challengeV2([offer])) : new Response("ok");
    };
    const policy = { maxPerRequest: "10000" };
    await fetchWithPayment("http://x/api", undefined, { fetch, signer: await f.buyerSigner(), rpcUrl: "http://127.0.0.1:8899", policy });
    assert.deepEqual(methods.sort(), ["getAccountInfo", "getGenesisHash", "getLatestBlockhash", "getSlot"]);
    const payload = decodeHeader(sent[1]).payload;
    assert.equal(payload.openSlot, "4242");
    const { message } = f.decodeTx(payload.openTransaction);
    assert.equal(message.lifetimeToken, BLOCKHASH);
    const open = f.resolve(message, message.instructions[2]);
    assert.equal(open.accounts[6], f.ata(f.BUYER, MINT, TOKEN_2022_PROGRAM));
    assert.equal(open.accounts[8], TOKEN_2022_PROGRAM);
  }));

test("rpcSources names the ledger's network from its genesis hash", () =>
  withRpc(async () => {
    assert.equal(await rpcSources("http://127.0.0.1:8899").getLedgerNetwork(), f.DEVNET);
  }));

/** Pays `offer`, the one offer of a 402, through rpcUrl: what came of it, how many
 * transactions were signed, and the payment headers sent. */
async function payOfferThroughRpc(offer, options = {}) {
  let signed = 0;
  const inner = await f.buyerSigner();
  const signer = { address: inner.address, signTransactions: (txs) => (signed++, inner.signTransactions(txs)) };
  const sent = [];
  const fetch = async (_url, init) => {
    sent.push(new Headers(init?.headers).get("PAYMENT-SIGNATURE"));
    return sent.length === 1 ? f.response402(f.challengeV2([offer])) : new Response("ok");
  };
  const result = await fetchWithPayment("http://x/api", undefined, {
    fetch,
    signer,
    rpcUrl: "http://127.0.0.1:8899",
    ...options,
  }).catch((e) => e);
  return { result, signed, sent };
}

/** One exact offer of an unknown mint (the seller claims 2 decimals), paid through rpcUrl. */
function payThroughRpc(amount, options = {}) {
  const offer = f.exactOffer({ asset: MINT, amount });
  offer.extra = { ...offer.extra, decimals: 2 };
  return payOfferThroughRpc(offer, options);
}

test("default cap: a mint the ledger knows (9 decimals, as wSOL's) is no stablecoin: refused unless the caller sets a limit", () =>
  withRpc(async () => {
    // 0.5 of a 9-decimal token: 1.00 of it is not 1.00 of USDC. Nothing is signed.
    const half = await payThroughRpc("500000000");
    assert.equal(half.result.code, "policy", String(half.result.message));
    assert.match(half.result.message, new RegExp(`mint ${MINT} is not a stablecoin.*maxPerRequest`));
    assert.equal(half.signed, 0);
    assert.equal(half.sent.length, 1, "nothing sent");
    // A decimal limit of the caller's is read with the ledger's decimals (9), never the
    // seller's claim (2, with which 2.00 would be 200 base units).
    const policy = { maxPerRequest: { decimal: "1" } };
    const paid = await payThroughRpc("500000000", { policy });
    assert.equal(paid.result.response?.status, 200, String(paid.result.message));
    assert.equal(paid.signed, 1);
    const two = await payThroughRpc("2000000000", { policy });
    assert.equal(two.result.code, "policy");
    assert.match(two.result.message, /maxPerRequest: 1000000000 base units/);
    assert.equal(two.signed, 0);
  }));

test("network: an exact offer naming another network than rpcUrl's is refused before signing", () =>
  withRpc(async () => {
    // The user's RPC is mainnet; the offer says devnet (and a networks policy allows devnet).
    const policy = { networks: [f.DEVNET], maxPerRequest: "10000" };
    // The mint's facts from the caller (no network): only the ledger's genesis tells.
    const mints = { [MINT]: { decimals: 9, tokenProgram: TOKEN_2022_PROGRAM } };
    const given = await payThroughRpc("10000", { policy, mints });
    assert.equal(given.result.code, "no_payable_offer", String(given.result.message));
    assert.match(given.result.message, /names solana:EtWT\w+, but rpcUrl is on solana:5eykt/);
    assert.equal(given.signed, 0);
    // The mint read from that ledger is a mainnet mint: refused as well.
    const read = await payThroughRpc("10000", { policy });
    assert.match(read.result.message, /mint \w+ is on solana:5eykt\w+, but the offer names solana:EtWT/);
    assert.equal(read.signed, 0);
  }, MAINNET_GENESIS));

test("network: with rpcUrl on the offer's network, exact is paid without a networks policy", () =>
  withRpc(async (methods) => {
    const { result, signed, sent } = await payThroughRpc("10000", { policy: { maxPerRequest: "10000" } });
    assert.equal(result.response?.status, 200, String(result.message));
    assert.equal(signed, 1);
    assert.ok(methods.includes("getGenesisHash"));
    // Signed with the checked ledger's blockhash, not the seller's: it lands on that cluster only.
    const { message } = f.decodeTx(decodeHeader(sent[1]).payload.transaction);
    assert.equal(message.lifetimeToken, BLOCKHASH);
    assert.notEqual(BLOCKHASH, f.BLOCKHASH);
  }));

test("network: createPayment with rpc sources checks the ledger's network itself", () =>
  withRpc(async (methods) => {
    const challenge = parseChallenge(f.challengeV2([f.exactOffer({ asset: MINT })]));
    const sources = { ...rpcSources("http://127.0.0.1:8899"), mints: { [MINT]: { decimals: 9, tokenProgram: TOKEN_2022_PROGRAM } } };
    await assert.rejects(createPayment(challenge, challenge.offers[0], await f.buyerSigner(), sources), /rpcUrl is on solana:5eykt/);
    assert.deepEqual(methods, ["getGenesisHash"]);
  }, MAINNET_GENESIS));

/** One sponsored receipt offer in MINT labelled devnet, paid with `policy` through rpcUrl. */
function payReceiptThroughRpc(policy) {
  return payOfferThroughRpc(f.receiptOffer({ asset: MINT }), { policy });
}

test("network: with rpcUrl a receipt offer naming another network is refused, even under a base-unit limit", () =>
  withRpc(async (methods) => {
    // The user's RPC is mainnet; the receipt offer says devnet, and a base-unit limit
    // needs no mint read: the ledger's network is read and checked all the same.
    const refused = await payReceiptThroughRpc({ maxPerRequest: "10000", networks: [f.DEVNET] });
    assert.equal(refused.result.code, "no_payable_offer", String(refused.result.message));
    assert.match(refused.result.message, /names solana:EtWT\w+, but rpcUrl is on solana:5eykt/);
    assert.equal(refused.signed, 0);
    assert.equal(refused.sent.length, 1, "nothing sent");
    assert.deepEqual(methods, ["getGenesisHash"]);
    // createPayment (the lower-level path) reads and checks it itself, in either scheme.
    const challenge = parseChallenge(f.challengeV2([f.receiptOffer({ asset: MINT })]));
    const sources = rpcSources("http://127.0.0.1:8899");
    await assert.rejects(createPayment(challenge, challenge.offers[0], await f.buyerSigner(), sources), /rpcUrl is on solana:5eykt/);
  }, MAINNET_GENESIS));

test("network: with rpcUrl on the receipt offer's network, it is paid without a networks policy", () =>
  withRpc(async () => {
    const { result, signed } = await payReceiptThroughRpc({ maxPerRequest: "10000" });
    assert.equal(result.response?.status, 200, String(result.message));
    assert.equal(signed, 1);
  }));

test("rpcSources reads Token-2022 extensions: a transfer fee or hook does not deliver in full", async () => {
  const read = (data) => withRpc(() => rpcSources("http://127.0.0.1:8899").getMint(MINT), DEVNET_GENESIS, data);
  const withholding = { decimals: 9, tokenProgram: TOKEN_2022_PROGRAM, deliversInFull: false };
  assert.deepEqual(await read(mintData([TRANSFER_FEE_CONFIG])), withholding);
  assert.deepEqual(await read(mintData([MINT_CLOSE_AUTHORITY, TRANSFER_HOOK])), withholding);
  assert.deepEqual(await read(mintData([MINT_CLOSE_AUTHORITY])), { decimals: 9, tokenProgram: TOKEN_2022_PROGRAM });
  // As Rust's StateWithExtensions: the padding is zeros and the account type is a mint's.
  const padded = mintData([MINT_CLOSE_AUTHORITY]);
  padded[100] = 1;
  await assert.rejects(read(padded), /is not a token mint/);
  const account = mintData([MINT_CLOSE_AUTHORITY]);
  account[165] = 2;
  await assert.rejects(read(account), /is not a token mint/);
  const cut = mintData([TRANSFER_FEE_CONFIG]).subarray(0, 200);
  await assert.rejects(read(cut), /is not a token mint/);
});

test("exact: a mint with a transfer fee is refused as the Rust client refuses it, and nothing is signed", async () => {
  for (const extension of [TRANSFER_FEE_CONFIG, TRANSFER_HOOK]) {
    const { result, signed, sent } = await withRpc(
      () => payThroughRpc("10000", { policy: { maxPerRequest: "10000" } }),
      DEVNET_GENESIS,
      mintData([extension]),
    );
    assert.equal(result.code, "no_payable_offer", String(result.message));
    assert.match(result.message, new RegExp(`mint ${MINT} withholds part of each transfer \\(fee or hook\\): not paid`));
    assert.equal(signed, 0);
    assert.equal(sent.length, 1, "nothing sent");
  }
});

test("exact: a Token-2022 mint with other extensions is paid", async () => {
  const { result, signed } = await withRpc(
    () => payThroughRpc("10000", { policy: { maxPerRequest: "10000" } }),
    DEVNET_GENESIS,
    mintData([MINT_CLOSE_AUTHORITY]),
  );
  assert.equal(result.response?.status, 200, String(result.message));
  assert.equal(signed, 1);
});
