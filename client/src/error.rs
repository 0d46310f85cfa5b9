//! Why a request could not be paid for or served.

use anchor_lang::prelude::Pubkey;
use x402_protocol::LedgerError;

use crate::challenge::Challenge;
use crate::offer::Unreadable;
use crate::payment::Payment;
use crate::policy::PolicyRefusal;

/// Why a request could not be paid for or served.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("HTTP: {0}")]
    Http(#[from] reqwest::Error),
    /// The server asked for payment and automatic payment is off: pay with
    /// [`X402Client::pay`], then send with [`X402Client::send_with`].
    ///
    /// [`X402Client::pay`]: crate::X402Client::pay
    /// [`X402Client::send_with`]: crate::X402Client::send_with
    #[error("payment required")]
    PaymentRequired(Box<Challenge>),
    /// Nothing offered is payable here: each offer, and why not.
    #[error("nothing offered can be paid: {}", offered.join("; "))]
    NoPayableOffer { offered: Vec<String> },
    #[error("the 402 answer cannot be read: {0}")]
    MalformedChallenge(String),
    #[error(transparent)]
    Policy(Box<PolicyRefusal>),
    #[error("paying needs a keypair")]
    NoKeypair,
    #[error("the server does not sponsor this payment; paying it yourself needs an RPC URL")]
    NeedsLedger,
    /// An `exact` payment needs the mint's token program and decimals from a trusted
    /// source: an RPC URL, or the table of well-known mints.
    #[error("paying in mint {0} needs an RPC URL (its decimals are never taken from the server)")]
    UnknownMint(Pubkey),
    /// The mint takes a fee or runs a hook on transfers: the payee would receive less
    /// than the price.
    #[error("mint {0} withholds part of each transfer (fee or hook): not paid")]
    WithholdingMint(Pubkey),
    #[error("the ledger: {0}")]
    Ledger(#[from] LedgerError),
    /// The server answered 402 again after the payment: its reason.
    #[error("the server refused the payment: {reason}")]
    PaymentRefused {
        reason: String,
        payment: Box<Payment>,
    },
    /// The server stayed unavailable; the payment may be retried with
    /// [`X402Client::send_with`], never paid again.
    ///
    /// [`X402Client::send_with`]: crate::X402Client::send_with
    #[error("the server or the ledger is unavailable ({attempts} attempts); the payment is kept: present it again, never pay again")]
    Unavailable {
        attempts: u32,
        payment: Box<Payment>,
    },
    /// The paid request answered 5xx (a 503 after its retries is [`Unavailable`]): the
    /// seller failed to serve it, and a seller of ours gave the payment's grant back. The
    /// payment is kept: present it again with [`X402Client::send_with`] (it then carries
    /// the payer's proof), never pay again.
    ///
    /// [`Unavailable`]: ClientError::Unavailable
    /// [`X402Client::send_with`]: crate::X402Client::send_with
    #[error("the server answered {status} to the paid request; the payment is kept: present it again, never pay again")]
    ServerError {
        status: reqwest::StatusCode,
        /// The start of the server's answer (its text, at most 4 KiB).
        body: String,
        payment: Box<Payment>,
    },
    /// An `upto` seller's settlement claims more than the maximum the buyer escrowed. The
    /// channel's deposit is the ceiling on chain, so no more was taken; the seller's word
    /// is false: check its transaction.
    #[error("the seller claims it settled {settled} base units, more than the maximum of {maximum} escrowed (the chain took at most the deposit): check transaction {transaction}")]
    SettledAboveMaximum {
        settled: u64,
        maximum: u64,
        transaction: String,
    },
    #[error("the request body cannot be sent twice (a stream): buffer it to pay")]
    BodyNotReplayable,
    /// The channel book could not keep what a voucher signs: nothing was sent.
    #[error("{0}")]
    Book(String),
}

impl From<Unreadable> for ClientError {
    fn from(Unreadable(why): Unreadable) -> Self {
        ClientError::MalformedChallenge(why)
    }
}
