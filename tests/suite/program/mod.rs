//! The receipts program run natively on solana-program-test's bank, with the real
//! Token-2022 and Associated Token Account programs (BPF) beside it, p-token at the SPL
//! Token address and the payment-channels program (`tests/fixtures/programs/`).

mod support;

mod channels;
mod close_receipt;
mod pay;
mod prefunded_receipt;
mod vendored;
