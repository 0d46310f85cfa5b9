// The `batch-settlement` buyer (client mode) against a fake seller that checks what the
// Rust verifier checks: the `open` and its binding Memo, the `top_up`, the channel each
// voucher names, its Ed25519 signature by the buyer, and cumulative = accepted + price.
import { test } from "node:test";
import assert from "node:assert/strict";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { ed25519 } from "@noble/curves/ed25519.js";
import { getBase58Decoder, getBase58Encoder } from "@solana/kit";
import {
  ASSOCIATED_TOKEN_PROGRAM,
  batchTerms,
  bindingMemo,
  closeChannel,
  COMPUTE_BUDGET_PROGRAM,
  decodeHeader,
  encodeHeader,
  fetchWithPayment,
  fileChannelStore,
  memoryChannelStore,
  MEMO_PROGRAM,
  parseChallenge,
  PAYMENT_CHANNELS_PROGRAM,
  RENT_SYSVAR,
  spentUnder,
  SYSTEM_PROGRAM,
  TOKEN_PROGRAM,
  voucherMessage,
  X402Error,
} from "../dist/index.js";
import * as f from "./fixtures.mjs";

const PRICE = 10_000n;
const utf8 = (s) => new TextEncoder().encode(s);
const le = (n, bytes) => {
  const b = new Uint8Array(bytes);
  for (let i = 0; i < bytes; i++) b[i] = Number((BigInt.asUintN(64, BigInt(n)) >> BigInt(8 * i)) & 0xffn);
  return b;
};
const hex = (bytes) => Buffer.from(bytes).toString("hex");
const b58 = (bytes) => getBase58Decoder().decode(bytes);
const unb58 = (text) => new Uint8Array(getBase58Encoder().encode(text));
const URL_A = "http://shop/search";

function batchOffer(extra = {}, overrides = {}) {
  return {
    scheme: "batch-settlement",
    network: f.DEVNET,
    amount: PRICE.toString(),
    asset: f.USDC_DEVNET,
    payTo: f.PAY_TO,
    maxTimeoutSeconds: 300,
    extra: {
      feePayer: f.FEE_PAYER,
      receiverAuthorizer: f.AUTHORIZER,
      withdrawDelay: 3600,
      tokenProgram: TOKEN_PROGRAM,
      recentBlockhash: f.BLOCKHASH,
      recentSlot: f.RECENT_SLOT,
      minDeposit: (100n * PRICE).toString(),
      ...extra,
    },
    ...overrides,
  };
}

/** The channel a configuration derives, computed here apart from the package (sha256, off-curve). */
function channelOf(config) {
  return f.findPda(
    [
      utf8("channel"),
      f.enc(config.payer),
      f.enc(f.FEE_PAYER),
      f.enc(config.token),
      f.enc(config.payerAuthorizer),
      le(BigInt(config.salt), 8),
      le(BigInt(config.openSlot), 8),
    ],
    PAYMENT_CHANNELS_PROGRAM,
  );
}

/** The voucher message, built here apart from the package: 0x56 0x01 || channel || u64 le || i64 le. */
function message(channel, cumulative, expiresAt = 0) {
  return Uint8Array.from([0x56, 0x01, ...f.enc(channel), ...le(cumulative, 8), ...le(expiresAt, 8)]);
}

function signedBy(voucher, signer) {
  return ed25519.verify(unb58(voucher.signature), message(voucher.channelId, BigInt(voucher.maxClaimableAmount), voucher.expiresAt), unb58(signer));
}

/** What a message's account may do, from its header. */
function privileges(msg, address) {
  const { numSignerAccounts, numReadonlySignerAccounts, numReadonlyNonSignerAccounts } = msg.header;
  const i = msg.staticAccounts.indexOf(address);
  const n = msg.staticAccounts.length;
  const signer = i < numSignerAccounts;
  const writable = signer ? i < numSignerAccounts - numReadonlySignerAccounts : i < n - numReadonlyNonSignerAccounts;
  return [address, signer, writable];
}

/**
 * A seller of `price` per request that keeps each channel's deposit, accepted amount and
 * the buyer's latest voucher, and refuses as the verifier does. `store` (optional): the
 * buyer's store, checked to hold each voucher's amount as signed before it arrives.
 */
function fakeSeller({ offer = batchOffer(), store = null } = {}) {
  const seller = {
    channels: new Map(),
    log: [],
    hits: 0,
    /** Replaces the answer to the next paid request: (payload, channel) => Response | null. */
    intercept: null,
    /** The buyer's store (recording): each voucher's amount must be written as signed before it arrives. */
    store,
  };
  const challenge = (error, extra = {}) => {
    const o = structuredClone(offer);
    o.extra = { ...o.extra, ...extra };
    return f.response402(f.challengeV2([o], error));
  };
  seller.challenge = challenge;
  const correction = (address, row) => ({
    channelState: {
      channelId: address,
      balance: row.deposit.toString(),
      totalClaimed: "0",
      withdrawRequestedAt: 0,
      chargedCumulativeAmount: row.charged.toString(),
    },
    voucherState: { signedMaxClaimable: row.charged.toString(), expiresAt: 0, signature: row.signature },
  });
  seller.correction = correction;
  const served = (address, row, from, moved) =>
    new Response(`served ${seller.hits}`, {
      status: 200,
      headers: {
        "PAYMENT-RESPONSE": encodeHeader({
          success: true,
          transaction: moved ? "5deposit" : "",
          network: f.DEVNET,
          payer: f.BUYER,
          amount: moved ? moved.toString() : "",
          commitmentId: `${address}:${row.charged}`,
          chargedAmount: (row.charged - from).toString(),
          channelState: {
            channelId: address,
            balance: row.deposit.toString(),
            totalClaimed: "0",
            withdrawRequestedAt: 0,
            chargedCumulativeAmount: row.charged.toString(),
          },
        }),
      },
    });

  async function answer(url, init) {
    const headers = new Headers(init?.headers);
    const header = headers.get("PAYMENT-SIGNATURE");
    if (!header) {
      seller.log.push({ url, paid: false });
      return challenge("PAYMENT-SIGNATURE header is required");
    }
    const sent = decodeHeader(header);
    assert.equal(sent.accepted.scheme, "batch-settlement");
    const { payload } = sent;
    const config = payload.channelConfig;
    const voucher = payload.voucher;
    const cumulative = BigInt(voucher.maxClaimableAmount);
    seller.log.push({ url, paid: true, type: payload.type, cumulative, sent });
    // The configuration binds the offer's terms; the buyer signs its own vouchers.
    assert.equal(config.payer, f.BUYER);
    assert.equal(config.payerAuthorizer, f.BUYER);
    assert.equal(config.receiver, f.PAY_TO);
    assert.equal(config.receiverAuthorizer, f.AUTHORIZER);
    assert.equal(config.token, f.USDC_DEVNET);
    assert.equal(config.withdrawDelay, 3600);
    assert.equal(typeof config.openSlot, "number");
    assert.match(config.salt, /^\d+$/);
    assert.equal(config.voucherSigner, undefined);
    const address = channelOf(config);
    assert.equal(voucher.channelId, address, "the voucher names the channel its configuration derives");
    assert.equal(voucher.expiresAt, 0);
    assert.ok(signedBy(voucher, config.payerAuthorizer), "the voucher is signed by the channel's payer authorizer");
    if (seller.store) {
      const held = seller.store.written.get(address);
      assert.ok(held && held.signed >= cumulative, "signed is recorded before the voucher is sent");
    }
    const row = seller.channels.get(address);
    if (seller.intercept) {
      const intercepted = seller.intercept(payload, address, row);
      seller.intercept = null;
      if (intercepted) return intercepted;
    }
    if (payload.type === "refund") {
      if (!row) return challenge("invalid_batch_settlement_svm_close_state");
      if (row.charged !== cumulative) return challenge("invalid_batch_settlement_svm_close_state", correction(address, row));
      row.status = "closed";
      const refunded = row.deposit - row.charged;
      return Response.json(
        { closed: true, refunded: refunded.toString(), transaction: "5close" },
        { headers: { "PAYMENT-RESPONSE": encodeHeader({ success: true, transaction: "5close", network: f.DEVNET, payer: f.BUYER, amount: refunded.toString() }) } },
      );
    }
    if (row && row.status !== "open") return challenge("invalid_batch_settlement_svm_channel_closing");
    if (payload.type === "deposit") {
      const amount = BigInt(payload.deposit.amount);
      const { tx, message: msg } = f.decodeTx(payload.deposit.transaction);
      assert.equal(msg.staticAccounts[0], f.FEE_PAYER, "the seller's fee payer pays the fee");
      assert.equal(tx.signatures[f.FEE_PAYER], null, "the fee payer's slot is left for the seller");
      assert.ok(f.verifyBuyer(tx), "the buyer signed the deposit");
      const ixs = msg.instructions.map((ix) => f.resolve(msg, ix));
      if (!row) {
        assert.deepEqual(ixs.map((i) => i.program), [COMPUTE_BUDGET_PROGRAM, COMPUTE_BUDGET_PROGRAM, PAYMENT_CHANNELS_PROGRAM, MEMO_PROGRAM, MEMO_PROGRAM]);
        assert.deepEqual([...ixs[0].data], [2, ...le(200_000, 4)], "the Rust client's limit: room for the address searches and the Memos");
        assert.deepEqual([...ixs[1].data], [3, ...le(1, 8)]);
        const open = ixs[2];
        assert.equal(
          hex(open.data),
          "01" + hex(le(BigInt(config.salt), 8)) + hex(le(amount, 8)) + hex(le(3600, 4)) + hex(le(config.openSlot, 8)) + "01000000" + hex(f.enc(f.PAY_TO)) + "1027",
        );
        const eventAuthority = f.findPda([utf8("event_authority")], PAYMENT_CHANNELS_PROGRAM);
        assert.deepEqual(
          open.accounts.map((a) => privileges(msg, a)),
          [
            [f.BUYER, true, true],
            [f.FEE_PAYER, true, true],
            [f.FEE_PAYER, true, true],
            [f.USDC_DEVNET, false, false],
            [f.BUYER, true, true], // the buyer signs its vouchers: the channel's authorized signer
            [address, false, true],
            [f.ata(f.BUYER, f.USDC_DEVNET), false, true],
            [f.ata(address, f.USDC_DEVNET), false, true],
            [TOKEN_PROGRAM, false, false],
            [SYSTEM_PROGRAM, false, false],
            [RENT_SYSVAR, false, false],
            [ASSOCIATED_TOKEN_PROGRAM, false, false],
            [eventAuthority, false, false],
            [PAYMENT_CHANNELS_PROGRAM, false, false],
          ],
        );
        const memo = offer.extra.memo;
        const nonce = Buffer.from(ixs[3].data).toString();
        if (memo) assert.equal(nonce, memo);
        else assert.match(nonce, /^[0-9a-f]{32}$/, "a random 16-byte nonce");
        assert.equal(Buffer.from(ixs[4].data).toString(), `x402:batch-settlement:svm:rcvauth:v1:${f.AUTHORIZER}`);
        if (cumulative !== PRICE) return challenge("invalid_batch_settlement_svm_cumulative_amount_mismatch");
        if (cumulative > amount) return challenge("invalid_batch_settlement_svm_cumulative_exceeds_deposit");
        seller.channels.set(address, { deposit: amount, charged: cumulative, signature: voucher.signature, status: "open", opened: payload });
        seller.hits++;
        return served(address, seller.channels.get(address), 0n, amount);
      }
      // A top-up: budget, top_up, memo; the fee payer in no instruction.
      assert.deepEqual(ixs.map((i) => i.program), [COMPUTE_BUDGET_PROGRAM, COMPUTE_BUDGET_PROGRAM, PAYMENT_CHANNELS_PROGRAM, MEMO_PROGRAM]);
      assert.deepEqual([...ixs[0].data], [2, ...le(40_000, 4)]);
      assert.equal(hex(ixs[2].data), "03" + hex(le(amount, 8)));
      assert.deepEqual(
        ixs[2].accounts.map((a) => privileges(msg, a)),
        [
          [f.BUYER, true, true],
          [address, false, true],
          [f.ata(f.BUYER, f.USDC_DEVNET), false, true],
          [f.ata(address, f.USDC_DEVNET), false, true],
          [f.USDC_DEVNET, false, false],
          [TOKEN_PROGRAM, false, false],
        ],
      );
      assert.ok(ixs.every((i) => !i.accounts.includes(f.FEE_PAYER)), "the fee payer pays the fee only");
      if (cumulative !== row.charged + PRICE) return challenge("invalid_batch_settlement_svm_cumulative_amount_mismatch", correction(address, row));
      if (cumulative > row.deposit + amount) return challenge("invalid_batch_settlement_svm_cumulative_exceeds_deposit");
      const from = row.charged;
      Object.assign(row, { deposit: row.deposit + amount, charged: cumulative, signature: voucher.signature });
      seller.hits++;
      return served(address, row, from, amount);
    }
    assert.equal(payload.type, "voucher");
    if (!row) return challenge("invalid_batch_settlement_svm_channel_state");
    if (cumulative !== row.charged + PRICE) return challenge("invalid_batch_settlement_svm_cumulative_amount_mismatch", correction(address, row));
    if (cumulative > row.deposit) return challenge("invalid_batch_settlement_svm_cumulative_exceeds_deposit", correction(address, row));
    const from = row.charged;
    Object.assign(row, { charged: cumulative, signature: voucher.signature });
    seller.hits++;
    return served(address, row, from, null);
  }
  seller.fetch = answer;
  return seller;
}

/** `inner`, recording the last write of each channel (`written`, by address). */
function recording(inner) {
  const written = new Map();
  return {
    written,
    get: (key) => inner.get(key),
    forResource: (url) => inner.forResource(url),
    async put(channel) {
      await inner.put(channel);
      written.set(channel.channel, structuredClone(channel));
    },
  };
}

/** A signer that counts transactions and messages signed. */
async function countingSigner(inner) {
  inner ??= await f.buyerSigner();
  const counter = { transactions: 0, messages: 0 };
  counter.signer = {
    address: inner.address,
    async signTransactions(txs) {
      counter.transactions++;
      return inner.signTransactions(txs);
    },
    async signMessages(messages) {
      counter.messages++;
      return inner.signMessages(messages);
    },
  };
  return counter;
}

const policy = (more = {}) => ({ networks: [f.DEVNET], ...more });

async function buyer({ store: given = memoryChannelStore(), policy: p = policy(), offer, mints } = {}) {
  const store = recording(given);
  const seller = fakeSeller({ store, ...(offer ? { offer } : {}) });
  const counter = await countingSigner();
  const options = { fetch: seller.fetch, signer: counter.signer, policy: p, schemes: ["batch-settlement"], channelStore: store, ...(mints ? { mints } : {}) };
  return { seller, counter, store, options, get: (url = URL_A) => fetchWithPayment(url, undefined, options) };
}

test("batch: the voucher message is magic, channel, amount and expiry little-endian; the binding names the receiver authorizer", () => {
  const channel = f.key(9);
  const m = voucherMessage(channel, 0x0102n, -2n);
  assert.equal(m.length, 50);
  assert.deepEqual([...m.subarray(0, 2)], [0x56, 0x01]);
  assert.deepEqual([...m.subarray(2, 34)], [...f.enc(channel)]);
  assert.deepEqual([...m.subarray(34, 42)], [0x02, 0x01, 0, 0, 0, 0, 0, 0]);
  assert.deepEqual([...m.subarray(42)], [0xfe, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
  assert.deepEqual(m, message(channel, 0x0102n, -2));
  assert.equal(bindingMemo(f.AUTHORIZER), `x402:batch-settlement:svm:rcvauth:v1:${f.AUTHORIZER}`);
});

test("batch: an offer a buyer must not escrow under is refused", () => {
  const terms = (extra, overrides) => batchTerms(parseChallenge(f.challengeV2([batchOffer(extra, overrides)])).offers[0]);
  assert.equal(typeof terms({}), "object");
  assert.equal(terms({}).minDeposit, 100n * PRICE);
  assert.match(terms({ withdrawDelay: 899 }), /withdrawDelay/, "under 15 minutes");
  assert.match(terms({ withdrawDelay: 2_592_001 }), /withdrawDelay/, "over 30 days");
  assert.match(terms({}, { maxTimeoutSeconds: 3601 }), /withdrawDelay/, "shorter than the offer's timeout");
  assert.match(terms({ voucherSigner: "server" }), /voucherSigner/, "an operator signing vouchers could take the deposit");
  assert.match(terms({ operator: f.key(4) }), /voucherSigner/);
  assert.match(terms({ minDeposit: "9999" }), /minDeposit/, "below one request");
  assert.match(terms({ paymentFlow: "escrow" }), /paymentFlow/);
  assert.match(terms({ memo: "m".repeat(257) }), /memo/);
});

test("batch: the first request opens a channel with the policy-clamped deposit and pays its first voucher", async () => {
  // The seller suggests 10.00 USDC; the default cap escrows 5.00.
  const b = await buyer({ offer: batchOffer({ minDeposit: "10000000" }) });
  const r = await b.get();
  assert.equal(r.response.status, 200);
  assert.equal(await r.response.text(), "served 1");
  assert.deepEqual(b.seller.log.map((l) => [l.paid, l.type]), [[false, undefined], [true, "deposit"]]);
  const sent = b.seller.log[1].sent;
  assert.deepEqual(sent.accepted, batchOffer({ minDeposit: "10000000" }), "the offer echoed");
  assert.equal(sent.payload.deposit.amount, "5000000", "clamped to the default deposit cap");
  assert.equal(sent.payload.voucher.maxClaimableAmount, PRICE.toString(), "the first voucher is the price");
  assert.equal(sent.payload.channelConfig.openSlot, f.RECENT_SLOT);
  assert.deepEqual(r.charged, { amount: PRICE, maximum: null });
  assert.equal(r.payment.scheme, "batch-settlement");
  assert.equal(r.channel.channel, channelOf(sent.payload.channelConfig));
  assert.equal(r.channel.deposit, 5_000_000n);
  assert.equal(r.channel.confirmed, PRICE);
  assert.equal(r.channel.warning, undefined);
  assert.equal(b.counter.transactions, 1);
  assert.equal(spentUnder(b.options.policy), PRICE, "the budget counts the price, not the escrow");
  const held = await b.store.forResource(URL_A);
  assert.equal(held.deposit, 5_000_000n);
  assert.equal(held.confirmed, PRICE);
  assert.equal(held.signed, PRICE);

  // The seller's own minDeposit, when within the cap; a memo it sets is the open's.
  const c = await buyer({ offer: batchOffer({ memo: "invoice-123" }) });
  await c.get();
  assert.equal(c.seller.log[1].sent.payload.deposit.amount, (100n * PRICE).toString());
});

test("batch: ten more requests send their vouchers at once, no 402, at exactly accepted + price", async () => {
  const b = await buyer();
  await b.get();
  const before = b.seller.log.length;
  for (let n = 2n; n <= 11n; n++) {
    const r = await b.get();
    assert.equal(r.response.status, 200);
    assert.deepEqual(r.charged, { amount: PRICE, maximum: null });
    assert.equal(r.channel.confirmed, n * PRICE);
  }
  const later = b.seller.log.slice(before);
  assert.equal(later.length, 10, "one request each: no 402 round trip");
  assert.deepEqual(later.map((l) => l.type), Array(10).fill("voucher"));
  assert.deepEqual(later.map((l) => l.cumulative), Array.from({ length: 10 }, (_, i) => BigInt(i + 2) * PRICE));
  assert.equal(b.counter.transactions, 1, "one deposit only");
  assert.equal(b.counter.messages, 11, "one voucher a request");
  assert.equal(spentUnder(b.options.policy), 11n * PRICE);
  // Another URL of the same seller goes through the same channel, after its own 402.
  const other = await b.get("http://shop/other");
  assert.equal(other.channel.confirmed, 12n * PRICE);
  assert.deepEqual(b.seller.log.slice(-2).map((l) => [l.paid, l.type]), [[false, undefined], [true, "voucher"]]);
});

test("batch: after a restart the file store continues the same channel at the right cumulative", async () => {
  const dir = await mkdtemp(join(tmpdir(), "x402-channels-"));
  try {
    const first = await buyer({ store: fileChannelStore(dir) });
    for (let i = 0; i < 3; i++) await first.get();
    const files = await readdir(dir);
    assert.equal(files.length, 1, `one file per channel, no temporary left: ${files}`);
    const onDisk = JSON.parse(await readFile(join(dir, files[0]), "utf8"));
    assert.equal(onDisk.deposit, (100n * PRICE).toString(), "amounts as decimal strings");
    assert.equal(onDisk.confirmed, (3n * PRICE).toString());
    assert.equal(onDisk.signed, (3n * PRICE).toString());
    assert.equal(files[0], `${onDisk.channel}.json`);

    // A new process: a new store over the same directory, the same seller.
    const store = recording(fileChannelStore(dir));
    first.seller.store = store;
    const counter = await countingSigner();
    const options = { fetch: first.seller.fetch, signer: counter.signer, policy: policy(), schemes: ["batch-settlement"], channelStore: store };
    const before = first.seller.log.length;
    const r = await fetchWithPayment(URL_A, undefined, options);
    assert.equal(r.response.status, 200);
    assert.equal(r.channel.channel, onDisk.channel);
    assert.equal(r.channel.confirmed, 4n * PRICE);
    assert.deepEqual(first.seller.log.slice(before).map((l) => [l.type, l.cumulative]), [["voucher", 4n * PRICE]]);
    assert.equal(counter.transactions, 0, "no new deposit");
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test("batch: a forged correction is refused and nothing is adopted", async () => {
  const b = await buyer();
  for (let i = 0; i < 3; i++) await b.get();
  const before = await b.store.forResource(URL_A);
  const address = before.channel;
  const genuine = b.seller.channels.get(address).signature; // the buyer's voucher for 3 × price

  // Signed by another key: a voucher for 1 × price the buyer never signed.
  const other = ed25519.utils.randomSecretKey();
  const forged = b58(ed25519.sign(message(address, PRICE), other));
  // Charged above the voucher shown: the buyer's own voucher for 3 × price, a claim of 5.
  const above = { chargedCumulativeAmount: (5n * PRICE).toString(), signature: genuine, signed: 3n * PRICE };
  for (const [charged, signedMax, signature, why] of [
    [PRICE, PRICE, forged, /not signed by this buyer's key/],
    [BigInt(above.chargedCumulativeAmount), above.signed, above.signature, /above the voucher it shows/],
    [2n * PRICE, 2n * PRICE, genuine, /not signed by this buyer's key/], // the signature is of another amount
  ]) {
    b.seller.intercept = () =>
      b.seller.challenge("invalid_batch_settlement_svm_cumulative_amount_mismatch", {
        channelState: { channelId: address, balance: "1000000", totalClaimed: "0", withdrawRequestedAt: 0, chargedCumulativeAmount: charged.toString() },
        voucherState: { signedMaxClaimable: signedMax.toString(), expiresAt: 0, signature },
      });
    const sent = b.seller.log.length;
    const error = await b.get().catch((e) => e);
    assert.ok(error instanceof X402Error, String(error));
    assert.equal(error.code, "refused");
    assert.equal(error.reason, "invalid_batch_settlement_svm_cumulative_amount_mismatch");
    assert.match(error.message, why);
    assert.equal(b.seller.log.length, sent + 1, "not paid again");
    const after = await b.store.forResource(URL_A);
    assert.equal(after.confirmed, 3n * PRICE, "nothing adopted");
  }
  // The channel still pays at what the seller really accepted.
  const r = await b.get();
  assert.equal(r.channel.confirmed, 4n * PRICE);
});

test("batch: a correction showing the buyer's own voucher is adopted and the request paid once more", async () => {
  const b = await buyer();
  for (let i = 0; i < 2; i++) await b.get();
  // The third voucher is accepted, but its answer is lost.
  const seller = b.seller.fetch;
  b.options.fetch = async (url, init) => {
    const response = await seller(url, init);
    b.options.fetch = seller;
    throw new TypeError(`connection reset (${response.status})`);
  };
  const lost = await b.get().catch((e) => e);
  assert.equal(lost.code, "unavailable");
  assert.equal((await b.store.forResource(URL_A)).confirmed, 2n * PRICE);
  assert.equal((await b.store.forResource(URL_A)).signed, 3n * PRICE);

  // The next voucher (3 × price again) is refused with the seller's state and the
  // buyer's voucher for 3 × price: adopted, then 4 × price is paid.
  const before = b.seller.log.length;
  const r = await b.get();
  assert.equal(r.response.status, 200);
  assert.equal(r.channel.confirmed, 4n * PRICE);
  assert.deepEqual(b.seller.log.slice(before).map((l) => [l.type, l.cumulative]), [["voucher", 3n * PRICE], ["voucher", 4n * PRICE]]);
  assert.equal(b.seller.channels.get(r.channel.channel).charged, 4n * PRICE);
});

test("batch: a deposit above maxDeposit is refused before anything is signed", async () => {
  const b = await buyer({ policy: policy({ maxDeposit: PRICE - 1n }) });
  const error = await b.get().catch((e) => e);
  assert.ok(error instanceof X402Error, String(error));
  assert.equal(error.code, "policy");
  assert.match(error.message, /above maxDeposit/);
  assert.equal(b.counter.transactions + b.counter.messages, 0, "nothing signed");
  assert.equal(spentUnder(b.options.policy), 0n);
  assert.equal(b.seller.log.filter((l) => l.paid).length, 0);

  // Another token than a known stablecoin is escrowed only under a maxDeposit of the caller's.
  const other = f.key(6);
  const foreign = await buyer({
    offer: batchOffer({}, { asset: other }),
    policy: policy({ maxPerRequest: PRICE }),
    mints: { [other]: { decimals: 6, tokenProgram: TOKEN_PROGRAM } },
  });
  const refused = await foreign.get().catch((e) => e);
  assert.equal(refused.code, "policy");
  assert.match(refused.message, /not a stablecoin .* maxDeposit/);
  assert.equal(foreign.counter.transactions + foreign.counter.messages, 0);
});

test("batch: an offer whose deposit could wait past maxWithdrawDelay is refused before anything is signed", async () => {
  const month = await buyer({ offer: batchOffer({ withdrawDelay: 2_592_000 }, { maxTimeoutSeconds: 60 }) });
  const error = await month.get().catch((e) => e);
  assert.ok(error instanceof X402Error, String(error));
  assert.equal(error.code, "policy");
  assert.match(error.message, /maxWithdrawDelay/);
  assert.equal(month.counter.transactions + month.counter.messages, 0, "nothing signed");
  // Under the caller's own limit the policy lets it through (to whatever comes next).
  const allowed = await buyer({
    offer: batchOffer({ withdrawDelay: 2_592_000 }, { maxTimeoutSeconds: 60 }),
    policy: policy({ maxWithdrawDelay: 2_592_000 }),
  });
  const next = await allowed.get().catch((e) => e);
  assert.doesNotMatch(String(next?.message ?? ""), /maxWithdrawDelay/);
});

test("batch: when the deposit runs out the next payment tops it up, clamped to maxDeposit", async () => {
  const b = await buyer({ policy: policy({ maxDeposit: 3n * PRICE }) });
  for (let i = 0; i < 3; i++) await b.get();
  assert.equal((await b.store.forResource(URL_A)).deposit, 3n * PRICE);
  const before = b.seller.log.length;
  const r = await b.get();
  assert.equal(r.response.status, 200);
  // No voucher is sent unasked past the deposit: the 402 brings a fresh blockhash for the top-up.
  const sent = b.seller.log.slice(before);
  assert.deepEqual(sent.map((l) => [l.paid, l.type, l.cumulative]), [[false, undefined, undefined], [true, "deposit", 4n * PRICE]]);
  assert.equal(sent[1].sent.payload.deposit.amount, (3n * PRICE).toString(), "the seller's 100 × price, clamped to maxDeposit");
  assert.equal(r.channel.deposit, 6n * PRICE);
  assert.equal(r.channel.confirmed, 4n * PRICE);
  assert.equal(b.counter.transactions, 2, "the open and the top-up");
  // And the vouchers go on, unasked, through the larger deposit.
  const next = await b.get();
  assert.equal(next.channel.confirmed, 5n * PRICE);
  assert.equal(b.seller.log.at(-1).type, "voucher");
});

test("batch: closeChannel sends the refund at the accepted amount and forgets the channel", async () => {
  const b = await buyer();
  for (let i = 0; i < 4; i++) await b.get();
  const held = await b.store.forResource(URL_A);
  const refunded = await closeChannel(URL_A, { signer: b.counter.signer, channelStore: b.store, fetch: b.seller.fetch });
  assert.equal(refunded, 100n * PRICE - 4n * PRICE);
  const refund = b.seller.log.at(-1);
  assert.equal(refund.type, "refund");
  assert.equal(refund.cumulative, 4n * PRICE, "the voucher for exactly what was accepted");
  assert.deepEqual(refund.sent.accepted, batchOffer());
  assert.equal(b.seller.channels.get(held.channel).status, "closed");
  assert.equal(await b.store.forResource(URL_A), null);
  assert.equal(await b.store.get(held.key), null);
  await assert.rejects(
    closeChannel(URL_A, { signer: b.counter.signer, channelStore: b.store, fetch: b.seller.fetch }),
    (e) => e instanceof X402Error && e.code === "no_channel",
  );
  // The next request opens a new channel.
  const r = await b.get();
  assert.notEqual(r.channel.channel, held.channel);
  assert.equal(b.seller.log.at(-1).type, "deposit");
});

test("batch: a channel the seller is closing is replaced by a new one, once", async () => {
  const b = await buyer();
  await b.get();
  const first = (await b.store.forResource(URL_A)).channel;
  b.seller.channels.get(first).status = "closing";
  const r = await b.get();
  assert.equal(r.response.status, 200);
  assert.notEqual(r.channel.channel, first);
  assert.equal(r.channel.confirmed, PRICE);
  assert.deepEqual(b.seller.log.slice(-2).map((l) => [l.type, l.cumulative]), [["voucher", 2n * PRICE], ["deposit", PRICE]]);
  const old = (await b.store.get((await b.store.forResource(URL_A)).key)).channel;
  assert.equal(old, r.channel.channel);
});

test("batch: a seller claiming more than was signed is reported and not believed", async () => {
  const b = await buyer();
  await b.get();
  b.seller.intercept = (payload, address, row) => {
    row.charged = BigInt(payload.voucher.maxClaimableAmount);
    return new Response("served", {
      headers: {
        "PAYMENT-RESPONSE": encodeHeader({
          success: true,
          transaction: "",
          network: f.DEVNET,
          chargedAmount: PRICE.toString(),
          channelState: { channelId: address, balance: "1000000", totalClaimed: "0", withdrawRequestedAt: 0, chargedCumulativeAmount: "999999" },
        }),
      },
    });
  };
  const r = await b.get();
  assert.match(r.channel.warning, /claims 999999 .* more than the 20000 signed: ignored/);
  assert.equal(r.channel.confirmed, 2n * PRICE);
  assert.equal((await b.store.forResource(URL_A)).confirmed, 2n * PRICE);
});

test("batch: paid only when named, and only by a signer that signs messages", async () => {
  const seller = fakeSeller();
  const inner = await f.buyerSigner();
  const noMessages = { address: inner.address, signTransactions: (txs) => inner.signTransactions(txs) };
  const error = await fetchWithPayment(URL_A, undefined, {
    fetch: seller.fetch,
    signer: noMessages,
    policy: policy(),
    schemes: ["batch-settlement"],
    channelStore: memoryChannelStore(),
  }).catch((e) => e);
  assert.equal(error.code, "no_payable_offer");
  assert.match(error.message, /cannot sign messages/);
  const unnamed = await fetchWithPayment(URL_A, undefined, { fetch: seller.fetch, signer: inner, policy: policy() }).catch((e) => e);
  assert.equal(unnamed.code, "no_payable_offer");
  assert.match(unnamed.message, /only when named/);
  assert.equal(seller.log.filter((l) => l.paid).length, 0);
});
