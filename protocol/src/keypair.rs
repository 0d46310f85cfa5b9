//! Keypairs in the Solana CLI's file format: a JSON array of the 64 secret and public
//! bytes. Errors name the file, never its content.

use std::path::Path;

use solana_keypair::Keypair;

/// Reads a keypair file.
pub fn read_keypair_file(path: &Path) -> Result<Keypair, String> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| format!("cannot read keypair {}: {e}", path.display()))?;
    let bytes: Vec<u8> = serde_json::from_str(&text).map_err(|_| {
        format!(
            "{} is not a Solana keypair file (a JSON array of 64 bytes)",
            path.display()
        )
    })?;
    Keypair::try_from(bytes.as_slice())
        .map_err(|_| format!("{} does not hold a valid keypair", path.display()))
}

/// Writes a keypair file readable by its owner only, creating its directory.
pub fn write_keypair_file(keypair: &Keypair, path: &Path) -> std::io::Result<()> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
    }
    let json = serde_json::to_string(&keypair.to_bytes().to_vec()).expect("bytes serialize");
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    std::io::Write::write_all(&mut options.open(path)?, json.as_bytes())
}

#[cfg(test)]
mod tests {
    use solana_signer::Signer;

    use super::*;

    #[test]
    fn a_keypair_file_round_trips_and_bad_files_are_named_not_shown() {
        let dir = std::env::temp_dir().join(format!("x402-keypair-{}", Keypair::new().pubkey()));
        let path = dir.join("id.json");
        let keypair = Keypair::new();
        write_keypair_file(&keypair, &path).unwrap();
        assert_eq!(read_keypair_file(&path).unwrap().pubkey(), keypair.pubkey());

        std::fs::write(&path, "[1, 2, 3] secret-looking-content").unwrap();
        let error = read_keypair_file(&path).unwrap_err();
        assert!(
            error.contains("id.json") && !error.contains("secret-looking"),
            "{error}"
        );
        std::fs::remove_dir_all(dir).unwrap();
    }
}
