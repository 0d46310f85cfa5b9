/** The schemes' transactions, built as the Rust verifier expects them. */
import {
  AccountRole,
  address,
  appendTransactionMessageInstructions,
  blockhash as toBlockhash,
  compileTransaction,
  createNoopSigner,
  createTransactionMessage,
  getAddressEncoder,
  getArrayEncoder,
  getBase16Decoder,
  getBase58Encoder,
  getProgramDerivedAddress,
  getStructEncoder,
  getU16Encoder,
  getU32Encoder,
  getU64Decoder,
  getU64Encoder,
  getU8Encoder,
  setTransactionMessageFeePayer,
  setTransactionMessageLifetimeUsingBlockhash,
  type Address,
  type Instruction,
  type Transaction,
} from "@solana/kit";
import { getSetComputeUnitLimitInstruction, getSetComputeUnitPriceInstruction } from "@solana-program/compute-budget";
import { getAddMemoInstruction } from "@solana-program/memo";
import { findAssociatedTokenPda, getTransferCheckedInstruction } from "@solana-program/token";

import {
  ASSOCIATED_TOKEN_PROGRAM,
  EXACT_COMPUTE_UNIT_LIMIT,
  EXACT_COMPUTE_UNIT_PRICE,
  MAX_MEMO_BYTES,
  MEMO_PROGRAM,
  PAYMENT_CHANNELS_PROGRAM,
  RENT_SYSVAR,
  SYSTEM_PROGRAM,
  TOKEN_2022_PROGRAM,
  TOKEN_PROGRAM,
  UPTO_COMPUTE_UNIT_LIMIT,
  type MintInfo,
} from "./constants.js";
import { findReceiptPda, getPayInstructionAsync } from "./generated/index.js";
import type { Offer } from "./wire.js";

const NO_EXPIRY = (1n << 63n) - 1n;

/** The associated token account of `owner` for `mint` under `tokenProgram`. */
export async function associatedTokenAddress(owner: string, mint: string, tokenProgram: string): Promise<Address> {
  const [ata] = await findAssociatedTokenPda({
    owner: address(owner),
    tokenProgram: address(tokenProgram),
    mint: address(mint),
  });
  return ata;
}

/** The receipt PDA of `reference` (32 bytes) under `programId`: ["receipt", reference]. */
export async function receiptAddress(programId: string, reference: Uint8Array): Promise<Address> {
  const [pda] = await findReceiptPda({ reference }, { programAddress: address(programId) });
  return pda;
}

/** The fields of a sponsored `receipt` offer's `extra`, checked. */
export interface ReceiptTerms {
  programId: string;
  reference: Uint8Array;
  receipt: string;
  expiresAt: bigint;
  decimals: number;
  tokenProgram: string;
  feePayer: string;
  recentBlockhash: string;
}

/** Reads a sponsored receipt offer's extra; a string says what is missing or malformed. */
export function receiptTerms(offer: Offer): ReceiptTerms | string {
  const x = offer.extra;
  const str = (k: string) => (typeof x[k] === "string" ? (x[k] as string) : null);
  const programId = str("programId");
  const reference = str("reference");
  const receipt = str("receipt");
  const tokenProgram = str("tokenProgram");
  const feePayer = str("feePayer");
  const recentBlockhash = str("recentBlockhash");
  if (!feePayer || !recentBlockhash) return "not sponsored (extra.feePayer and extra.recentBlockhash are required)";
  if (!programId) return "no extra.programId";
  if (!reference) return "no extra.reference";
  if (!receipt) return "no extra.receipt";
  if (!tokenProgram) return "no extra.tokenProgram";
  if (typeof x.expiresAt !== "number" || !Number.isSafeInteger(x.expiresAt)) return "bad extra.expiresAt";
  if (typeof x.decimals !== "number" || !Number.isInteger(x.decimals)) return "bad extra.decimals";
  let ref: Uint8Array;
  try {
    for (const a of [programId, receipt, tokenProgram, feePayer, offer.asset, offer.payTo]) address(a);
    toBlockhash(recentBlockhash);
    ref = new Uint8Array(getBase58Encoder().encode(reference));
  } catch {
    return "malformed address, blockhash or reference";
  }
  if (ref.length !== 32) return "extra.reference is not 32 bytes";
  return {
    programId,
    reference: ref,
    receipt,
    expiresAt: BigInt(x.expiresAt),
    decimals: x.decimals,
    tokenProgram,
    feePayer,
    recentBlockhash,
  };
}

/** The `pay` instruction of the receipt program for `terms`, from `payer`. */
export async function payInstruction(offer: Offer, terms: ReceiptTerms, payer: string): Promise<Instruction> {
  const receipt = await receiptAddress(terms.programId, terms.reference);
  if (receipt !== terms.receipt) {
    throw new Error(`extra.receipt ${terms.receipt} is not the reference's receipt address ${receipt}`);
  }
  // Both sign the compiled message later (the payer's wallet, then the verifier):
  // here they only mark their accounts as signers.
  return getPayInstructionAsync(
    {
      payer: createNoopSigner(address(payer)),
      rentPayer: createNoopSigner(address(terms.feePayer)),
      receipt,
      mint: address(offer.asset),
      payerToken: await associatedTokenAddress(payer, offer.asset, terms.tokenProgram),
      payee: address(offer.payTo),
      tokenProgram: address(terms.tokenProgram),
      reference: terms.reference,
      amount: offer.amount,
      expiresAt: terms.expiresAt,
    },
    { programAddress: address(terms.programId) },
  );
}

/**
 * The sponsored `receipt` transaction, unsigned: legacy, fee payer = extra.feePayer,
 * lifetime = extra.recentBlockhash, one `pay` instruction.
 */
export async function buildReceiptTransaction(offer: Offer, payer: string): Promise<Transaction> {
  const terms = receiptTerms(offer);
  if (typeof terms === "string") throw new Error(terms);
  if (payer === terms.feePayer) throw new Error("the payer may not be the offer's fee payer");
  const pay = await payInstruction(offer, terms, payer);
  const message = appendTransactionMessageInstructions(
    [pay],
    setTransactionMessageLifetimeUsingBlockhash(
      { blockhash: toBlockhash(terms.recentBlockhash), lastValidBlockHeight: NO_EXPIRY },
      setTransactionMessageFeePayer(address(terms.feePayer), createTransactionMessage({ version: "legacy" })),
    ),
  );
  return compileTransaction(message) as Transaction;
}

export interface ExactInputs {
  /** The buyer. */
  payer: string;
  /** Decimals and token program of offer.asset, from a ledger or a trusted table: never the seller. */
  mint: MintInfo;
  blockhash: string;
  /** Default: extra.memo, else 16 random bytes as hex. */
  memo?: string;
}

/** A random memo: 16 random bytes as hex, keeping identical payments distinct. */
export function randomMemo(): string {
  return getBase16Decoder().decode(crypto.getRandomValues(new Uint8Array(16)));
}

/**
 * The `exact` transaction, unsigned: v0, fee payer = extra.feePayer, SetComputeUnitLimit,
 * SetComputeUnitPrice, TransferChecked to ATA(payTo), Memo.
 */
export async function buildExactTransaction(offer: Offer, inputs: ExactInputs): Promise<Transaction> {
  const feePayer = offer.extra.feePayer;
  if (typeof feePayer !== "string") throw new Error("no extra.feePayer");
  if (feePayer === inputs.payer) throw new Error("the payer may not be the offer's fee payer");
  checkDelivers(offer.asset, inputs.mint);
  const { tokenProgram, decimals } = inputs.mint;
  const memo = inputs.memo ?? (typeof offer.extra.memo === "string" ? offer.extra.memo : randomMemo());
  const source = await associatedTokenAddress(inputs.payer, offer.asset, tokenProgram);
  const destination = await associatedTokenAddress(offer.payTo, offer.asset, tokenProgram);
  const instructions: Instruction[] = [
    getSetComputeUnitLimitInstruction({ units: EXACT_COMPUTE_UNIT_LIMIT }),
    getSetComputeUnitPriceInstruction({ microLamports: EXACT_COMPUTE_UNIT_PRICE }),
    getTransferCheckedInstruction(
      {
        source,
        mint: address(offer.asset),
        destination,
        // The payer's wallet signs the compiled message: this only marks it a signer.
        authority: createNoopSigner(address(inputs.payer)),
        amount: offer.amount,
        decimals,
      },
      // Token-2022's TransferChecked is Token's, under its own program id.
      { programAddress: address(tokenProgram) },
    ),
    // The Memo program the Rust verifier reads (the package's default is another one).
    getAddMemoInstruction({ memo }, { programAddress: address(MEMO_PROGRAM) }),
  ];
  return sponsoredTransaction(feePayer, inputs.blockhash, instructions);
}

/** Throws unless `mint` is of a token program we know and delivers each transfer whole. */
export function checkDelivers(asset: string, mint: MintInfo): void {
  if (mint.tokenProgram !== TOKEN_PROGRAM && mint.tokenProgram !== TOKEN_2022_PROGRAM) {
    throw new Error(`unknown token program ${mint.tokenProgram}`);
  }
  if (mint.deliversInFull === false) {
    throw new Error(`mint ${asset} withholds part of each transfer (fee or hook): not paid`);
  }
}

/** `instructions` as an unsigned v0 transaction that the seller's `feePayer` pays for. */
export function sponsoredTransaction(feePayer: string, blockhash: string, instructions: Instruction[]): Transaction {
  const message = appendTransactionMessageInstructions(
    instructions,
    setTransactionMessageLifetimeUsingBlockhash(
      { blockhash: toBlockhash(blockhash), lastValidBlockHeight: NO_EXPIRY },
      setTransactionMessageFeePayer(address(feePayer), createTransactionMessage({ version: 0 })),
    ),
  );
  return compileTransaction(message) as Transaction;
}

/** The fields of an `upto` offer's `extra`, checked (x402's scheme_upto_svm.md). */
export interface UptoTerms {
  /** The seller's fee payer: it co-signs the `open`, pays its fee and the channel's rent, and is the channel's payee. */
  feePayer: string;
  /** The seller's key that signs vouchers: the channel's authorized signer. */
  receiverAuthorizer: string;
  /** Seconds, more than zero: the channel's grace period (a u32 on chain). */
  withdrawDelay: number;
  tokenProgram: string;
  memo: string | null;
  recentBlockhash: string | null;
  /** A slot the seller offers as the channel's openSlot; null when it offers none. */
  recentSlot: number | null;
}

const U32_MAX = 2 ** 32 - 1;

/** A slot as an offer may write it: a number, or a decimal string (as solana-pay-kit writes it). */
export function readSlot(value: unknown): number | null {
  const slot = typeof value === "string" && /^\d+$/.test(value) ? Number(value) : value;
  // Held as a number here: it must be one exactly.
  return typeof slot === "number" && Number.isSafeInteger(slot) && slot >= 0 ? slot : null;
}

/** Reads an `upto` offer's extra; a string says what is missing or malformed. */
export function uptoTerms(offer: Offer): UptoTerms | string {
  const x = offer.extra;
  const str = (k: string) => (typeof x[k] === "string" ? (x[k] as string) : null);
  const feePayer = str("feePayer");
  const receiverAuthorizer = str("receiverAuthorizer");
  const tokenProgram = str("tokenProgram");
  if (x.paymentFlow !== undefined && x.paymentFlow !== "escrow") return "extra.paymentFlow is not escrow";
  if (!feePayer) return "no extra.feePayer";
  if (!receiverAuthorizer) return "no extra.receiverAuthorizer";
  if (!tokenProgram) return "no extra.tokenProgram";
  const delay = x.withdrawDelay;
  // No grace period would let the buyer withdraw before the seller settles.
  if (typeof delay !== "number" || !Number.isInteger(delay) || delay <= 0 || delay > U32_MAX) {
    return "extra.withdrawDelay is not a whole number of seconds above zero (a u32)";
  }
  const memo = x.memo === undefined ? null : str("memo");
  if (x.memo !== undefined && (memo === null || new TextEncoder().encode(memo).length > MAX_MEMO_BYTES)) {
    return "bad extra.memo";
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
  return { feePayer, receiverAuthorizer, withdrawDelay: delay, tokenProgram, memo, recentBlockhash, recentSlot };
}

/** Who and what a channel binds, as its address is derived from them. */
export interface ChannelSeeds {
  /** The buyer, who deposits. */
  payer: string;
  /** The seller's fee payer, the channel's zero-share payee. */
  payee: string;
  mint: string;
  authorizedSigner: string;
  /** The payload's `nonce`. */
  salt: bigint;
  openSlot: number;
}

/** The channel's address under the canonical program: ["channel", payer, payee, mint, signer, salt u64 le, openSlot u64 le]. */
export async function channelAddress(seeds: ChannelSeeds): Promise<Address> {
  const key = getAddressEncoder();
  const u64 = getU64Encoder();
  const [pda] = await getProgramDerivedAddress({
    programAddress: address(PAYMENT_CHANNELS_PROGRAM),
    seeds: [
      "channel",
      key.encode(address(seeds.payer)),
      key.encode(address(seeds.payee)),
      key.encode(address(seeds.mint)),
      key.encode(address(seeds.authorizedSigner)),
      u64.encode(seeds.salt),
      u64.encode(BigInt(seeds.openSlot)),
    ],
  });
  return pda;
}

/** The whole of a settlement, in basis points: the seller's single payout. */
const ALL_BPS = 10_000;
const OPEN_DISCRIMINATOR = 1;

/**
 * `open`'s data, as the payment-channels program reads it: discriminator, `salt u64 |
 * deposit u64 | grace_period u32 | open_slot u64 | count u32 | count × (recipient, bps
 * u16)`, all little-endian.
 */
const openDataEncoder = getStructEncoder([
  ["discriminator", getU8Encoder()],
  ["salt", getU64Encoder()],
  ["deposit", getU64Encoder()],
  ["gracePeriod", getU32Encoder()],
  ["openSlot", getU64Encoder()],
  [
    "distribution",
    getArrayEncoder(getStructEncoder([["recipient", getAddressEncoder()], ["bps", getU16Encoder()]]), {
      size: getU32Encoder(),
    }),
  ],
]);

/** The buyer's side of a channel: who pays, its salt and the slot it opens at. */
export interface Opening {
  payer: string;
  salt: bigint;
  openSlot: number;
}

/**
 * What a channel's `open` binds (as the protocol's ChannelPlan): its mint, the single
 * payout of everything settled to `payTo`, the seller's fee payer as rent payer and
 * zero-share payee, who signs its vouchers, its deposit and its grace period.
 */
export interface ChannelPlan {
  mint: string;
  tokenProgram: string;
  /** Who receives everything settled. */
  payTo: string;
  /** The seller's fee payer: the channel's rent payer and zero-share payee. */
  feePayer: string;
  /** Who signs the channel's vouchers: the seller's receiver authorizer in `upto`, the buyer in `batch-settlement`. */
  authorizedSigner: string;
  /** Base units escrowed at `open`. */
  deposit: bigint;
  /** Seconds the buyer waits after `request_close` before it may withdraw (a u32). */
  gracePeriod: number;
}

/** The program's event authority, which it invokes itself to log events: ["event_authority"]. */
async function eventAuthority(): Promise<Address> {
  const [pda] = await getProgramDerivedAddress({
    programAddress: address(PAYMENT_CHANNELS_PROGRAM),
    seeds: ["event_authority"],
  });
  return pda;
}

/** The channel `opening` creates under `plan`. */
export function plannedChannel(plan: ChannelPlan, opening: Opening): Promise<Address> {
  return channelAddress({
    payer: opening.payer,
    payee: plan.feePayer,
    mint: plan.mint,
    authorizedSigner: plan.authorizedSigner,
    salt: opening.salt,
    openSlot: opening.openSlot,
  });
}

/**
 * The `open` of `opening` under `plan`, and the channel it creates: 14 accounts, the
 * deposit paid out wholly to payTo, the fee payer as rent payer and payee.
 */
export async function channelOpenInstruction(
  plan: ChannelPlan,
  opening: Opening,
): Promise<{ instruction: Instruction; channel: Address }> {
  const channel = await plannedChannel(plan, opening);
  const ata = (owner: string) => associatedTokenAddress(owner, plan.mint, plan.tokenProgram);
  const { READONLY, WRITABLE, WRITABLE_SIGNER } = AccountRole;
  const accounts = [
    { address: address(opening.payer), role: WRITABLE_SIGNER },
    // The fee payer twice: as rent payer (signing), then as the channel's payee.
    { address: address(plan.feePayer), role: WRITABLE_SIGNER },
    { address: address(plan.feePayer), role: READONLY },
    { address: address(plan.mint), role: READONLY },
    { address: address(plan.authorizedSigner), role: READONLY },
    { address: channel, role: WRITABLE },
    { address: await ata(opening.payer), role: WRITABLE },
    { address: await ata(channel), role: WRITABLE },
    { address: address(plan.tokenProgram), role: READONLY },
    { address: address(SYSTEM_PROGRAM), role: READONLY },
    { address: address(RENT_SYSVAR), role: READONLY },
    { address: address(ASSOCIATED_TOKEN_PROGRAM), role: READONLY },
    { address: await eventAuthority(), role: READONLY },
    { address: address(PAYMENT_CHANNELS_PROGRAM), role: READONLY },
  ];
  const data = openDataEncoder.encode({
    discriminator: OPEN_DISCRIMINATOR,
    salt: opening.salt,
    deposit: plan.deposit,
    gracePeriod: plan.gracePeriod,
    openSlot: BigInt(opening.openSlot),
    distribution: [{ recipient: address(plan.payTo), bps: ALL_BPS }],
  });
  return { instruction: { programAddress: address(PAYMENT_CHANNELS_PROGRAM), accounts, data }, channel };
}

const TOP_UP_DISCRIMINATOR = 3;

/**
 * The buyer's `top_up` of its open `channel`: `amount` more base units from its token
 * account into the escrow (discriminator 3, `amount u64`, 6 accounts). The fee payer is
 * no account of it.
 */
export async function topUpInstruction(
  plan: Pick<ChannelPlan, "mint" | "tokenProgram">,
  channel: string,
  payer: string,
  amount: bigint,
): Promise<Instruction> {
  const ata = (owner: string) => associatedTokenAddress(owner, plan.mint, plan.tokenProgram);
  const { READONLY, WRITABLE, WRITABLE_SIGNER } = AccountRole;
  const data = new Uint8Array(9);
  data[0] = TOP_UP_DISCRIMINATOR;
  data.set(getU64Encoder().encode(amount), 1);
  return {
    programAddress: address(PAYMENT_CHANNELS_PROGRAM),
    accounts: [
      { address: address(payer), role: WRITABLE_SIGNER },
      { address: address(channel), role: WRITABLE },
      { address: await ata(payer), role: WRITABLE },
      { address: await ata(channel), role: WRITABLE },
      { address: address(plan.mint), role: READONLY },
      { address: address(plan.tokenProgram), role: READONLY },
    ],
    data,
  };
}

/** The plan of an `upto` channel: a deposit of the offer's maximum, the receiver authorizer as its signer. */
function uptoPlan(offer: Offer, terms: UptoTerms): ChannelPlan {
  return {
    mint: offer.asset,
    tokenProgram: terms.tokenProgram,
    payTo: offer.payTo,
    feePayer: terms.feePayer,
    authorizedSigner: terms.receiverAuthorizer,
    deposit: offer.amount,
    gracePeriod: terms.withdrawDelay,
  };
}

/**
 * The `upto` `open` of `opening` under `offer`'s terms, and the channel it creates: a
 * deposit of the offer's maximum, paid out wholly to payTo, the fee payer as rent payer
 * and payee, the receiver authorizer as the channel's signer, withdrawDelay as its grace
 * period.
 */
export function openInstruction(
  offer: Offer,
  terms: UptoTerms,
  opening: Opening,
): Promise<{ instruction: Instruction; channel: Address }> {
  return channelOpenInstruction(uptoPlan(offer, terms), opening);
}

/** A fresh random channel salt (the payload's `nonce`). */
export function randomSalt(): bigint {
  return getU64Decoder().decode(crypto.getRandomValues(new Uint8Array(8)));
}

export interface UptoInputs {
  /** The buyer. */
  payer: string;
  /** The token program of offer.asset, from a ledger or a trusted table: never the seller. */
  mint: MintInfo;
  blockhash: string;
  salt: bigint;
  openSlot: number;
  /** Default: extra.memo, else 16 random bytes as hex. */
  memo?: string;
}

/**
 * The buyer's `open` transaction, unsigned: v0, fee payer = extra.feePayer,
 * SetComputeUnitLimit, SetComputeUnitPrice, `open`, Memo; and the channel it opens.
 */
export async function buildUptoTransaction(
  offer: Offer,
  inputs: UptoInputs,
): Promise<{ transaction: Transaction; channel: Address }> {
  const terms = uptoTerms(offer);
  if (typeof terms === "string") throw new Error(terms);
  // As fee payer the buyer would pay the fee and the rent the seller offered to pay.
  if (terms.feePayer === inputs.payer) throw new Error("the payer may not be the offer's fee payer");
  if (inputs.mint.tokenProgram !== terms.tokenProgram) {
    throw new Error(`mint ${offer.asset} is of token program ${inputs.mint.tokenProgram}, not the offer's ${terms.tokenProgram}`);
  }
  checkDelivers(offer.asset, inputs.mint);
  const { instruction: open, channel } = await openInstruction(offer, terms, {
    payer: inputs.payer,
    salt: inputs.salt,
    openSlot: inputs.openSlot,
  });
  const memo = inputs.memo ?? terms.memo ?? randomMemo();
  const instructions: Instruction[] = [
    getSetComputeUnitLimitInstruction({ units: UPTO_COMPUTE_UNIT_LIMIT }),
    getSetComputeUnitPriceInstruction({ microLamports: EXACT_COMPUTE_UNIT_PRICE }),
    open,
    getAddMemoInstruction({ memo }, { programAddress: address(MEMO_PROGRAM) }),
  ];
  return { transaction: sponsoredTransaction(terms.feePayer, inputs.blockhash, instructions), channel };
}
