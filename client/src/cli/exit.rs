//! How `x402` ends: its exit codes, and a failure with its code and details.

use serde::Serialize;
use x402_client::{ClientError, PolicyRule};
use x402_protocol::LedgerError;

/// The exit codes, for scripts and agents: their numbers never change. Each one's
/// meaning is [`Exit::meaning`], listed in `x402 --help`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Exit {
    Done = 0,
    Error = 1,
    Usage = 2,
    PolicyRefused = 3,
    PaymentRefused = 4,
    Unavailable = 5,
    ReceiptNotFound = 6,
    RequestFailed = 7,
    NotYet = 8,
}

impl Exit {
    pub const ALL: [Exit; 9] = [
        Exit::Done,
        Exit::Error,
        Exit::Usage,
        Exit::PolicyRefused,
        Exit::PaymentRefused,
        Exit::Unavailable,
        Exit::ReceiptNotFound,
        Exit::RequestFailed,
        Exit::NotYet,
    ];

    pub fn code(self) -> u8 {
        self as u8
    }

    pub fn meaning(self) -> &'static str {
        match self {
            Exit::Done => "done",
            Exit::Error => "error",
            Exit::Usage => "usage",
            Exit::PolicyRefused => "refused by the spending policy (nothing signed)",
            Exit::PaymentRefused => "payment refused by the server",
            Exit::Unavailable => {
                "unavailable, or the paid request answered 5xx (kept: --resume FILE)"
            }
            Exit::ReceiptNotFound => "receipt not found",
            Exit::RequestFailed => {
                "the request answered 4xx (paid or not), or 5xx without a payment"
            }
            Exit::NotYet => "not yet: a channel's grace period has not passed (nothing moved)",
        }
    }

    /// The list for `x402 --help`.
    pub fn help() -> String {
        let lines: Vec<String> = Exit::ALL
            .iter()
            .map(|exit| format!("  {}  {}", exit.code(), exit.meaning()))
            .collect();
        format!("Exit codes:\n{}", lines.join("\n"))
    }
}

/// A failure with its exit code.
#[derive(Debug)]
pub struct Failure {
    pub exit: Exit,
    pub message: String,
    /// Boxed: a failure travels in every command's `Result`.
    pub detail: Option<Box<Detail>>,
}

/// What `--json` adds to a failure's message, for a script to act on.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum Detail {
    /// The spending policy refused: the rule, and what was asked.
    #[serde(rename_all = "camelCase")]
    Policy {
        amount: String,
        mint: String,
        network: String,
        pay_to: String,
        rule: PolicyRule,
    },
    /// The server refused the payment: its reason.
    Refused { reason: String },
    /// The payment could not be presented: the file it is kept in.
    Kept { kept: String },
    /// The paid request was not served: the file the payment is kept in, and the
    /// server's answer.
    NotServed {
        body: String,
        kept: String,
        status: u16,
    },
}

/// A failure as `--json` prints it.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub struct FailureOutput<'a> {
    pub detail: Option<&'a Detail>,
    pub error: &'a str,
    pub exit_code: u8,
}

impl Failure {
    /// The failure as `--json` prints it.
    pub fn output(&self) -> FailureOutput<'_> {
        FailureOutput {
            detail: self.detail.as_deref(),
            error: &self.message,
            exit_code: self.exit.code(),
        }
    }
}

pub fn fail(exit: Exit, message: impl ToString) -> Failure {
    Failure {
        exit,
        message: message.to_string(),
        detail: None,
    }
}

impl From<ClientError> for Failure {
    fn from(error: ClientError) -> Self {
        let message = error.to_string();
        match error {
            ClientError::Policy(refusal) => Failure {
                exit: Exit::PolicyRefused,
                message,
                detail: Some(Box::new(Detail::Policy {
                    amount: refusal.amount.to_string(),
                    mint: refusal.mint.to_string(),
                    network: refusal.network,
                    pay_to: refusal.pay_to.to_string(),
                    rule: refusal.rule,
                })),
            },
            ClientError::PaymentRefused { reason, .. } => Failure {
                exit: Exit::PaymentRefused,
                message,
                detail: Some(Box::new(Detail::Refused { reason })),
            },
            ClientError::Unavailable { .. }
            | ClientError::ServerError { .. }
            | ClientError::Ledger(LedgerError::Unavailable(_)) => fail(Exit::Unavailable, message),
            _ => fail(Exit::Error, message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exit_codes_keep_their_numbers_and_help_lists_each() {
        let codes: Vec<u8> = Exit::ALL.iter().map(|exit| exit.code()).collect();
        assert_eq!(codes, [0, 1, 2, 3, 4, 5, 6, 7, 8]);
        let help = Exit::help();
        for exit in Exit::ALL {
            assert!(help.contains(&format!("{}  {}", exit.code(), exit.meaning())));
        }
    }

    #[test]
    fn a_policy_refusal_prints_its_rule_by_name() {
        let failure = Failure {
            exit: Exit::PolicyRefused,
            message: "refused".into(),
            detail: Some(Box::new(Detail::Policy {
                amount: "10000".into(),
                mint: "mint".into(),
                network: "solana".into(),
                pay_to: "payee".into(),
                rule: PolicyRule::MaxPerRequest,
            })),
        };
        let printed = serde_json::to_string(&failure.output()).unwrap();
        assert_eq!(
            printed,
            r#"{"detail":{"amount":"10000","mint":"mint","network":"solana","payTo":"payee","rule":"MaxPerRequest"},"error":"refused","exitCode":3}"#
        );
        assert_eq!(
            serde_json::to_string(&fail(Exit::Error, "e").output()).unwrap(),
            r#"{"detail":null,"error":"e","exitCode":1}"#
        );
    }
}
