// The `upto` buyer: the `open` it signs, the payload, the policy's cap on the maximum,
// and the settled amount checked against it.
import { test } from "node:test";
import assert from "node:assert/strict";
import {
  ASSOCIATED_TOKEN_PROGRAM,
  buildUptoTransaction,
  channelAddress,
  chooseOffer,
  COMPUTE_BUDGET_PROGRAM,
  createPayment,
  decodeHeader,
  encodeHeader,
  fetchWithPayment,
  MEMO_PROGRAM,
  PAYMENT_CHANNELS_PROGRAM,
  parseChallenge,
  RENT_SYSVAR,
  spentUnder,
  SYSTEM_PROGRAM,
  TOKEN_2022_PROGRAM,
  TOKEN_PROGRAM,
  X402Error,
} from "../dist/index.js";
import { getCompiledTransactionMessageDecoder } from "@solana/kit";
import * as f from "./fixtures.mjs";

const le = (n, bytes) => {
  const b = Buffer.alloc(bytes);
  for (let i = 0; i < bytes; i++) b[i] = Number((BigInt(n) >> BigInt(8 * i)) & 0xffn);
  return [...b];
};
const utf8 = (s) => new TextEncoder().encode(s);
const SALT = 0xfedcba9876543210n;
const USDC = { decimals: 6, tokenProgram: TOKEN_PROGRAM };

/** The channel of the fixtures' buyer and seller, derived independently (sha256, off-curve). */
const channelOf = (salt, openSlot) =>
  f.findPda(
    [utf8("channel"), f.enc(f.BUYER), f.enc(f.FEE_PAYER), f.enc(f.USDC_DEVNET), f.enc(f.AUTHORIZER), Uint8Array.from(le(salt, 8)), Uint8Array.from(le(openSlot, 8))],
    PAYMENT_CHANNELS_PROGRAM,
  );

const offerOf = (o) => parseChallenge(f.challengeV2([o])).offers[0];

/** What a message's account at `i` may do, from its header. */
function privileges(message, address) {
  const { numSignerAccounts, numReadonlySignerAccounts, numReadonlyNonSignerAccounts } = message.header;
  const i = message.staticAccounts.indexOf(address);
  const n = message.staticAccounts.length;
  const signer = i < numSignerAccounts;
  const writable = signer ? i < numSignerAccounts - numReadonlySignerAccounts : i < n - numReadonlyNonSignerAccounts;
  return [address, signer, writable];
}

/** The channel of these seeds as the Rust builder derives it (protocol's channel_address). */
const RUST_CHANNEL = "EscYMyRfeDrcwuc7dPfFYF2yjktsTXK1ZFQHrN5f2SZN";

test("upto: the channel address is the program's PDA of payer, payee, mint, signer, salt and slot", async () => {
  const seeds = { payer: f.BUYER, payee: f.FEE_PAYER, mint: f.USDC_DEVNET, authorizedSigner: f.AUTHORIZER, salt: SALT, openSlot: f.RECENT_SLOT };
  const channel = await channelAddress(seeds);
  assert.equal(channel, RUST_CHANNEL);
  assert.equal(channelOf(SALT, f.RECENT_SLOT), RUST_CHANNEL);
  assert.notEqual(await channelAddress({ ...seeds, salt: SALT + 1n }), channel);
  assert.notEqual(await channelAddress({ ...seeds, openSlot: f.RECENT_SLOT + 1 }), channel);
  assert.notEqual(await channelAddress({ ...seeds, authorizedSigner: f.FEE_PAYER }), channel);
});

test("upto: open is a v0 transaction of limit, price, open, Memo; its bytes and 14 accounts as the program reads them", async () => {
  const { transaction, channel } = await buildUptoTransaction(offerOf(f.uptoOffer()), {
    payer: f.BUYER,
    mint: USDC,
    blockhash: f.BLOCKHASH,
    salt: SALT,
    openSlot: f.RECENT_SLOT,
  });
  const message = getCompiledTransactionMessageDecoder().decode(transaction.messageBytes);
  assert.equal(message.version, 0);
  assert.equal(message.staticAccounts[0], f.FEE_PAYER, "the seller's fee payer pays");
  assert.equal(message.lifetimeToken, f.BLOCKHASH);
  const ixs = message.instructions.map((ix) => f.resolve(message, ix));
  assert.deepEqual(ixs.map((i) => i.program), [COMPUTE_BUDGET_PROGRAM, COMPUTE_BUDGET_PROGRAM, PAYMENT_CHANNELS_PROGRAM, MEMO_PROGRAM]);
  assert.deepEqual([...ixs[0].data], [2, ...le(200_000, 4)]);
  assert.deepEqual([...ixs[1].data], [3, ...le(1, 8)]);
  assert.equal(Buffer.from(ixs[3].data).toString(), "order-42");

  // discriminator 1 | salt u64 | deposit u64 | grace u32 | open_slot u64 | count u32 | (payTo, 10000 u16)
  const open = ixs[2];
  assert.equal(
    Buffer.from(open.data).toString("hex"),
    "01" + "1032547698badcfe" + "1027000000000000" + "100e0000" + "403f531400000000" + "01000000" +
      Buffer.from(f.enc(f.PAY_TO)).toString("hex") + "1027",
  );
  assert.equal(channel, channelOf(SALT, f.RECENT_SLOT));
  const eventAuthority = f.findPda([utf8("event_authority")], PAYMENT_CHANNELS_PROGRAM);
  assert.deepEqual(
    open.accounts.map((a) => privileges(message, a)),
    [
      [f.BUYER, true, true],
      [f.FEE_PAYER, true, true],
      // The fee payer again, as the channel's payee: one key of the message, signing.
      [f.FEE_PAYER, true, true],
      [f.USDC_DEVNET, false, false],
      [f.AUTHORIZER, false, false],
      [channel, false, true],
      [f.ata(f.BUYER, f.USDC_DEVNET), false, true],
      [f.ata(channel, f.USDC_DEVNET), false, true],
      [TOKEN_PROGRAM, false, false],
      [SYSTEM_PROGRAM, false, false],
      [RENT_SYSVAR, false, false],
      [ASSOCIATED_TOKEN_PROGRAM, false, false],
      [eventAuthority, false, false],
      [PAYMENT_CHANNELS_PROGRAM, false, false],
    ],
  );
});

test("upto: the payload states what the open binds, signed by the buyer, never a voucher", async () => {
  // A seller naming its own program is not heard: the program is a network constant.
  const offered = f.uptoOffer();
  offered.extra = { ...offered.extra, programId: f.key(4), recentSlot: String(f.RECENT_SLOT) };
  const challenge = parseChallenge(f.challengeV2([offered]));
  const before = Math.floor(Date.now() / 1000);
  const payment = await createPayment(challenge, challenge.offers[0], await f.buyerSigner(), { mints: { [f.USDC_DEVNET]: USDC } });
  const after = Math.floor(Date.now() / 1000);
  const header = decodeHeader(payment.headerValue);
  assert.deepEqual(header.accepted, offered);
  const p = header.payload;
  assert.deepEqual(Object.keys(p).sort(), [
    "authorizedSigner", "channelId", "deposit", "expiresAt", "from", "maxAmount", "nonce", "openSlot", "openTransaction", "validAfter",
  ]);
  assert.equal(p.from, f.BUYER);
  assert.equal(p.maxAmount, "10000");
  assert.equal(p.deposit, "10000");
  assert.equal(p.authorizedSigner, f.AUTHORIZER);
  assert.equal(p.openSlot, String(f.RECENT_SLOT), "a decimal string, as @x402/svm and solana-pay-kit read it");
  assert.match(p.nonce, /^\d+$/);
  assert.equal(p.channelId, channelOf(BigInt(p.nonce), f.RECENT_SLOT));
  assert.ok(p.validAfter >= before && p.validAfter <= after);
  assert.equal(p.expiresAt, p.validAfter + 300, "now + maxTimeoutSeconds");
  assert.equal(payment.reference, null, "order-42 holds no reference");

  const { tx, message } = f.decodeTx(p.openTransaction);
  assert.ok(f.verifyBuyer(tx), "the buyer signed");
  assert.equal(tx.signatures[f.FEE_PAYER], null, "the fee payer's slot left for the seller");
  const open = f.resolve(message, message.instructions[2]);
  assert.equal(open.program, PAYMENT_CHANNELS_PROGRAM);
  assert.ok(!message.staticAccounts.includes(f.key(4)));
  assert.deepEqual([...open.data.subarray(1, 9)], le(BigInt(p.nonce), 8));
});

test("upto: the slot from the ledger when the offer has none; a random memo when it has none", async () => {
  const offered = f.uptoOffer();
  const { recentSlot, memo, ...extra } = offered.extra;
  void recentSlot, void memo;
  offered.extra = extra;
  const challenge = parseChallenge(f.challengeV2([offered]));
  const sign = async (sources) => createPayment(challenge, challenge.offers[0], await f.buyerSigner(), sources);
  await assert.rejects(sign({ mints: { [f.USDC_DEVNET]: USDC } }), /no extra.recentSlot and no rpcUrl/);
  const payment = await sign({ mints: { [f.USDC_DEVNET]: USDC }, getSlot: async () => 777 });
  assert.equal(payment.payload.openSlot, "777");
  const { message } = f.decodeTx(payment.payload.openTransaction);
  assert.match(Buffer.from(f.resolve(message, message.instructions[3]).data).toString(), /^[0-9a-f]{32}$/);
});

test("upto: refuses what the channel could not keep: a payer as fee payer, a grace period, a token program", async () => {
  const refused = async (offered, pattern, sources = { mints: { [f.USDC_DEVNET]: USDC } }) => {
    const challenge = parseChallenge(f.challengeV2([offered]));
    let signed = 0;
    const inner = await f.buyerSigner();
    const signer = { address: inner.address, signTransactions: async (t) => (signed++, inner.signTransactions(t)) };
    await assert.rejects(createPayment(challenge, challenge.offers[0], signer, sources), (e) => {
      assert.ok(e instanceof X402Error);
      assert.equal(e.code, "no_payable_offer");
      assert.match(e.message, pattern);
      return true;
    });
    assert.equal(signed, 0, "nothing signed");
  };
  const withExtra = (more) => {
    const o = f.uptoOffer();
    o.extra = { ...o.extra, ...more };
    return o;
  };
  await refused(withExtra({ feePayer: f.BUYER }), /payer may not be the offer's fee payer/);
  for (const delay of [0, -1, 1.5, "3600", 2 ** 32, undefined]) {
    await refused(withExtra({ withdrawDelay: delay }), /withdrawDelay/);
  }
  // The mint is classic Token: an offer naming Token-2022 would open no channel.
  await refused(withExtra({ tokenProgram: TOKEN_2022_PROGRAM }), /token program .* not the offer's/);
  // A slot this client cannot hold exactly is refused.
  for (const slot of ["soon", "-1", "18446744073709551615", 2 ** 53, 1.5]) {
    await refused(withExtra({ recentSlot: slot }), /recentSlot/);
  }
  await refused(withExtra({ memo: "m".repeat(257) }), /memo/);
  await refused(withExtra({ paymentFlow: "push" }), /paymentFlow/);
  await refused(f.uptoOffer({ maxTimeoutSeconds: 0 }), /no time/);
  await refused(withExtra({}), /withholds/, { mints: { [f.USDC_DEVNET]: { ...USDC, deliversInFull: false } } });
});

test("upto: the policy caps the maximum, and upto is preferred only when named", () => {
  const policy = (max) => ({ networks: [f.DEVNET], maxPerRequest: max });
  const upto = parseChallenge(f.challengeV2([f.uptoOffer()]));
  assert.throws(() => chooseOffer(upto, policy(9_999)), (e) => e.code === "policy" && /amount 10000 is above maxPerRequest/.test(e.message));
  // Offered alone, it is paid under the default schemes.
  assert.equal(chooseOffer(upto, policy(10_000)).scheme, "upto");

  const both = parseChallenge(f.challengeV2([f.uptoOffer(), f.exactOffer()]));
  assert.equal(chooseOffer(both, policy(10_000)).scheme, "exact");
  assert.equal(chooseOffer(both, policy(10_000), ["upto", "exact"]).scheme, "upto");
});

/** One request of an upto-only 402 through a mock server answering `settlement`. */
async function payMetered(settlement, policy = { networks: [f.DEVNET], maxPerRequest: 10_000 }) {
  const sent = [];
  const fetch = async (_url, init) => {
    const headers = new Headers(init?.headers);
    if (!headers.has("PAYMENT-SIGNATURE")) return f.response402(f.challengeV2([f.uptoOffer()]));
    sent.push(decodeHeader(headers.get("PAYMENT-SIGNATURE")));
    return new Response("metered", { status: 200, headers: { "PAYMENT-RESPONSE": encodeHeader(settlement) } });
  };
  const result = await fetchWithPayment("http://x/metered", undefined, { fetch, signer: await f.buyerSigner(), policy }).catch((e) => e);
  return { result, sent };
}

const settled = (amount) => ({
  success: true,
  transaction: "5distribute",
  network: f.DEVNET,
  payer: f.BUYER,
  ...(amount === undefined ? {} : { amount }),
});

test("upto: the caller gets what was settled of the maximum; budgeted at the maximum", async () => {
  const policy = { networks: [f.DEVNET], maxPerRequest: 10_000 };
  const { result, sent } = await payMetered(settled("2500"), policy);
  assert.equal(sent.length, 1);
  assert.equal(sent[0].accepted.scheme, "upto");
  assert.equal(await result.response.text(), "metered");
  assert.deepEqual(result.charged, { amount: 2_500n, maximum: 10_000n });
  assert.equal(spentUnder(policy), 10_000n, "the whole maximum was escrowed");
  // A seller that does not say: the most it can have taken.
  assert.deepEqual((await payMetered(settled(undefined))).result.charged, { amount: 10_000n, maximum: 10_000n });
  assert.deepEqual((await payMetered(settled("10000"))).result.charged, { amount: 10_000n, maximum: 10_000n });
});

test("upto: a settlement claiming more than the maximum is an error the caller sees", async () => {
  const { result, sent } = await payMetered(settled("10001"));
  assert.equal(sent.length, 1);
  assert.ok(result instanceof X402Error, String(result));
  assert.equal(result.code, "settled_above_maximum");
  assert.match(result.message, /10001 .* maximum of 10000 .* 5distribute/);
  assert.equal(result.payment.scheme, "upto");
  assert.equal(result.response.status, 200);
});
