/**
 * The `batch-settlement` scheme on Solana (x402's scheme_batch_settlement_svm.md), client
 * mode only: the buyer deposits once into a channel of the payment-channels program, then
 * pays each request with a cumulative voucher it signs itself. What an offer's `extra`
 * says, the payload's variants, the voucher message and the deposit transactions, as the
 * Rust side (protocol/src/scheme/batch) reads and builds them.
 */
import {
  address,
  getBase58Decoder,
  getBase58Encoder,
  getI64Encoder,
  getPublicKeyFromAddress,
  getU64Encoder,
  verifySignature,
  blockhash as toBlockhash,
  type Address,
  type Instruction,
  type SignatureBytes,
  type Transaction,
} from "@solana/kit";
import { getSetComputeUnitLimitInstruction, getSetComputeUnitPriceInstruction } from "@solana-program/compute-budget";
import { getAddMemoInstruction } from "@solana-program/memo";

import { EXACT_COMPUTE_UNIT_PRICE, MAX_MEMO_BYTES, MEMO_PROGRAM, UPTO_COMPUTE_UNIT_LIMIT, type MintInfo } from "./constants.js";
import { X402Error } from "./errors.js";
import { signerAddress, signMessageWith, type PaymentSigner } from "./signer.js";
import {
  channelAddress,
  channelOpenInstruction,
  checkDelivers,
  randomMemo,
  readSlot,
  sponsoredTransaction,
  topUpInstruction,
  type ChannelPlan,
} from "./transactions.js";
import type { Offer } from "./wire.js";

/** The x402 scheme name. */
export const BATCH_SETTLEMENT = "batch-settlement";

/** The voucher signer of the only mode spoken here: the buyer. */
export const CLIENT_VOUCHER_SIGNER = "client";

/** The forced-close grace period an offer may set, in seconds: 15 minutes to 30 days, as the specification bounds it. */
export const MIN_WITHDRAW_DELAY = 900;
export const MAX_WITHDRAW_DELAY = 2_592_000;

/** The compute-unit limit of a channel's `open` (two accounts created, the deposit moved). */
export const BATCH_OPEN_COMPUTE_UNIT_LIMIT = UPTO_COMPUTE_UNIT_LIMIT;
/** The compute-unit limit of a `top_up`: one token transfer. */
export const TOP_UP_COMPUTE_UNIT_LIMIT = 40_000;

/** The length of the voucher message: magic, channel, amount, expiry. */
export const VOUCHER_MESSAGE_BYTES = 50;

/** The specification's reason codes this client acts on. */
export const BATCH_CUMULATIVE_MISMATCH = "invalid_batch_settlement_svm_cumulative_amount_mismatch";
export const BATCH_CHANNEL_CLOSING = "invalid_batch_settlement_svm_channel_closing";
export const BATCH_CHANNEL_STATE = "invalid_batch_settlement_svm_channel_state";
export const BATCH_CLOSE_STATE = "invalid_batch_settlement_svm_close_state";

const U64_MAX = (1n << 64n) - 1n;

/** The fields of a `batch-settlement` offer's `extra`, checked. */
export interface BatchTerms {
  /** The seller's fee payer: it co-signs deposits, pays their fees and the channel's rent, and is the channel's payee. */
  feePayer: string;
  /** The seller's key whose word closes the channel cooperatively; the `open` binds it in a Memo. */
  receiverAuthorizer: string;
  /** Seconds, in [MIN_WITHDRAW_DELAY, MAX_WITHDRAW_DELAY] and at least maxTimeoutSeconds. */
  withdrawDelay: number;
  tokenProgram: string;
  memo: string | null;
  recentBlockhash: string | null;
  recentSlot: number | null;
  /** The deposit the seller suggests, base units: at least one request. */
  minDeposit: bigint | null;
}

/** A decimal u64, digits only; null otherwise. */
export function decimalU64(value: unknown): bigint | null {
  if (typeof value !== "string" || !/^\d{1,20}$/.test(value)) return null;
  const n = BigInt(value);
  return n <= U64_MAX ? n : null;
}

/**
 * Reads a `batch-settlement` offer's extra as the Rust side does; a string says what is
 * missing or malformed. An offer a buyer must not escrow under is refused: a grace period
 * out of the specification's range or shorter than the offer's timeout, the server mode
 * (an operator signing vouchers could take the whole deposit), a suggested deposit below
 * one request.
 */
export function batchTerms(offer: Offer): BatchTerms | string {
  const x = offer.extra;
  const str = (k: string) => (typeof x[k] === "string" ? (x[k] as string) : null);
  if (x.paymentFlow !== undefined && x.paymentFlow !== "authorization") return "extra.paymentFlow is not authorization";
  if ((x.voucherSigner !== undefined && x.voucherSigner !== CLIENT_VOUCHER_SIGNER) || x.operator !== undefined) {
    return "extra.voucherSigner: only the client mode (the buyer signs its vouchers) is paid";
  }
  const feePayer = str("feePayer");
  const receiverAuthorizer = str("receiverAuthorizer");
  const tokenProgram = str("tokenProgram");
  if (!feePayer) return "no extra.feePayer";
  if (!receiverAuthorizer) return "no extra.receiverAuthorizer";
  if (!tokenProgram) return "no extra.tokenProgram";
  const delay = x.withdrawDelay;
  if (
    typeof delay !== "number" ||
    !Number.isInteger(delay) ||
    delay < MIN_WITHDRAW_DELAY ||
    delay > MAX_WITHDRAW_DELAY ||
    delay < offer.maxTimeoutSeconds
  ) {
    return `extra.withdrawDelay is not a whole number of seconds in [${MIN_WITHDRAW_DELAY}, ${MAX_WITHDRAW_DELAY}] and at least maxTimeoutSeconds`;
  }
  const memo = x.memo === undefined ? null : str("memo");
  if (x.memo !== undefined && (memo === null || new TextEncoder().encode(memo).length > MAX_MEMO_BYTES)) {
    return "bad extra.memo";
  }
  let minDeposit: bigint | null = null;
  if (x.minDeposit !== undefined) {
    minDeposit = decimalU64(x.minDeposit);
    if (minDeposit === null || minDeposit < offer.amount || minDeposit === 0n) return "bad extra.minDeposit (below one request)";
  }
  const recentSlot = x.recentSlot === undefined ? null : readSlot(x.recentSlot);
  if (x.recentSlot !== undefined && recentSlot === null) return "bad extra.recentSlot";
  const recentBlockhash = str("recentBlockhash");
  try {
    for (const a of [feePayer, receiverAuthorizer, tokenProgram, offer.asset, offer.payTo]) address(a);
    if (recentBlockhash !== null) toBlockhash(recentBlockhash);
  } catch {
    return "malformed address or blockhash";
  }
  return { feePayer, receiverAuthorizer, withdrawDelay: delay, tokenProgram, memo, recentBlockhash, recentSlot, minDeposit };
}

/** The receiver-authorizer binding every `open` carries as a Memo of its own. */
export function bindingMemo(receiverAuthorizer: string): string {
  return `x402:batch-settlement:svm:rcvauth:v1:${receiverAuthorizer}`;
}

/** A channel's configuration, as every payment names it (with the offer's fee payer it derives the channel). */
export interface ChannelConfig {
  payer: string;
  /** Who signs the vouchers: the channel's authorized signer (here the buyer's wallet). */
  payerAuthorizer: string;
  receiver: string;
  receiverAuthorizer: string;
  token: string;
  withdrawDelay: number;
  /** A decimal u64. */
  salt: string;
  openSlot: number;
  voucherSigner?: string;
}

/** A cumulative voucher on the wire. */
export interface BatchVoucher {
  channelId: string;
  /** Base units, a decimal string. */
  maxClaimableAmount: string;
  /** Always 0 here: a voucher never expires. */
  expiresAt: number;
  /** Ed25519, base58. */
  signature: string;
}

/** The `payload` of a `batch-settlement` payment in the client mode. */
export type BatchPayload =
  | {
      type: "deposit";
      channelConfig: ChannelConfig;
      voucher: BatchVoucher;
      /** Base units (decimal string), and the buyer-signed `open` or `top_up`, base64. */
      deposit: { amount: string; transaction: string };
    }
  | { type: "voucher"; channelConfig: ChannelConfig; voucher: BatchVoucher }
  | { type: "refund"; channelConfig: ChannelConfig; voucher: BatchVoucher; transaction?: string };

/** A channel as the seller sees it (a settlement's or a corrective challenge's extra.channelState). */
export interface ChannelState {
  channelId: string;
  balance: string;
  totalClaimed: string;
  withdrawRequestedAt: number;
  chargedCumulativeAmount?: string;
}

/** The voucher the seller holds, in a corrective challenge: the buyer's own, or nothing is adopted. */
export interface VoucherState {
  signedMaxClaimable: string;
  expiresAt: number;
  signature: string;
}

/**
 * What the channel's authorized signer signs: `0x56 0x01 || channel (32) || cumulative
 * u64 le || expiresAt i64 le`, 50 bytes.
 */
export function voucherMessage(channel: string, cumulative: bigint, expiresAt: bigint | number = 0n): Uint8Array {
  const message = new Uint8Array(VOUCHER_MESSAGE_BYTES);
  message[0] = 0x56;
  message[1] = 0x01;
  message.set(getBase58Encoder().encode(address(channel)), 2);
  message.set(getU64Encoder().encode(cumulative), 34);
  message.set(getI64Encoder().encode(BigInt(expiresAt)), 42);
  return message;
}

/** Whether `signature` (base58) is `signer`'s Ed25519 signature of the voucher for (channel, cumulative, expiresAt). */
export async function verifyVoucher(
  channel: string,
  cumulative: bigint,
  expiresAt: bigint | number,
  signature: string,
  signer: string,
): Promise<boolean> {
  let bytes: Uint8Array;
  let message: Uint8Array;
  try {
    bytes = new Uint8Array(getBase58Encoder().encode(signature));
    message = voucherMessage(channel, cumulative, expiresAt);
  } catch {
    return false;
  }
  if (bytes.length !== 64) return false;
  try {
    const key = await getPublicKeyFromAddress(address(signer));
    return await verifySignature(key, bytes as SignatureBytes, message);
  } catch {
    return false;
  }
}

/**
 * `signer`'s voucher that `channel` may settle up to `cumulative` base units, never
 * expiring: a raw Ed25519 signature of the voucher message by the wallet's key (its
 * message signing). Checked before it leaves: a wallet that signs something else (a
 * prefixed message) cannot pay this scheme.
 */
export async function signVoucher(signer: PaymentSigner, channel: string, cumulative: bigint): Promise<BatchVoucher> {
  if (cumulative < 0n || cumulative > U64_MAX) throw new Error(`cumulative ${cumulative} is not a u64`);
  const signature = getBase58Decoder().decode(await signMessageWith(signer, voucherMessage(channel, cumulative, 0n)));
  if (!(await verifyVoucher(channel, cumulative, 0n, signature, signerAddress(signer)))) {
    throw new X402Error(
      "wallet_rejected",
      "The wallet's message signature is not a plain Ed25519 signature of the voucher by its key: it cannot sign batch-settlement vouchers.",
    );
  }
  return { channelId: channel, maxClaimableAmount: cumulative.toString(), expiresAt: 0, signature };
}

/** The channel configuration `payer` opens under `offer` with `salt` and `openSlot`: the buyer signs its own vouchers. */
export function channelConfigOf(offer: Offer, terms: BatchTerms, payer: string, salt: bigint, openSlot: number): ChannelConfig {
  return {
    payer,
    payerAuthorizer: payer,
    receiver: offer.payTo,
    receiverAuthorizer: terms.receiverAuthorizer,
    token: offer.asset,
    withdrawDelay: terms.withdrawDelay,
    salt: salt.toString(),
    openSlot,
  };
}

/** The plan of `config`'s channel under `terms`, holding `deposit`. */
export function batchPlan(config: ChannelConfig, terms: Pick<BatchTerms, "feePayer" | "tokenProgram">, deposit: bigint): ChannelPlan {
  return {
    mint: config.token,
    tokenProgram: terms.tokenProgram,
    payTo: config.receiver,
    feePayer: terms.feePayer,
    authorizedSigner: config.payerAuthorizer,
    deposit,
    gracePeriod: config.withdrawDelay,
  };
}

/** The channel's address: the program's PDA of its payer, the fee payer (payee), mint, signer, salt and slot. */
export function batchChannelAddress(config: ChannelConfig, feePayer: string): Promise<Address> {
  const salt = decimalU64(config.salt);
  if (salt === null) throw new Error("channelConfig.salt is not a decimal u64");
  return channelAddress({
    payer: config.payer,
    payee: feePayer,
    mint: config.token,
    authorizedSigner: config.payerAuthorizer,
    salt,
    openSlot: config.openSlot,
  });
}

export interface BatchOpenInputs {
  /** The buyer: the channel's payer and its voucher signer. */
  payer: string;
  /** The token program of offer.asset, from a ledger or a trusted table: never the seller. */
  mint: MintInfo;
  blockhash: string;
  salt: bigint;
  openSlot: number;
  /** Base units escrowed. */
  deposit: bigint;
  /** Default: extra.memo, else 16 random bytes as hex. */
  memo?: string;
}

function checkParties(offer: Offer, terms: BatchTerms, payer: string, mint: MintInfo): void {
  // The program needs a payee apart from the payer; as fee payer the buyer would pay the seller's costs.
  if (terms.feePayer === payer) throw new Error("the payer may not be the offer's fee payer");
  if (mint.tokenProgram !== terms.tokenProgram) {
    throw new Error(`mint ${offer.asset} is of token program ${mint.tokenProgram}, not the offer's ${terms.tokenProgram}`);
  }
  checkDelivers(offer.asset, mint);
}

function checkAmount(name: string, amount: bigint): void {
  if (amount <= 0n || amount > U64_MAX) throw new Error(`${name} ${amount} is not a positive u64`);
}

function memoInstruction(text: string): Instruction {
  return getAddMemoInstruction({ memo: text }, { programAddress: address(MEMO_PROGRAM) });
}

/**
 * The buyer's `open` of a new channel, unsigned: v0, fee payer = extra.feePayer (its
 * signature left for the seller), SetComputeUnitLimit, SetComputeUnitPrice, `open` of
 * `deposit` with the buyer as the voucher signer, the seller's memo (or a random one),
 * and the receiver-authorizer binding Memo.
 */
export async function buildBatchOpenTransaction(
  offer: Offer,
  inputs: BatchOpenInputs,
): Promise<{ transaction: Transaction; channel: Address; channelConfig: ChannelConfig }> {
  const terms = batchTerms(offer);
  if (typeof terms === "string") throw new Error(terms);
  checkParties(offer, terms, inputs.payer, inputs.mint);
  checkAmount("the deposit", inputs.deposit);
  const channelConfig = channelConfigOf(offer, terms, inputs.payer, inputs.salt, inputs.openSlot);
  const { instruction: open, channel } = await channelOpenInstruction(batchPlan(channelConfig, terms, inputs.deposit), {
    payer: inputs.payer,
    salt: inputs.salt,
    openSlot: inputs.openSlot,
  });
  const instructions: Instruction[] = [
    getSetComputeUnitLimitInstruction({ units: BATCH_OPEN_COMPUTE_UNIT_LIMIT }),
    getSetComputeUnitPriceInstruction({ microLamports: EXACT_COMPUTE_UNIT_PRICE }),
    open,
    memoInstruction(inputs.memo ?? terms.memo ?? randomMemo()),
    memoInstruction(bindingMemo(terms.receiverAuthorizer)),
  ];
  return { transaction: sponsoredTransaction(terms.feePayer, inputs.blockhash, instructions), channel, channelConfig };
}

export interface BatchTopUpInputs {
  payer: string;
  mint: MintInfo;
  blockhash: string;
  /** Base units added to the escrow. */
  amount: bigint;
  memo?: string;
}

/**
 * The buyer's `top_up` of its open channel of `channelConfig`, unsigned: v0, fee payer =
 * extra.feePayer (as fee payer only), SetComputeUnitLimit, SetComputeUnitPrice,
 * `top_up`, a Memo.
 */
export async function buildBatchTopUpTransaction(
  offer: Offer,
  channelConfig: ChannelConfig,
  inputs: BatchTopUpInputs,
): Promise<{ transaction: Transaction; channel: Address }> {
  const terms = batchTerms(offer);
  if (typeof terms === "string") throw new Error(terms);
  checkParties(offer, terms, inputs.payer, inputs.mint);
  checkAmount("the top-up", inputs.amount);
  if (channelConfig.payer !== inputs.payer) throw new Error("the channel is another payer's");
  const channel = await batchChannelAddress(channelConfig, terms.feePayer);
  const instructions: Instruction[] = [
    getSetComputeUnitLimitInstruction({ units: TOP_UP_COMPUTE_UNIT_LIMIT }),
    getSetComputeUnitPriceInstruction({ microLamports: EXACT_COMPUTE_UNIT_PRICE }),
    await topUpInstruction(batchPlan(channelConfig, terms, 0n), channel, inputs.payer, inputs.amount),
    memoInstruction(inputs.memo ?? terms.memo ?? randomMemo()),
  ];
  return { transaction: sponsoredTransaction(terms.feePayer, inputs.blockhash, instructions), channel };
}
