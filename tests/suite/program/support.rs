//! A test bank with the receipts program, token mints and accounts, and the checks that
//! every refusal test shares.

use anchor_lang::prelude::Pubkey;
use anchor_lang::solana_program::clock::Clock;
use anchor_lang::solana_program::instruction::error::InstructionError;
use anchor_lang::solana_program::instruction::Instruction;
use anchor_lang::{AccountDeserialize, Event, InstructionData, ToAccountMetas};
use solana_account::Account;
use solana_keypair::Keypair;
use solana_program_test::{BanksClientError, ProgramTestContext};
use solana_signer::Signer;
use solana_transaction_error::TransactionError;
use x402_receipts::{Receipt, RECEIPT_SEED};
use x402_testkit::bank;

pub use anchor_spl::token::spl_token;
use anchor_spl::token_2022::spl_token_2022;

pub const DECIMALS: u8 = 6;
/// 1 USDC in base units.
pub const USDC: u64 = 1_000_000;
/// Lamports given to every wallet the tests create.
pub const WALLET_LAMPORTS: u64 = 1_000_000_000;

/// A bank with the program, one mint, a payer holding 100 tokens and a payee with an
/// empty associated token account.
pub struct Market {
    pub bank: ProgramTestContext,
    pub token_program: Pubkey,
    pub mint: Pubkey,
    pub payer: Keypair,
    pub payer_token: Pubkey,
    pub payee: Pubkey,
    pub payee_token: Pubkey,
}

pub enum MintKind {
    SplToken,
    Token2022,
    /// Token-2022 with a transfer fee in basis points.
    Token2022WithFee(u16),
}

impl Market {
    pub async fn new(kind: MintKind) -> Self {
        let mut bank = bank::program_test().start_with_context().await;
        let (token_program, fee_bps) = match kind {
            MintKind::SplToken => (spl_token::ID, None),
            MintKind::Token2022 => (spl_token_2022::ID, None),
            MintKind::Token2022WithFee(bps) => (spl_token_2022::ID, Some(bps)),
        };
        let parties = bank::parties(&mut bank, token_program, DECIMALS, fee_bps, 100 * USDC).await;
        Market {
            bank,
            token_program,
            mint: parties.mint,
            payer: parties.payer,
            payer_token: parties.payer_token,
            payee: parties.payee,
            payee_token: parties.payee_token,
        }
    }

    /// A `pay` from this market's payer to its payee, the payer funding the receipt.
    pub fn pay(&self, reference: [u8; 32], amount: u64, expires_at: i64) -> Pay {
        Pay {
            payer: self.payer.pubkey(),
            rent_payer: self.payer.pubkey(),
            receipt: receipt_address(&reference),
            mint: self.mint,
            payer_token: self.payer_token,
            payee: self.payee,
            payee_token: self.payee_token,
            token_program: self.token_program,
            reference,
            amount,
            expires_at,
        }
    }

    /// Another mint of this market's token program, in the same bank.
    pub async fn new_mint(&mut self) -> Pubkey {
        bank::create_mint(&mut self.bank, self.token_program, DECIMALS, None).await
    }

    /// A funded wallet whose associated token account holds `tokens` of this market's mint.
    pub async fn new_payer(&mut self, tokens: u64) -> (Keypair, Pubkey) {
        let wallet = Keypair::new();
        fund(&mut self.bank, &wallet.pubkey(), WALLET_LAMPORTS).await;
        let token = create_ata(
            &mut self.bank,
            &wallet.pubkey(),
            &self.mint,
            self.token_program,
        )
        .await;
        mint_to(
            &mut self.bank,
            &self.mint,
            &token,
            tokens,
            self.token_program,
        )
        .await;
        (wallet, token)
    }

    pub async fn now(&mut self) -> i64 {
        self.bank
            .banks_client
            .get_sysvar::<Clock>()
            .await
            .unwrap()
            .unix_timestamp
    }

    /// Moves the bank's clock to `unix_timestamp`.
    pub async fn set_time(&mut self, unix_timestamp: i64) {
        bank::set_time(&self.bank, unix_timestamp).await.unwrap();
    }

    pub async fn send(
        &mut self,
        instructions: &[Instruction],
        signers: &[&Keypair],
    ) -> Result<(), BanksClientError> {
        let tx = bank::transaction(&mut self.bank, instructions, signers).await;
        self.bank.banks_client.process_transaction(tx).await
    }

    /// Sends `instructions` and returns the events the program logged: `None` when the
    /// program runs natively, where events cannot be seen (the SBF pass of the suite
    /// checks them).
    pub async fn send_for_events(
        &mut self,
        instructions: &[Instruction],
        signers: &[&Keypair],
    ) -> Option<Vec<Vec<u8>>> {
        let tx = bank::transaction(&mut self.bank, instructions, signers).await;
        let outcome = self
            .bank
            .banks_client
            .process_transaction_with_metadata(tx)
            .await
            .unwrap();
        outcome.result.expect("transaction succeeds");
        bank::events(&outcome.metadata.expect("metadata").log_messages)
    }

    pub async fn token_balance(&mut self, account: &Pubkey) -> u64 {
        bank::token_balance(&self.bank.banks_client, account).await
    }

    pub async fn lamports(&mut self, address: &Pubkey) -> u64 {
        self.bank.banks_client.get_balance(*address).await.unwrap()
    }

    pub async fn account(&mut self, address: &Pubkey) -> Option<Account> {
        self.bank.banks_client.get_account(*address).await.unwrap()
    }

    pub async fn receipt(&mut self, reference: &[u8; 32]) -> Option<Receipt> {
        let account = self.account(&receipt_address(reference)).await?;
        assert_eq!(
            account.owner,
            x402_receipts::ID,
            "a receipt is owned by the program"
        );
        Some(Receipt::try_deserialize(&mut account.data.as_slice()).unwrap())
    }

    /// What a refused payment must leave untouched.
    pub async fn snapshot(&mut self, reference: &[u8; 32]) -> Snapshot {
        let payer_token = self.payer_token;
        let payee_token = self.payee_token;
        Snapshot {
            payer_tokens: self.token_balance(&payer_token).await,
            payee_tokens: self.token_balance(&payee_token).await,
            receipt: self.account(&receipt_address(reference)).await,
        }
    }

    /// Sends `pay` and asserts that it is refused with `code`, moving no tokens and
    /// creating no receipt.
    pub async fn assert_pay_refused(&mut self, pay: &Pay, signers: &[&Keypair], code: u32) {
        let before = self.snapshot(&pay.reference).await;
        let result = self.send(&[pay.instruction()], signers).await;
        assert_eq!(custom_error(result), Some(code), "refusal code");
        let after = self.snapshot(&pay.reference).await;
        assert_eq!(
            before, after,
            "a refused payment moves nothing and creates nothing"
        );
    }
}

#[derive(Debug, PartialEq)]
pub struct Snapshot {
    payer_tokens: u64,
    payee_tokens: u64,
    receipt: Option<Account>,
}

/// Every account and argument of one `pay`, so that a test can change any of them.
#[derive(Clone)]
pub struct Pay {
    pub payer: Pubkey,
    pub rent_payer: Pubkey,
    pub receipt: Pubkey,
    pub mint: Pubkey,
    pub payer_token: Pubkey,
    pub payee: Pubkey,
    pub payee_token: Pubkey,
    pub token_program: Pubkey,
    pub reference: [u8; 32],
    pub amount: u64,
    pub expires_at: i64,
}

impl Pay {
    pub fn instruction(&self) -> Instruction {
        Instruction {
            program_id: x402_receipts::ID,
            accounts: x402_receipts::accounts::Pay {
                payer: self.payer,
                rent_payer: self.rent_payer,
                receipt: self.receipt,
                mint: self.mint,
                payer_token: self.payer_token,
                payee: self.payee,
                payee_token: self.payee_token,
                token_program: self.token_program,
                system_program: anchor_lang::system_program::ID,
            }
            .to_account_metas(None),
            data: x402_receipts::instruction::Pay {
                reference: self.reference,
                amount: self.amount,
                expires_at: self.expires_at,
            }
            .data(),
        }
    }
}

pub fn close_receipt_instruction(rent_payer: &Pubkey, reference: &[u8; 32]) -> Instruction {
    Instruction {
        program_id: x402_receipts::ID,
        accounts: x402_receipts::accounts::CloseReceipt {
            rent_payer: *rent_payer,
            receipt: receipt_address(reference),
        }
        .to_account_metas(None),
        data: x402_receipts::instruction::CloseReceipt {}.data(),
    }
}

pub fn receipt_address(reference: &[u8; 32]) -> Pubkey {
    Pubkey::find_program_address(&[RECEIPT_SEED, reference], &x402_receipts::ID).0
}

/// A fresh random reference.
pub fn new_reference() -> [u8; 32] {
    Pubkey::new_unique().to_bytes()
}

/// Decodes an Anchor event from its logged bytes (discriminator, then Borsh).
pub fn decode_event<E: Event + anchor_lang::AnchorDeserialize>(bytes: &[u8]) -> Option<E> {
    let body = bytes.strip_prefix(E::DISCRIMINATOR)?;
    Some(E::deserialize(&mut &body[..]).unwrap())
}

/// The custom program error code a failed transaction ended with.
pub fn custom_error(result: Result<(), BanksClientError>) -> Option<u32> {
    match result {
        Err(BanksClientError::TransactionError(TransactionError::InstructionError(
            _,
            InstructionError::Custom(code),
        ))) => Some(code),
        Err(other) => panic!("expected a program error, got {other:?}"),
        Ok(()) => None,
    }
}

pub use bank::{create_ata, create_token_account, fund, mint_to};
