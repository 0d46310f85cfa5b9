export { fetchWithPayment, type FetchWithPaymentOptions, type PaidResponse } from "./fetch.js";
export { X402Error, type X402ErrorCode, type OfferRefusal } from "./errors.js";
export {
  chargeOf,
  chooseOffer,
  createPayment,
  networkRefusal,
  readLedgerFacts,
  supportRefusal,
  trustedMint,
  DEFAULT_SCHEMES,
  UPTO,
  type Charge,
  type Payment,
  type PaymentSources,
  type UptoPayload,
} from "./payment.js";
export {
  DEFAULT_MAX_PER_REQUEST,
  needsDecimals,
  parseUnits,
  policyRefusal,
  spentUnder,
  recordSpending,
  type Limit,
  type SpendingPolicy,
  type TrustedFacts,
  type Units,
} from "./policy.js";
export { memoReference, proofMessage, proofTarget, signProof, X_PAYMENT_PROOF, type ProofTarget } from "./proof.js";
export { canSignMessages, signerAddress, signMessageWith, signWith, type PaymentSigner, type WalletStandardSigner } from "./signer.js";
export {
  associatedTokenAddress,
  buildExactTransaction,
  buildReceiptTransaction,
  buildUptoTransaction,
  channelAddress,
  openInstruction,
  payInstruction,
  randomSalt,
  receiptAddress,
  receiptTerms,
  uptoTerms,
  type ChannelSeeds,
  type ExactInputs,
  type Opening,
  type ReceiptTerms,
  type UptoInputs,
  type UptoTerms,
} from "./transactions.js";
export { rpcSources } from "./rpc.js";
export * from "./wire.js";
export * from "./constants.js";
