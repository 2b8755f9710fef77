//! What ACME keeps under `<data-dir>/acme/` (directory mode 0700, files
//! 0600): the account key (`account.key`, PKCS#8 PEM) and its URL
//! (`account.url`), and per set of domains its certificate
//! (`<domains>.crt`, the chain) and key (`<domains>.key`). Files are
//! replaced by rename, so a crash never leaves half a certificate.
//!
//! It must not decide anything: whether a kept certificate is still good
//! is the manager's question.

use super::jws::AccountKey;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::PrivatePkcs8KeyDer;
use std::fs::{self, OpenOptions};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// The ACME directory under the data directory.
#[derive(Debug, Clone)]
pub struct Store {
    dir: PathBuf,
}

impl Store {
    /// `<data_dir>/acme`, created (mode 0700) if missing.
    pub fn open(data_dir: &Path) -> Result<Store, String> {
        let dir = data_dir.join("acme");
        fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        fs::set_permissions(&dir, fs::Permissions::from_mode(0o700))
            .map_err(|e| format!("{}: {e}", dir.display()))?;
        Ok(Store { dir })
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The kept account key, or a new one (kept at once).
    pub fn account_key(&self) -> Result<AccountKey, String> {
        let path = self.dir.join("account.key");
        match fs::read(&path) {
            Ok(pem) => {
                let der = PrivatePkcs8KeyDer::from_pem_slice(&pem)
                    .map_err(|e| format!("{}: {e}", path.display()))?;
                AccountKey::from_pkcs8(der.secret_pkcs8_der())
                    .map_err(|e| format!("{}: {e}", path.display()))
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                let key = AccountKey::generate()?;
                self.write("account.key", pem("PRIVATE KEY", key.pkcs8()).as_bytes())?;
                log::info!("acme: new account key in {}", path.display());
                Ok(key)
            }
            Err(e) => Err(format!("{}: {e}", path.display())),
        }
    }

    /// Keeps the account's URL (for the operator: the CA's account).
    pub fn save_account_url(&self, url: &str) -> Result<(), String> {
        self.write("account.url", format!("{url}\n").as_bytes())
    }

    /// The kept chain and key PEM for `domains`, if any.
    pub fn certificate(&self, domains: &[String]) -> Option<(Vec<u8>, Vec<u8>)> {
        let name = file_name(domains);
        let chain = fs::read(self.dir.join(format!("{name}.crt"))).ok()?;
        let key = fs::read(self.dir.join(format!("{name}.key"))).ok()?;
        Some((chain, key))
    }

    /// Keeps a new chain and key for `domains` (the key first: a chain
    /// never sits beside a key that is not its own for longer than the
    /// two renames).
    pub fn save_certificate(
        &self,
        domains: &[String],
        chain: &str,
        key: &str,
    ) -> Result<(), String> {
        let name = file_name(domains);
        self.write(&format!("{name}.key"), key.as_bytes())?;
        self.write(&format!("{name}.crt"), chain.as_bytes())
    }

    /// Writes `name` through a temporary file and a rename, mode 0600.
    fn write(&self, name: &str, bytes: &[u8]) -> Result<(), String> {
        let path = self.dir.join(name);
        let temp = self.dir.join(format!(".{name}.tmp"));
        let fail = |e: std::io::Error| format!("{}: {e}", path.display());
        let _ = fs::remove_file(&temp);
        let mut file = OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temp)
            .map_err(fail)?;
        file.write_all(bytes).map_err(fail)?;
        file.sync_all().map_err(fail)?;
        fs::rename(&temp, &path).map_err(fail)
    }
}

/// The files' stem for a set of domains: the names in order, joined by
/// `+` (DNS names hold no `+` or `/`).
fn file_name(domains: &[String]) -> String {
    let mut names: Vec<String> = domains
        .iter()
        .map(|d| d.to_ascii_lowercase().replace(['/', '\\'], "_"))
        .collect();
    names.sort();
    names.dedup();
    names.join("+").replace('*', "_wildcard_")
}

/// PEM text of one DER object.
pub fn pem(label: &str, der: &[u8]) -> String {
    use base64::Engine;
    let text = base64::engine::general_purpose::STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in text.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_certificates_are_kept_private_and_reused() {
        let data = tempfile::tempdir().unwrap();
        let store = Store::open(data.path()).unwrap();
        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(store.dir()), 0o700);
        let key = store.account_key().unwrap();
        assert_eq!(mode(&store.dir().join("account.key")), 0o600);
        let again = Store::open(data.path()).unwrap().account_key().unwrap();
        assert_eq!(key.thumbprint(), again.thumbprint(), "the key is reused");
        let domains = vec!["b.example".to_string(), "A.example".to_string()];
        assert!(store.certificate(&domains).is_none());
        store.save_certificate(&domains, "CHAIN", "KEY").unwrap();
        assert_eq!(mode(&store.dir().join("a.example+b.example.crt")), 0o600);
        let reordered = vec!["a.example".to_string(), "b.example".to_string()];
        let (chain, key) = store.certificate(&reordered).unwrap();
        assert_eq!((&chain[..], &key[..]), (&b"CHAIN"[..], &b"KEY"[..]));
    }

    #[test]
    fn a_damaged_account_key_is_an_error_not_a_new_account() {
        let data = tempfile::tempdir().unwrap();
        let store = Store::open(data.path()).unwrap();
        fs::write(store.dir().join("account.key"), "garbage").unwrap();
        assert!(store.account_key().is_err());
    }
}
