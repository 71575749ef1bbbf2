//! minisign keys: generating a key pair on disk, loading it, signing packs
//! and verifying their signatures.
//!
//! Files are in the standard minisign formats, so the `minisign` CLI works
//! on them unchanged (`minisign -Vm PACK -x PACK.minisig -p ringmaster.pub`):
//!
//! - `ringmaster.pub`: `untrusted comment: …` then the base64 of
//!   `"Ed" ‖ key id (8 bytes, little endian) ‖ Ed25519 public key (32)`.
//! - `ringmaster.key` (mode 0600): `untrusted comment: …` then the base64 of
//!   `"Ed" ‖ kdf algorithm ‖ "B2" ‖ scrypt salt (32) ‖ opslimit (8) ‖
//!   memlimit (8) ‖ key id (8) ‖ secret key (64) ‖ BLAKE2b checksum (32)`,
//!   the last three encrypted by XOR with an scrypt stream derived from the
//!   password. A key generated without a password has the kdf algorithm
//!   bytes `00 00` (minisign's `-W`): salt and limits are zero and the key
//!   material is stored in clear — the file mode is then its only protection.
//!
//! Signatures use minisign's default pre-hashed algorithm (`ED`: Ed25519
//! over the BLAKE2b-512 of the file), which every minisign ≥ 0.8 verifies
//! without `-l`.

use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::{Cursor, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use minisign::{KeyPair, PublicKey, PublicKeyBox, SecretKey, SecretKeyBox, SignatureBox};

use super::{EvidenceError, Result, io_context};

/// File name of the secret key written by [`generate_keypair`].
pub const SECRET_KEY_FILE_NAME: &str = "ringmaster.key";
/// File name of the public key written by [`generate_keypair`].
pub const PUBLIC_KEY_FILE_NAME: &str = "ringmaster.pub";

/// Where [`generate_keypair`] wrote the key pair, and its minisign key id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyPaths {
    pub secret_key: PathBuf,
    pub public_key: PathBuf,
    /// The key id as minisign prints it: 16 upper-case hex digits.
    pub key_id: String,
    pub password_protected: bool,
}

impl fmt::Display for KeyPaths {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        let protection = if self.password_protected {
            "password-protected"
        } else {
            "NOT password-protected"
        };
        writeln!(
            formatter,
            "secret key: {} (mode 0600, {protection})",
            self.secret_key.display()
        )?;
        writeln!(formatter, "public key: {}", self.public_key.display())?;
        write!(formatter, "key id:     {}", self.key_id)
    }
}

/// Generates a minisign key pair as `dir/ringmaster.key` (mode 0600) and
/// `dir/ringmaster.pub`, creating `dir` if needed.
///
/// With a password the secret key is encrypted with minisign's scrypt
/// parameters; without one it is stored unencrypted (see the module
/// documentation). Existing keys are never overwritten unless `force` is
/// set; files are written to a temporary name, synced, then linked (or, with
/// `force`, renamed) into place, so a crash never leaves half a key.
pub fn generate_keypair(dir: &Path, password: Option<&str>, force: bool) -> Result<KeyPaths> {
    let secret_key_path = dir.join(SECRET_KEY_FILE_NAME);
    let public_key_path = dir.join(PUBLIC_KEY_FILE_NAME);
    if !force {
        for path in [&secret_key_path, &public_key_path] {
            if path.exists() {
                return Err(EvidenceError::KeyExists { path: path.clone() });
            }
        }
    }
    fs::create_dir_all(dir).map_err(io_context(dir))?;

    let key_pair = match password {
        Some(password) => KeyPair::generate_encrypted_keypair(Some(password.to_string())),
        None => KeyPair::generate_unencrypted_keypair(),
    }
    .map_err(signing_error)?;
    let key_id = key_id_of(key_pair.pk.keynum());
    let secret_comment = match password {
        Some(_) => format!("ringmaster secret key {key_id} (encrypted)"),
        None => format!("ringmaster secret key {key_id} (unencrypted)"),
    };
    let secret_box = key_pair
        .sk
        .to_box(Some(&secret_comment))
        .map_err(signing_error)?;
    let public_box = key_pair.pk.to_box().map_err(signing_error)?;

    write_key_file(
        &secret_key_path,
        secret_box.to_bytes().as_slice(),
        0o600,
        force,
    )?;
    write_key_file(
        &public_key_path,
        public_box.to_bytes().as_slice(),
        0o644,
        force,
    )?;
    sync_directory(dir)?;
    Ok(KeyPaths {
        secret_key: secret_key_path,
        public_key: public_key_path,
        key_id,
        password_protected: password.is_some(),
    })
}

fn write_key_file(path: &Path, contents: &[u8], mode: u32, force: bool) -> Result<()> {
    let mut temporary_name = path.as_os_str().to_owned();
    temporary_name.push(format!(".tmp-{}", std::process::id()));
    let temporary_path = PathBuf::from(temporary_name);
    let _ = fs::remove_file(&temporary_path);
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(&temporary_path)
        .map_err(io_context(&temporary_path))?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .map_err(io_context(&temporary_path))?;
    drop(file);
    let placed = if force {
        fs::rename(&temporary_path, path)
    } else {
        // A hard link fails if the target exists: no overwrite, even racing.
        fs::hard_link(&temporary_path, path).and_then(|()| fs::remove_file(&temporary_path))
    };
    placed.map_err(|source| {
        let _ = fs::remove_file(&temporary_path);
        if source.kind() == std::io::ErrorKind::AlreadyExists {
            EvidenceError::KeyExists {
                path: path.to_path_buf(),
            }
        } else {
            EvidenceError::Io {
                path: path.to_path_buf(),
                source,
            }
        }
    })
}

/// fsyncs a directory so that entries created in it survive a crash.
pub(crate) fn sync_directory(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|directory| directory.sync_all())
        .map_err(io_context(dir))
}

fn signing_error(error: minisign::PError) -> EvidenceError {
    EvidenceError::Signing {
        reason: error.to_string(),
    }
}

fn key_id_of(keynum: &[u8]) -> String {
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&keynum[..8]);
    format!("{:016X}", u64::from_le_bytes(bytes))
}

/// A decrypted minisign secret key, ready to sign evidence packs.
/// Its `Debug` output never shows key material.
#[derive(Clone)]
pub struct SigningKey {
    secret_key: SecretKey,
    public_key: PublicKey,
    key_id: String,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, formatter: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            formatter,
            "SigningKey {{ key_id: {}, secret: *** }}",
            self.key_id
        )
    }
}

impl SigningKey {
    /// Loads a minisign secret key file. `password` must be given exactly
    /// when the key is encrypted; nothing is ever prompted for. The key is
    /// checked by signing and verifying a probe before it is returned.
    pub fn load(path: &Path, password: Option<&str>) -> Result<Self> {
        let text = fs::read_to_string(path).map_err(io_context(path))?;
        let secret_key = match password {
            Some(password) => {
                let secret_box =
                    SecretKeyBox::from_string(&text).map_err(|error| key_load(path, error))?;
                SecretKey::from_box(secret_box, Some(password.to_string()))
                    .map_err(|error| key_load(path, error))?
            }
            None => load_unencrypted_secret_key(path, &text)?,
        };
        let signing_key = Self::from_secret_key(secret_key)?;
        signing_key.check_key_pair(path)?;
        Ok(signing_key)
    }

    /// Signs and verifies a probe, so a damaged key is refused at load
    /// time rather than producing signatures nobody can verify.
    fn check_key_pair(&self, path: &Path) -> Result<()> {
        let probe = b"ringmaster key self-check";
        let signature = self.sign(probe, "self-check", "self-check")?;
        self.verifying_key()
            .verify(probe, &signature)
            .map(|_| ())
            .map_err(|reason| EvidenceError::KeyLoad {
                path: path.to_path_buf(),
                reason: format!("the key pair is damaged: {reason}"),
            })
    }

    /// Generates a fresh key pair in memory only (tests, benchmarks,
    /// throw-away signers); use [`generate_keypair`] for a real key.
    pub fn generate_ephemeral() -> Result<Self> {
        let key_pair = KeyPair::generate_unencrypted_keypair().map_err(signing_error)?;
        Self::from_secret_key(key_pair.sk)
    }

    fn from_secret_key(secret_key: SecretKey) -> Result<Self> {
        let public_key = PublicKey::from_secret_key(&secret_key).map_err(signing_error)?;
        let key_id = key_id_of(public_key.keynum());
        Ok(Self {
            secret_key,
            public_key,
            key_id,
        })
    }

    /// The minisign key id (16 upper-case hex digits).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// The matching public key.
    pub fn verifying_key(&self) -> VerifyingKey {
        VerifyingKey {
            public_key: self.public_key.clone(),
            key_id: self.key_id.clone(),
        }
    }

    /// Signs `data`, returning the text of a `.minisig` file whose trusted
    /// comment is `trusted_comment` (which must be a single line).
    pub fn sign(
        &self,
        data: &[u8],
        trusted_comment: &str,
        untrusted_comment: &str,
    ) -> Result<String> {
        minisign::sign(
            None,
            &self.secret_key,
            Cursor::new(data),
            Some(trusted_comment),
            Some(untrusted_comment),
        )
        .map(SignatureBox::into_string)
        .map_err(signing_error)
    }
}

/// Loads a secret key stored without a password. Keys written by
/// `generate_keypair` carry minisign's BLAKE2b checksum, which is checked;
/// the minisign CLI (`-W`) leaves the checksum zero, so such a key is
/// decoded as is and checked by the signing probe in `SigningKey::load`.
fn load_unencrypted_secret_key(path: &Path, text: &str) -> Result<SecretKey> {
    let invalid = |reason: &str| EvidenceError::KeyLoad {
        path: path.to_path_buf(),
        reason: reason.to_string(),
    };
    let bytes = text
        .lines()
        .nth(1)
        .and_then(|line| decode_base64(line.trim()))
        .ok_or_else(|| invalid("not a minisign secret key file"))?;
    // sig alg (2) ‖ kdf alg (2) ‖ … ‖ checksum (32), 158 bytes in all.
    if bytes.len() != 158 {
        return Err(invalid("not a minisign secret key file"));
    }
    if bytes[2..4] != [0, 0] {
        return Err(invalid(
            "the secret key is password-protected: give its password",
        ));
    }
    if bytes[126..].iter().any(|byte| *byte != 0) {
        let secret_box = SecretKeyBox::from_string(text).map_err(|error| key_load(path, error))?;
        SecretKey::from_unencrypted_box(secret_box).map_err(|error| key_load(path, error))
    } else {
        SecretKey::from_bytes(&bytes).map_err(|error| key_load(path, error))
    }
}

/// Decodes standard, padded base64 (the encoding of minisign key files).
fn decode_base64(text: &str) -> Option<Vec<u8>> {
    fn sextet(byte: u8) -> Option<u32> {
        match byte {
            b'A'..=b'Z' => Some(u32::from(byte - b'A')),
            b'a'..=b'z' => Some(u32::from(byte - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(byte - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let bytes = text.as_bytes();
    if !bytes.len().is_multiple_of(4) {
        return None;
    }
    let mut output = Vec::with_capacity(bytes.len() / 4 * 3);
    for (index, group) in bytes.chunks(4).enumerate() {
        let is_last = index == bytes.len() / 4 - 1;
        let padding = group.iter().rev().take_while(|byte| **byte == b'=').count();
        if padding > 2 || (padding > 0 && !is_last) {
            return None;
        }
        let mut value = 0u32;
        for byte in &group[..4 - padding] {
            value = (value << 6) | sextet(*byte)?;
        }
        value <<= 6 * padding as u32;
        let decoded = [(value >> 16) as u8, (value >> 8) as u8, value as u8];
        output.extend_from_slice(&decoded[..3 - padding]);
    }
    Some(output)
}

fn key_load(path: &Path, error: minisign::PError) -> EvidenceError {
    EvidenceError::KeyLoad {
        path: path.to_path_buf(),
        reason: error.to_string(),
    }
}

/// A minisign public key, to verify evidence signatures.
#[derive(Clone, Debug)]
pub struct VerifyingKey {
    public_key: PublicKey,
    key_id: String,
}

impl VerifyingKey {
    /// Loads a minisign public key file (`ringmaster.pub`).
    pub fn load(path: &Path) -> Result<Self> {
        let text = fs::read_to_string(path).map_err(io_context(path))?;
        let public_key = PublicKeyBox::from_string(&text)
            .and_then(PublicKeyBox::into_public_key)
            .map_err(|error| key_load(path, error))?;
        let key_id = key_id_of(public_key.keynum());
        Ok(Self { public_key, key_id })
    }

    /// The minisign key id (16 upper-case hex digits).
    pub fn key_id(&self) -> &str {
        &self.key_id
    }

    /// Verifies a `.minisig` text over `data` (both the signature over the
    /// data and the global signature over the trusted comment) and returns
    /// the trusted comment. Legacy (non-prehashed) signatures are refused.
    /// The error is a sentence fit for a verification report.
    pub fn verify(&self, data: &[u8], signature_text: &str) -> Result<String, String> {
        let signature_box = SignatureBox::from_string(signature_text)
            .map_err(|error| format!("signature file is not a minisign signature: {error}"))?;
        let signer_key_id = key_id_of(signature_box.keynum());
        if signer_key_id != self.key_id {
            return Err(format!(
                "signature does not verify with the given public key: it was made by key {signer_key_id}, the public key is {}",
                self.key_id
            ));
        }
        minisign::verify(
            &self.public_key,
            &signature_box,
            Cursor::new(data),
            true,
            false,
            false,
        )
        .map_err(|error| format!("signature does not verify with the given public key: {error}"))?;
        signature_box
            .trusted_comment()
            .map_err(|error| format!("signature has no readable trusted comment: {error}"))
    }
}

#[cfg(test)]
mod tests {
    use super::decode_base64;

    #[test]
    fn base64_decoding_matches_the_standard_alphabet_and_padding() {
        assert_eq!(decode_base64("").unwrap(), b"");
        assert_eq!(decode_base64("Zg==").unwrap(), b"f");
        assert_eq!(decode_base64("Zm8=").unwrap(), b"fo");
        assert_eq!(decode_base64("Zm9v").unwrap(), b"foo");
        assert_eq!(decode_base64("+/+/").unwrap(), [0xfb, 0xff, 0xbf]);
        assert_eq!(decode_base64("Zg==Zg=="), None);
        assert_eq!(decode_base64("Zm9"), None);
        assert_eq!(decode_base64("Zm9*"), None);
    }
}
