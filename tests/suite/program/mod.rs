//! The receipts program run natively on solana-program-test's bank, with the real
//! SPL Token, Token-2022 and Associated Token Account programs (BPF) beside it.

mod support;

mod close_receipt;
mod pay;
mod prefunded_receipt;
