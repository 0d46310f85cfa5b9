export { fetchWithPayment, type FetchWithPaymentOptions, type PaidResponse } from "./fetch.js";
export { X402Error, type X402ErrorCode, type OfferRefusal } from "./errors.js";
export {
  chooseOffer,
  createPayment,
  supportRefusal,
  DEFAULT_SCHEMES,
  type Payment,
  type PaymentSources,
} from "./payment.js";
export { policyRefusal, spentUnder, recordSpending, type SpendingPolicy, type Units } from "./policy.js";
export { signerAddress, signWith, type PaymentSigner, type WalletStandardSigner } from "./signer.js";
export {
  associatedTokenAddress,
  buildExactTransaction,
  buildReceiptTransaction,
  payInstruction,
  receiptAddress,
  receiptTerms,
  type ExactInputs,
  type ReceiptTerms,
} from "./transactions.js";
export { rpcSources } from "./rpc.js";
export * from "./wire.js";
export * from "./constants.js";
