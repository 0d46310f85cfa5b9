/** The two schemes' transactions, built as the Rust verifier expects them. */
import {
  AccountRole,
  address,
  appendTransactionMessageInstructions,
  blockhash as toBlockhash,
  compileTransaction,
  createTransactionMessage,
  getAddressEncoder,
  getBase58Encoder,
  getProgramDerivedAddress,
  setTransactionMessageFeePayer,
  setTransactionMessageLifetimeUsingBlockhash,
  type Address,
  type Instruction,
  type Transaction,
} from "@solana/kit";

import {
  ASSOCIATED_TOKEN_PROGRAM,
  COMPUTE_BUDGET_PROGRAM,
  EXACT_COMPUTE_UNIT_LIMIT,
  EXACT_COMPUTE_UNIT_PRICE,
  MEMO_PROGRAM,
  PAY_DISCRIMINATOR,
  RECEIPT_SEED,
  SYSTEM_PROGRAM,
  TOKEN_2022_PROGRAM,
  TOKEN_PROGRAM,
  type MintInfo,
} from "./constants.js";
import type { Offer } from "./wire.js";

const NO_EXPIRY = (1n << 63n) - 1n;

/** The associated token account of `owner` for `mint` under `tokenProgram`. */
export async function associatedTokenAddress(owner: string, mint: string, tokenProgram: string): Promise<Address> {
  const enc = getAddressEncoder();
  const [ata] = await getProgramDerivedAddress({
    programAddress: address(ASSOCIATED_TOKEN_PROGRAM),
    seeds: [enc.encode(address(owner)), enc.encode(address(tokenProgram)), enc.encode(address(mint))],
  });
  return ata;
}

/** The receipt PDA of `reference` (32 bytes) under `programId`: ["receipt", reference]. */
export async function receiptAddress(programId: string, reference: Uint8Array): Promise<Address> {
  const [pda] = await getProgramDerivedAddress({
    programAddress: address(programId),
    seeds: [RECEIPT_SEED, reference],
  });
  return pda;
}

function u64le(value: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigUint64(0, value, true);
  return out;
}

function i64le(value: bigint): Uint8Array {
  const out = new Uint8Array(8);
  new DataView(out.buffer).setBigInt64(0, value, true);
  return out;
}

function concat(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
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
  const payerToken = await associatedTokenAddress(payer, offer.asset, terms.tokenProgram);
  const payeeToken = await associatedTokenAddress(offer.payTo, offer.asset, terms.tokenProgram);
  return {
    programAddress: address(terms.programId),
    accounts: [
      { address: address(payer), role: AccountRole.READONLY_SIGNER },
      { address: address(terms.feePayer), role: AccountRole.WRITABLE_SIGNER },
      { address: receipt, role: AccountRole.WRITABLE },
      { address: address(offer.asset), role: AccountRole.READONLY },
      { address: payerToken, role: AccountRole.WRITABLE },
      { address: address(offer.payTo), role: AccountRole.READONLY },
      { address: payeeToken, role: AccountRole.WRITABLE },
      { address: address(terms.tokenProgram), role: AccountRole.READONLY },
      { address: address(SYSTEM_PROGRAM), role: AccountRole.READONLY },
    ],
    data: concat(PAY_DISCRIMINATOR, terms.reference, u64le(offer.amount), i64le(terms.expiresAt)),
  };
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

function randomMemo(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/**
 * The `exact` transaction, unsigned: v0, fee payer = extra.feePayer, SetComputeUnitLimit,
 * SetComputeUnitPrice, TransferChecked to ATA(payTo), Memo.
 */
export async function buildExactTransaction(offer: Offer, inputs: ExactInputs): Promise<Transaction> {
  const feePayer = offer.extra.feePayer;
  if (typeof feePayer !== "string") throw new Error("no extra.feePayer");
  if (feePayer === inputs.payer) throw new Error("the payer may not be the offer's fee payer");
  const { tokenProgram, decimals } = inputs.mint;
  if (tokenProgram !== TOKEN_PROGRAM && tokenProgram !== TOKEN_2022_PROGRAM) {
    throw new Error(`unknown token program ${tokenProgram}`);
  }
  const memo = inputs.memo ?? (typeof offer.extra.memo === "string" ? offer.extra.memo : randomMemo());
  const source = await associatedTokenAddress(inputs.payer, offer.asset, tokenProgram);
  const destination = await associatedTokenAddress(offer.payTo, offer.asset, tokenProgram);
  const limit = new Uint8Array(5);
  limit[0] = 2;
  new DataView(limit.buffer).setUint32(1, EXACT_COMPUTE_UNIT_LIMIT, true);
  const instructions: Instruction[] = [
    { programAddress: address(COMPUTE_BUDGET_PROGRAM), data: limit },
    { programAddress: address(COMPUTE_BUDGET_PROGRAM), data: concat(new Uint8Array([3]), u64le(EXACT_COMPUTE_UNIT_PRICE)) },
    {
      programAddress: address(tokenProgram),
      accounts: [
        { address: source, role: AccountRole.WRITABLE },
        { address: address(offer.asset), role: AccountRole.READONLY },
        { address: destination, role: AccountRole.WRITABLE },
        { address: address(inputs.payer), role: AccountRole.READONLY_SIGNER },
      ],
      data: concat(new Uint8Array([12]), u64le(offer.amount), new Uint8Array([decimals])),
    },
    { programAddress: address(MEMO_PROGRAM), data: new TextEncoder().encode(memo) },
  ];
  const message = appendTransactionMessageInstructions(
    instructions,
    setTransactionMessageLifetimeUsingBlockhash(
      { blockhash: toBlockhash(inputs.blockhash), lastValidBlockHeight: NO_EXPIRY },
      setTransactionMessageFeePayer(address(feePayer), createTransactionMessage({ version: 0 })),
    ),
  );
  return compileTransaction(message) as Transaction;
}
