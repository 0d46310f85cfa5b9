/** The two schemes' transactions, built as the Rust verifier expects them. */
import {
  address,
  appendTransactionMessageInstructions,
  blockhash as toBlockhash,
  compileTransaction,
  createNoopSigner,
  createTransactionMessage,
  getBase16Decoder,
  getBase58Encoder,
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
  EXACT_COMPUTE_UNIT_LIMIT,
  EXACT_COMPUTE_UNIT_PRICE,
  MEMO_PROGRAM,
  TOKEN_2022_PROGRAM,
  TOKEN_PROGRAM,
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

function randomMemo(): string {
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
  const { tokenProgram, decimals } = inputs.mint;
  if (tokenProgram !== TOKEN_PROGRAM && tokenProgram !== TOKEN_2022_PROGRAM) {
    throw new Error(`unknown token program ${tokenProgram}`);
  }
  if (inputs.mint.deliversInFull === false) {
    throw new Error(`mint ${offer.asset} withholds part of each transfer (fee or hook): not paid`);
  }
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
  const message = appendTransactionMessageInstructions(
    instructions,
    setTransactionMessageLifetimeUsingBlockhash(
      { blockhash: toBlockhash(inputs.blockhash), lastValidBlockHeight: NO_EXPIRY },
      setTransactionMessageFeePayer(address(feePayer), createTransactionMessage({ version: 0 })),
    ),
  );
  return compileTransaction(message) as Transaction;
}
