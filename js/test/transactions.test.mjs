import { test } from "node:test";
import assert from "node:assert/strict";
import {
  createPayment,
  parseChallenge,
  decodeHeader,
  X402Error,
  PAY_DISCRIMINATOR,
  RECEIPT_PROGRAM,
  SYSTEM_PROGRAM,
  TOKEN_PROGRAM,
  COMPUTE_BUDGET_PROGRAM,
  MEMO_PROGRAM,
  receiptAddress,
  associatedTokenAddress,
} from "../dist/index.js";
import * as f from "./fixtures.mjs";

const u64 = (n) => {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(n));
  return [...b];
};

test("kit's PDA and ATA derivations agree with an independent one", async () => {
  assert.equal(await receiptAddress(RECEIPT_PROGRAM, f.REFERENCE_BYTES), f.RECEIPT);
  assert.equal(await associatedTokenAddress(f.BUYER, f.USDC_DEVNET, TOKEN_PROGRAM), f.ata(f.BUYER, f.USDC_DEVNET));
});

test("receipt: a legacy transaction with the one pay instruction, fee payer first, signed by the buyer", async () => {
  const challenge = parseChallenge(f.challengeV2());
  const offer = challenge.offers[0];
  const payment = await createPayment(challenge, offer, await f.buyerSigner());
  assert.equal(payment.headerName, "PAYMENT-SIGNATURE");
  const header = decodeHeader(payment.headerValue);
  assert.deepEqual(header.accepted, f.receiptOffer());
  assert.deepEqual(header.resource, f.RESOURCE);
  assert.equal(header.x402Version, 2);
  assert.deepEqual(Object.keys(header.payload), ["transaction"]);

  const { tx, message, wire } = f.decodeTx(header.payload.transaction);
  assert.equal(message.version, "legacy");
  assert.ok(wire[0] === 2, "two signatures on the wire");
  assert.equal(Object.keys(tx.signatures).length, 2);
  assert.equal(message.header.numSignerAccounts, 2);
  assert.equal(message.staticAccounts[0], f.FEE_PAYER);
  assert.equal(message.staticAccounts[1], f.BUYER);
  assert.equal(tx.signatures[f.FEE_PAYER], null);
  assert.ok(f.verifyBuyer(tx), "buyer signature verifies");
  assert.equal(message.lifetimeToken, f.BLOCKHASH);
  assert.equal(message.instructions.length, 1);
  const pay = f.resolve(message, message.instructions[0]);
  assert.equal(pay.program, RECEIPT_PROGRAM);
  assert.deepEqual(pay.accounts, [
    f.BUYER,
    f.FEE_PAYER,
    f.RECEIPT,
    f.USDC_DEVNET,
    f.ata(f.BUYER, f.USDC_DEVNET),
    f.PAY_TO,
    f.ata(f.PAY_TO, f.USDC_DEVNET),
    TOKEN_PROGRAM,
    SYSTEM_PROGRAM,
  ]);
  const expiresAt = Buffer.alloc(8);
  expiresAt.writeBigInt64LE(BigInt(f.EXPIRES_AT));
  assert.deepEqual([...pay.data], [...PAY_DISCRIMINATOR, ...f.REFERENCE_BYTES, ...u64(10000), ...expiresAt]);
  assert.deepEqual([...PAY_DISCRIMINATOR], [119, 18, 216, 65, 192, 117, 122, 220]);
  // Writability as the program declares it.
  const { numSignerAccounts, numReadonlySignerAccounts, numReadonlyNonSignerAccounts } = message.header;
  const n = message.staticAccounts.length;
  const writable = (a) => {
    const i = message.staticAccounts.indexOf(a);
    return i < numSignerAccounts ? i < numSignerAccounts - numReadonlySignerAccounts : i < n - numReadonlyNonSignerAccounts;
  };
  assert.deepEqual(pay.accounts.map(writable), [false, true, true, false, true, false, true, false, false]);
});

test("receipt: refuses an extra.receipt that is not the reference's PDA", async () => {
  const bad = f.receiptOffer();
  bad.extra = { ...bad.extra, receipt: f.key(9) };
  const challenge = parseChallenge(f.challengeV2([bad]));
  await assert.rejects(createPayment(challenge, challenge.offers[0], await f.buyerSigner()), (e) => {
    assert.ok(e instanceof X402Error);
    assert.equal(e.code, "no_payable_offer");
    assert.match(e.message, /receipt address/);
    return true;
  });
});

test("exact: a v0 transaction of limit, price, TransferChecked, Memo", async () => {
  const challenge = parseChallenge(f.challengeV2([f.exactOffer()]));
  const payment = await createPayment(challenge, challenge.offers[0], await f.buyerSigner());
  const header = decodeHeader(payment.headerValue);
  assert.deepEqual(header.accepted, f.exactOffer());
  const { tx, message, wire } = f.decodeTx(header.payload.transaction);
  assert.equal(message.version, 0);
  assert.deepEqual(message.addressTableLookups ?? [], []);
  assert.equal(wire[0], 2);
  assert.equal(message.header.numSignerAccounts, 2);
  assert.equal(message.staticAccounts[0], f.FEE_PAYER);
  assert.equal(message.staticAccounts[1], f.BUYER);
  assert.ok(f.verifyBuyer(tx));
  assert.equal(message.lifetimeToken, f.BLOCKHASH);
  const ixs = message.instructions.map((ix) => f.resolve(message, ix));
  assert.deepEqual(ixs.map((i) => i.program), [COMPUTE_BUDGET_PROGRAM, COMPUTE_BUDGET_PROGRAM, TOKEN_PROGRAM, MEMO_PROGRAM]);
  assert.deepEqual([...ixs[0].data], [2, 0x20, 0x4e, 0, 0]); // 20_000
  assert.deepEqual([...ixs[1].data], [3, ...u64(1)]);
  assert.deepEqual([...ixs[2].data], [12, ...u64(10000), 6]);
  assert.deepEqual(ixs[2].accounts, [f.ata(f.BUYER, f.USDC_DEVNET), f.USDC_DEVNET, f.ata(f.PAY_TO, f.USDC_DEVNET), f.BUYER]);
  assert.deepEqual(ixs[3].accounts, []);
  assert.equal(Buffer.from(ixs[3].data).toString(), "order-42");
  assert.ok(!ixs.some((i) => i.accounts.includes(f.FEE_PAYER)), "fee payer in no instruction");
});

test("exact: a random 32-hex memo when the offer has none; unknown mint needs rpcUrl or mints", async () => {
  const offer = f.exactOffer();
  offer.extra = { feePayer: f.FEE_PAYER, recentBlockhash: f.BLOCKHASH };
  const challenge = parseChallenge(f.challengeV2([offer]));
  const payment = await createPayment(challenge, challenge.offers[0], await f.buyerSigner());
  const { message } = f.decodeTx(decodeHeader(payment.headerValue).payload.transaction);
  const memo = Buffer.from(f.resolve(message, message.instructions[3]).data).toString();
  assert.match(memo, /^[0-9a-f]{32}$/);

  const other = parseChallenge(f.challengeV2([f.exactOffer({ asset: f.key(7) })]));
  await assert.rejects(createPayment(other, other.offers[0], await f.buyerSigner()), /unknown/);
  const viaOption = await createPayment(other, other.offers[0], await f.buyerSigner(), {
    mints: { [f.key(7)]: { decimals: 9, tokenProgram: TOKEN_PROGRAM } },
  });
  const m = f.decodeTx(decodeHeader(viaOption.headerValue).payload.transaction).message;
  assert.equal(f.resolve(m, m.instructions[2]).data.at(-1), 9);
});
