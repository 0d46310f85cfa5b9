//! The ecosystem's `exact` scheme on Solana (x402's `scheme_exact_svm.md`): the buyer
//! signs a versioned transaction of a compute budget, one `TransferChecked` to the
//! payee's associated token account, and a Memo; the seller's fee payer co-signs and
//! submits it. Both sides use this module: the client builds the transaction
//! ([`build_exact`]), the verifier checks it before its fee payer signs
//! ([`validate_exact`]).

use std::str::FromStr;

use anchor_lang::prelude::Pubkey;
use anchor_lang::pubkey;
use anchor_lang::solana_program::instruction::Instruction;
use anchor_lang::AnchorDeserialize;
use anchor_spl::associated_token::get_associated_token_address_with_program_id;
use anchor_spl::token_2022::spl_token_2022;
use base64::{engine::general_purpose::STANDARD, Engine as _};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use solana_compute_budget_interface::ComputeBudgetInstruction;
use solana_hash::Hash;
use solana_keypair::Keypair;
use solana_message::{v0, VersionedMessage};
use solana_signature::Signature;
use solana_signer::Signer;
use solana_transaction::versioned::VersionedTransaction;

use crate::mint::MintInfo;
use crate::scheme::{decode_wire, SchemeError};
use crate::sponsored::{SponsorPolicy, SponsoredDefect};
use crate::wire::{v2, Offer};

/// The x402 scheme name.
pub const EXACT: &str = "exact";

/// The SPL Memo program: the one Memo carries the seller's `extra.memo`.
pub const MEMO_PROGRAM: Pubkey = pubkey!("MemoSq4gqABAXKb96qnH8TysNcWxMyWCqXgDLGmfcHr");

/// Lighthouse: wallets (Phantom, Solflare) add its assertions to protect their users, and
/// the specification requires that they be allowed.
pub const LIGHTHOUSE_PROGRAM: Pubkey = pubkey!("L2TExMFKdjpN9kozasaurPirfHy9P8sbXoAN1qA3S95");

/// The longest `extra.memo`, in bytes.
pub const MAX_MEMO_BYTES: usize = 256;

/// The compute-unit limit our client asks for: a transfer and a memo fit well inside.
pub const COMPUTE_UNIT_LIMIT: u32 = 20_000;

/// The compute-unit price our client offers, in micro-lamports: the seller pays it.
pub const COMPUTE_UNIT_PRICE: u64 = 1;

/// `TransferChecked`'s tag in both token programs.
const TRANSFER_CHECKED: u8 = 12;

/// What an `exact` payment must do: transfer `amount` of `mint` to `pay_to`'s associated
/// token account, with `fee_payer` paying the fee and `memo` in its Memo.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExactTerms {
    pub mint: Pubkey,
    pub pay_to: Pubkey,
    /// Base units.
    pub amount: u64,
    pub fee_payer: Pubkey,
    pub memo: Option<String>,
}

/// The `extra` object of an `exact` offer on Solana.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct ExactExtra {
    pub fee_payer: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memo: Option<String>,
    /// A blockhash to sign with, saving the client a ledger call.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub recent_blockhash: Option<String>,
}

/// The `payload` of an `exact` payment.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExactPayload {
    /// The partially signed versioned transaction, bincode, base64.
    pub transaction: String,
}

/// An `exact` offer on Solana, as both sides understand it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ExactOffer {
    /// The network as the offer names it (v1 name or CAIP-2).
    pub network: String,
    pub terms: ExactTerms,
    pub recent_blockhash: Option<Hash>,
    pub resource: v2::ResourceInfo,
    pub max_timeout_seconds: u64,
}

impl ExactOffer {
    /// This offer on the wire.
    pub fn to_offer(&self) -> Offer {
        let extra = ExactExtra {
            fee_payer: self.terms.fee_payer.to_string(),
            memo: self.terms.memo.clone(),
            recent_blockhash: self.recent_blockhash.map(|h| h.to_string()),
        };
        let Value::Object(extra) = serde_json::to_value(extra).expect("plain fields serialize")
        else {
            unreachable!("a struct serializes to an object")
        };
        Offer {
            scheme: EXACT.into(),
            network: self.network.clone(),
            amount: self.terms.amount.to_string(),
            asset: self.terms.mint.to_string(),
            pay_to: self.terms.pay_to.to_string(),
            max_timeout_seconds: self.max_timeout_seconds,
            extra,
            resource: self.resource.clone(),
        }
    }

    /// Reads an offer in the `exact` scheme (any network: the caller checks it).
    pub fn from_offer(offer: &Offer) -> Result<Self, SchemeError> {
        if offer.scheme != EXACT {
            return Err(SchemeError::OtherScheme);
        }
        let extra: ExactExtra = serde_json::from_value(Value::Object(offer.extra.clone()))
            .map_err(|_| SchemeError::Malformed("extra.feePayer"))?;
        let key =
            |text: &str, field| Pubkey::from_str(text).map_err(|_| SchemeError::Malformed(field));
        if extra
            .memo
            .as_ref()
            .is_some_and(|m| m.len() > MAX_MEMO_BYTES)
        {
            return Err(SchemeError::Malformed("extra.memo"));
        }
        Ok(ExactOffer {
            network: offer.network.clone(),
            terms: ExactTerms {
                mint: key(&offer.asset, "asset")?,
                pay_to: key(&offer.pay_to, "payTo")?,
                amount: offer
                    .amount
                    .parse()
                    .map_err(|_| SchemeError::Malformed("amount"))?,
                fee_payer: key(&extra.fee_payer, "extra.feePayer")?,
                memo: extra.memo,
            },
            recent_blockhash: extra
                .recent_blockhash
                .as_deref()
                .map(|h| Hash::from_str(h).map_err(|_| SchemeError::Malformed("recentBlockhash")))
                .transpose()?,
            resource: offer.resource.clone(),
            max_timeout_seconds: offer.max_timeout_seconds,
        })
    }

    /// The `extra` of this offer, for `/supported` and tests.
    pub fn extra(&self) -> Map<String, Value> {
        self.to_offer().extra
    }
}

/// The transfer an `exact` transaction makes, once checked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ExactTransfer {
    /// The buyer: the transfer's authority and the transaction's only other signer.
    pub payer: Pubkey,
    pub source: Pubkey,
    /// The payee's associated token account.
    pub destination: Pubkey,
}

/// The transaction `payer` signs to pay `terms` in `mint` (facts the client read from a
/// ledger, never from the seller), for the fee payer to co-sign. With no memo asked for,
/// a random one keeps identical payments distinct.
pub fn build_exact(
    payer: &Keypair,
    terms: &ExactTerms,
    mint: &MintInfo,
    blockhash: Hash,
) -> VersionedTransaction {
    let owner = payer.pubkey();
    let source =
        get_associated_token_address_with_program_id(&owner, &terms.mint, &mint.token_program);
    let destination = get_associated_token_address_with_program_id(
        &terms.pay_to,
        &terms.mint,
        &mint.token_program,
    );
    let transfer = spl_token_2022::instruction::transfer_checked(
        &mint.token_program,
        &source,
        &terms.mint,
        &destination,
        &owner,
        &[],
        terms.amount,
        mint.decimals,
    )
    .expect("SPL Token or Token-2022: read_mint checked the owner");
    let memo = terms.memo.clone().unwrap_or_else(|| {
        let mut nonce = [0u8; 16];
        getrandom::getrandom(&mut nonce).expect("the OS provides randomness");
        nonce.iter().map(|b| format!("{b:02x}")).collect()
    });
    let instructions = [
        budget(ComputeBudgetInstruction::SetComputeUnitLimit(
            COMPUTE_UNIT_LIMIT,
        )),
        budget(ComputeBudgetInstruction::SetComputeUnitPrice(
            COMPUTE_UNIT_PRICE,
        )),
        transfer,
        Instruction::new_with_bytes(MEMO_PROGRAM, memo.as_bytes(), vec![]),
    ];
    let message = v0::Message::try_compile(&terms.fee_payer, &instructions, &[], blockhash)
        .expect("no lookup tables, few accounts");
    let message = VersionedMessage::V0(message);
    let mut signatures = vec![Signature::default(); 2];
    signatures[1] = payer.sign_message(&message.serialize());
    VersionedTransaction {
        signatures,
        message,
    }
}

fn budget(instruction: ComputeBudgetInstruction) -> Instruction {
    Instruction::new_with_borsh(solana_compute_budget_interface::ID, &instruction, vec![])
}

/// A versioned transaction as `payload.transaction` carries it: bincode, base64.
pub fn encode_versioned(transaction: &VersionedTransaction) -> String {
    STANDARD.encode(bincode::serialize(transaction).expect("a transaction serializes"))
}

/// Reads `payload.transaction` (legacy or v0); anything larger than a Solana transaction
/// is refused before decoding.
pub fn decode_versioned(text: &str) -> Result<VersionedTransaction, SchemeError> {
    let tx: VersionedTransaction = decode_wire(text)?;
    tx.sanitize()
        .map_err(|_| SchemeError::Malformed("transaction"))?;
    Ok(tx)
}

/// Whether the fee payer may co-sign `tx` for `terms`, as the `exact` specification
/// requires and stricter: compute-unit limit, compute-unit price, exactly one
/// `TransferChecked` of exactly the amount from the payer to the payee's associated
/// token account, then only Memo and Lighthouse, with exactly one Memo equal to the
/// expected memo; no lookup tables; two signers (fee payer and payer); the fee payer in
/// no instruction at all. `mint` holds facts read from the ledger, not from the payer.
pub fn validate_exact(
    tx: &VersionedTransaction,
    terms: &ExactTerms,
    mint: &MintInfo,
    policy: &SponsorPolicy,
) -> Result<ExactTransfer, SponsoredDefect> {
    let message = &tx.message;
    if message
        .address_table_lookups()
        .is_some_and(|lookups| !lookups.is_empty())
    {
        // Unresolved accounts could be anyone's, the fee payer's included.
        return Err(SponsoredDefect::UnexpectedInstruction);
    }
    let keys = message.static_account_keys();
    if keys.first() != Some(&policy.fee_payer) || terms.fee_payer != policy.fee_payer {
        return Err(SponsoredDefect::WrongFeePayer);
    }
    if message.header().num_required_signatures != 2 || tx.signatures.len() != 2 {
        return Err(SponsoredDefect::WrongSigners);
    }
    let payer = keys[1];
    if payer == policy.fee_payer {
        return Err(SponsoredDefect::FeePayerMisused);
    }
    if !tx.signatures[1].verify(payer.as_ref(), &message.serialize()) {
        return Err(SponsoredDefect::BadPayerSignature);
    }
    let instructions = message.instructions();
    if !(3..=6).contains(&instructions.len()) {
        return Err(SponsoredDefect::UnexpectedInstruction);
    }
    // The fee payer is index 0: never a program, never in an instruction's accounts.
    if instructions
        .iter()
        .any(|ix| ix.program_id_index == 0 || ix.accounts.contains(&0))
    {
        return Err(SponsoredDefect::FeePayerMisused);
    }
    let key = |index: u8| keys.get(usize::from(index)).copied();
    let program = |index: usize| key(instructions[index].program_id_index);

    let budget = |index: usize| {
        let ix = &instructions[index];
        if program(index) != Some(solana_compute_budget_interface::ID) || !ix.accounts.is_empty() {
            return Err(SponsoredDefect::UnexpectedInstruction);
        }
        ComputeBudgetInstruction::try_from_slice(&ix.data)
            .map_err(|_| SponsoredDefect::UnexpectedInstruction)
    };
    match budget(0)? {
        ComputeBudgetInstruction::SetComputeUnitLimit(limit) => {
            if limit > policy.max_compute_unit_limit {
                return Err(SponsoredDefect::ComputeBudgetTooHigh);
            }
        }
        _ => return Err(SponsoredDefect::UnexpectedInstruction),
    }
    match budget(1)? {
        ComputeBudgetInstruction::SetComputeUnitPrice(price) => {
            if price > policy.max_compute_unit_price {
                return Err(SponsoredDefect::ComputeBudgetTooHigh);
            }
        }
        _ => return Err(SponsoredDefect::UnexpectedInstruction),
    }

    if !mint.delivers_in_full {
        return Err(SponsoredDefect::WrongPayment(
            "the mint withholds part of a transfer (fee or hook)",
        ));
    }
    let transfer = &instructions[2];
    if program(2) != Some(mint.token_program) {
        return Err(SponsoredDefect::UnexpectedInstruction);
    }
    let accounts: Vec<Pubkey> = transfer
        .accounts
        .iter()
        .map(|&i| key(i))
        .collect::<Option<_>>()
        .ok_or(SponsoredDefect::UnexpectedInstruction)?;
    // source, mint, destination, authority: a single-signer authority, no multisig.
    let [source, mint_key, destination, authority] = accounts[..] else {
        return Err(SponsoredDefect::WrongPayment("accounts"));
    };
    let data = &transfer.data;
    if data.len() != 10 || data[0] != TRANSFER_CHECKED {
        return Err(SponsoredDefect::UnexpectedInstruction);
    }
    let amount = u64::from_le_bytes(data[1..9].try_into().expect("eight bytes"));
    if mint_key != terms.mint {
        return Err(SponsoredDefect::WrongPayment("mint"));
    }
    if data[9] != mint.decimals {
        return Err(SponsoredDefect::WrongPayment("decimals"));
    }
    if amount != terms.amount {
        return Err(SponsoredDefect::WrongPayment("amount"));
    }
    let payee_token = get_associated_token_address_with_program_id(
        &terms.pay_to,
        &terms.mint,
        &mint.token_program,
    );
    if destination != payee_token {
        return Err(SponsoredDefect::WrongPayment("destination"));
    }
    if authority != payer {
        return Err(SponsoredDefect::WrongPayment("authority"));
    }
    // The payer may be a delegate of the fee payer's tokens: never spend those.
    if source
        == get_associated_token_address_with_program_id(
            &policy.fee_payer,
            &terms.mint,
            &mint.token_program,
        )
    {
        return Err(SponsoredDefect::FeePayerMisused);
    }

    let mut memos = instructions[3..]
        .iter()
        .enumerate()
        .filter_map(|(i, ix)| (program(3 + i) == Some(MEMO_PROGRAM)).then_some(ix));
    for i in 3..instructions.len() {
        if !matches!(program(i), Some(p) if p == MEMO_PROGRAM || p == LIGHTHOUSE_PROGRAM) {
            return Err(SponsoredDefect::UnexpectedInstruction);
        }
    }
    if let Some(expected) = &terms.memo {
        let (Some(memo), None) = (memos.next(), memos.next()) else {
            return Err(SponsoredDefect::WrongPayment("memo"));
        };
        if memo.data != expected.as_bytes() || !memo.accounts.is_empty() {
            return Err(SponsoredDefect::WrongPayment("memo"));
        }
    }
    Ok(ExactTransfer {
        payer,
        source,
        destination,
    })
}

#[cfg(test)]
mod tests {
    use anchor_spl::token::spl_token;

    use super::*;

    struct Case {
        payer: Keypair,
        terms: ExactTerms,
        mint: MintInfo,
        policy: SponsorPolicy,
    }

    fn case() -> Case {
        let fee_payer = Pubkey::new_unique();
        Case {
            payer: Keypair::new(),
            terms: ExactTerms {
                mint: Pubkey::new_unique(),
                pay_to: Pubkey::new_unique(),
                amount: 10_000,
                fee_payer,
                memo: Some("reference-1".into()),
            },
            mint: MintInfo {
                decimals: 6,
                token_program: spl_token::ID,
                delivers_in_full: true,
            },
            policy: SponsorPolicy {
                fee_payer,
                max_compute_unit_price: 5_000_000,
                max_compute_unit_limit: 200_000,
            },
        }
    }

    impl Case {
        fn valid(&self) -> VersionedTransaction {
            build_exact(&self.payer, &self.terms, &self.mint, Hash::new_unique())
        }

        /// The instructions of a valid payment, to be altered.
        fn instructions(&self) -> Vec<Instruction> {
            let tx = self.valid();
            let keys = tx.message.static_account_keys();
            let header = tx.message.header();
            tx.message
                .instructions()
                .iter()
                .map(|ix| Instruction {
                    program_id: keys[usize::from(ix.program_id_index)],
                    accounts: ix
                        .accounts
                        .iter()
                        .map(|&i| {
                            let i = usize::from(i);
                            let signer = i < usize::from(header.num_required_signatures);
                            anchor_lang::solana_program::instruction::AccountMeta {
                                pubkey: keys[i],
                                is_signer: signer,
                                is_writable: tx.message.is_maybe_writable(i, None),
                            }
                        })
                        .collect(),
                    data: ix.data.clone(),
                })
                .collect()
        }

        /// `instructions` signed by the payer (and `others`), for the fee payer.
        fn signed(
            &self,
            instructions: &[Instruction],
            others: &[&Keypair],
        ) -> VersionedTransaction {
            let message = v0::Message::try_compile(
                &self.terms.fee_payer,
                instructions,
                &[],
                Hash::new_unique(),
            )
            .unwrap();
            let message = VersionedMessage::V0(message);
            let signers = usize::from(message.header().num_required_signatures);
            let mut signatures = vec![Signature::default(); signers];
            let keys = message.static_account_keys().to_vec();
            for signer in std::iter::once(&self.payer).chain(others.iter().copied()) {
                let at = keys.iter().position(|k| *k == signer.pubkey()).unwrap();
                signatures[at] = signer.sign_message(&message.serialize());
            }
            VersionedTransaction {
                signatures,
                message,
            }
        }

        fn check(&self, tx: &VersionedTransaction) -> Result<ExactTransfer, SponsoredDefect> {
            validate_exact(tx, &self.terms, &self.mint, &self.policy)
        }

        fn altered(
            &self,
            change: impl FnOnce(&mut Vec<Instruction>),
        ) -> Result<ExactTransfer, SponsoredDefect> {
            let mut instructions = self.instructions();
            change(&mut instructions);
            self.check(&self.signed(&instructions, &[]))
        }
    }

    #[test]
    fn the_payment_our_client_builds_passes_and_survives_the_wire() {
        let case = case();
        let tx = decode_versioned(&encode_versioned(&case.valid())).unwrap();
        let transfer = case.check(&tx).unwrap();
        assert_eq!(transfer.payer, case.payer.pubkey());
        assert_eq!(
            transfer.destination,
            get_associated_token_address_with_program_id(
                &case.terms.pay_to,
                &case.terms.mint,
                &spl_token::ID
            )
        );
        // Re-signed from its own parts, the same payment still passes.
        assert!(case.altered(|_| {}).is_ok());
    }

    #[test]
    fn the_amount_must_be_exactly_the_price() {
        let case = case();
        for amount in [9_999u64, 10_001] {
            let wrong = ExactTerms {
                amount,
                ..case.terms.clone()
            };
            let tx = build_exact(&case.payer, &wrong, &case.mint, Hash::new_unique());
            assert_eq!(
                case.check(&tx),
                Err(SponsoredDefect::WrongPayment("amount"))
            );
        }
    }

    #[test]
    fn the_transfer_must_go_to_the_payees_token_account_in_the_mint() {
        let case = case();
        let elsewhere = ExactTerms {
            pay_to: Pubkey::new_unique(),
            ..case.terms.clone()
        };
        let tx = build_exact(&case.payer, &elsewhere, &case.mint, Hash::new_unique());
        assert_eq!(
            case.check(&tx),
            Err(SponsoredDefect::WrongPayment("destination"))
        );
        let other_mint = ExactTerms {
            mint: Pubkey::new_unique(),
            ..case.terms.clone()
        };
        let tx = build_exact(&case.payer, &other_mint, &case.mint, Hash::new_unique());
        assert_eq!(case.check(&tx), Err(SponsoredDefect::WrongPayment("mint")));
        let decimals = MintInfo {
            decimals: 9,
            ..case.mint
        };
        let tx = build_exact(&case.payer, &case.terms, &decimals, Hash::new_unique());
        assert_eq!(
            case.check(&tx),
            Err(SponsoredDefect::WrongPayment("decimals"))
        );
        // Under the other token program the same transfer is refused.
        let token_2022 = MintInfo {
            token_program: spl_token_2022::ID,
            ..case.mint
        };
        let tx = build_exact(&case.payer, &case.terms, &token_2022, Hash::new_unique());
        assert_eq!(case.check(&tx), Err(SponsoredDefect::UnexpectedInstruction));
    }

    #[test]
    fn the_memo_must_be_the_challenges_and_only_one() {
        let case = case();
        let other = ExactTerms {
            memo: Some("reference-2".into()),
            ..case.terms.clone()
        };
        let tx = build_exact(&case.payer, &other, &case.mint, Hash::new_unique());
        assert_eq!(case.check(&tx), Err(SponsoredDefect::WrongPayment("memo")));
        let twice = case.altered(|ixs| ixs.push(ixs[3].clone()));
        assert_eq!(twice, Err(SponsoredDefect::WrongPayment("memo")));
        let none = case.altered(|ixs| {
            ixs.pop();
        });
        assert_eq!(none, Err(SponsoredDefect::WrongPayment("memo")));
        // A Lighthouse assertion, as wallets add, is allowed beside it.
        let lighthouse = case.altered(|ixs| {
            ixs.insert(
                3,
                Instruction::new_with_bytes(LIGHTHOUSE_PROGRAM, &[1, 2], vec![]),
            )
        });
        assert!(lighthouse.is_ok());
    }

    #[test]
    fn nothing_but_budget_transfer_memo_and_lighthouse() {
        let case = case();
        let foreign = case.altered(|ixs| {
            ixs.push(Instruction::new_with_bytes(
                Pubkey::new_unique(),
                &[],
                vec![],
            ))
        });
        assert_eq!(foreign, Err(SponsoredDefect::UnexpectedInstruction));
        let reordered = case.altered(|ixs| ixs.swap(0, 1));
        assert_eq!(reordered, Err(SponsoredDefect::UnexpectedInstruction));
        let too_many = case.altered(|ixs| {
            for _ in 0..3 {
                ixs.push(Instruction::new_with_bytes(LIGHTHOUSE_PROGRAM, &[], vec![]));
            }
        });
        assert_eq!(too_many, Err(SponsoredDefect::UnexpectedInstruction));
    }

    #[test]
    fn the_compute_budget_is_capped() {
        let case = case();
        let price = case.altered(|ixs| {
            ixs[1] = budget(ComputeBudgetInstruction::SetComputeUnitPrice(5_000_001))
        });
        assert_eq!(price, Err(SponsoredDefect::ComputeBudgetTooHigh));
        let limit = case
            .altered(|ixs| ixs[0] = budget(ComputeBudgetInstruction::SetComputeUnitLimit(200_001)));
        assert_eq!(limit, Err(SponsoredDefect::ComputeBudgetTooHigh));
    }

    #[test]
    fn the_fee_payer_is_in_no_instruction_and_signs_nothing_but_the_fee() {
        let case = case();
        let fee_payer = case.terms.fee_payer;
        let in_memo = case.altered(|ixs| {
            ixs[3].accounts.push(
                anchor_lang::solana_program::instruction::AccountMeta::new_readonly(
                    fee_payer, false,
                ),
            )
        });
        assert_eq!(in_memo, Err(SponsoredDefect::FeePayerMisused));
        // The fee payer as the transfer's authority, the payer signing elsewhere.
        let payer = case.payer.pubkey();
        let ata = |owner: &Pubkey, owner_of: &Pubkey| {
            get_associated_token_address_with_program_id(owner, owner_of, &spl_token::ID)
        };
        let transfer = |source: Pubkey, authority: Pubkey| {
            spl_token_2022::instruction::transfer_checked(
                &spl_token::ID,
                &source,
                &case.terms.mint,
                &ata(&case.terms.pay_to, &case.terms.mint),
                &authority,
                &[],
                10_000,
                6,
            )
            .unwrap()
        };
        let signs_transfer = case.altered(|ixs| {
            ixs[2] = transfer(ata(&payer, &case.terms.mint), fee_payer);
            ixs[3].accounts.push(
                anchor_lang::solana_program::instruction::AccountMeta::new_readonly(payer, true),
            );
        });
        assert_eq!(signs_transfer, Err(SponsoredDefect::FeePayerMisused));
        // The fee payer's token account as the source (spendable by a delegate).
        let source =
            case.altered(|ixs| ixs[2] = transfer(ata(&fee_payer, &case.terms.mint), payer));
        assert_eq!(source, Err(SponsoredDefect::FeePayerMisused));
        let other_fee_payer = ExactTerms {
            fee_payer: Pubkey::new_unique(),
            ..case.terms.clone()
        };
        let tx = build_exact(
            &case.payer,
            &other_fee_payer,
            &case.mint,
            Hash::new_unique(),
        );
        assert_eq!(case.check(&tx), Err(SponsoredDefect::WrongFeePayer));
    }

    #[test]
    fn only_the_payer_and_the_fee_payer_sign_and_the_payers_signature_holds() {
        let case = case();
        let stranger = Keypair::new();
        let third = case.altered(|ixs| {
            ixs[3].accounts.push(
                anchor_lang::solana_program::instruction::AccountMeta::new_readonly(
                    stranger.pubkey(),
                    true,
                ),
            )
        });
        // Three signers needed: refused whoever signed.
        assert!(matches!(
            third,
            Err(SponsoredDefect::WrongSigners) | Err(SponsoredDefect::BadPayerSignature)
        ));
        let mut forged = case.valid();
        forged.signatures[1] = Signature::from([7u8; 64]);
        assert_eq!(case.check(&forged), Err(SponsoredDefect::BadPayerSignature));
    }

    #[test]
    fn lookup_tables_are_refused() {
        let case = case();
        let mut tx = case.valid();
        let VersionedMessage::V0(message) = &mut tx.message else {
            unreachable!()
        };
        message
            .address_table_lookups
            .push(v0::MessageAddressTableLookup {
                account_key: Pubkey::new_unique(),
                writable_indexes: vec![0],
                readonly_indexes: vec![],
            });
        assert_eq!(case.check(&tx), Err(SponsoredDefect::UnexpectedInstruction));
    }

    #[test]
    fn a_mint_that_withholds_part_of_a_transfer_is_refused() {
        let case = case();
        let fee_mint = MintInfo {
            delivers_in_full: false,
            ..case.mint
        };
        let tx = build_exact(&case.payer, &case.terms, &fee_mint, Hash::new_unique());
        assert!(matches!(
            validate_exact(&tx, &case.terms, &fee_mint, &case.policy),
            Err(SponsoredDefect::WrongPayment(_))
        ));
    }

    #[test]
    fn offers_round_trip_and_long_memos_are_refused() {
        let case = case();
        let offer = ExactOffer {
            network: "solana:EtWTRABZaYq6iMfeYKouRu166VU2xqa1".into(),
            terms: case.terms.clone(),
            recent_blockhash: Some(Hash::new_unique()),
            resource: v2::ResourceInfo {
                url: "http://shop/item".into(),
                description: None,
                mime_type: None,
            },
            max_timeout_seconds: 60,
        };
        assert_eq!(ExactOffer::from_offer(&offer.to_offer()), Ok(offer.clone()));
        let mut long = offer.to_offer();
        long.extra.insert("memo".into(), "m".repeat(257).into());
        assert_eq!(
            ExactOffer::from_offer(&long),
            Err(SchemeError::Malformed("extra.memo"))
        );
    }
}
