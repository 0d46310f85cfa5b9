//! Anchor's host-side IDL generation (the `idl-build` feature) works, and the IDL that
//! explorers and TypeScript clients read describes the whole public interface.

use std::path::PathBuf;

use anchor_lang_idl::build::IdlBuilder;

#[test]
fn the_idl_lists_the_instructions_the_receipt_account_and_the_events() {
    // rustup sets RUSTUP_TOOLCHAIN for everything cargo runs, and anchor-lang-idl 0.1.4
    // then passes the literal argument "+{toolchain}" to cargo. This binary holds this one
    // test, so no other thread reads the environment while it changes.
    std::env::remove_var("RUSTUP_TOOLCHAIN");
    let workspace = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..");
    let program = workspace.join("programs/x402-receipts");
    // Its own target directory: `idl-build` compiles with other flags than the tests.
    let target = workspace.join("target/idl-build");
    let mut cargo_args = vec![
        "--lib".to_string(),
        "--target-dir".into(),
        target.display().to_string(),
    ];
    if std::env::var_os("CI").is_some() {
        cargo_args.push("--locked".into());
    }
    let idl = IdlBuilder::new()
        .program_path(program.clone())
        .cargo_args(cargo_args)
        .build()
        .expect("anchor builds the IDL on the host");

    assert_eq!(idl.address, x402_receipts::ID.to_string());
    assert_eq!(idl.metadata.name, "x402_receipts");
    let instructions: Vec<&str> = idl.instructions.iter().map(|i| i.name.as_str()).collect();
    assert_eq!(instructions, ["close_receipt", "pay"]);
    let pay = idl.instructions.iter().find(|i| i.name == "pay").unwrap();
    let accounts: Vec<String> = pay
        .accounts
        .iter()
        .map(|a| match a {
            anchor_lang_idl::types::IdlInstructionAccountItem::Single(a) => a.name.clone(),
            anchor_lang_idl::types::IdlInstructionAccountItem::Composite(a) => a.name.clone(),
        })
        .collect();
    assert_eq!(
        accounts,
        [
            "payer",
            "rent_payer",
            "receipt",
            "mint",
            "payer_token",
            "payee",
            "payee_token",
            "token_program",
            "system_program"
        ]
    );
    let args: Vec<&str> = pay.args.iter().map(|a| a.name.as_str()).collect();
    assert_eq!(args, ["reference", "amount", "expires_at"]);
    assert!(!pay.docs.is_empty(), "instruction docs reach the IDL");

    assert_eq!(
        idl.accounts
            .iter()
            .map(|a| a.name.as_str())
            .collect::<Vec<_>>(),
        ["Receipt"]
    );
    let mut events: Vec<&str> = idl.events.iter().map(|e| e.name.as_str()).collect();
    events.sort();
    assert_eq!(events, ["PaymentSettled", "ReceiptClosed"]);
    let seed = idl
        .constants
        .iter()
        .find(|c| c.name == "RECEIPT_SEED")
        .expect("RECEIPT_SEED");
    assert!(
        seed.value.contains("114, 101, 99, 101, 105, 112, 116"),
        "b\"receipt\": {}",
        seed.value
    );
    assert!(idl.errors.iter().any(|e| e.name == "ReferenceAlreadyPaid"));

    // Where `anchor build` puts it, for explorers and TypeScript clients.
    let out = workspace.join("target/idl");
    std::fs::create_dir_all(&out).unwrap();
    let built = serde_json::to_string_pretty(&idl).unwrap();
    std::fs::write(out.join("x402_receipts.json"), &built).unwrap();
    // The committed copy the JS package generates its receipt client from (js/src/generated).
    let committed = std::fs::read_to_string(program.join("idl.json")).unwrap();
    assert!(
        committed == built,
        "programs/x402-receipts/idl.json is not the program's IDL: copy \
         target/idl/x402_receipts.json there, then `npm run generate --prefix js`"
    );
}
