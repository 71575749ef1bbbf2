//! SSH commit signatures: who signed a commit, if anyone.
//!
//! git signs a commit with an SSH key (`gpg.format=ssh`) by putting an
//! armored SSHSIG (namespace `git`) in the commit's `gpgsig` header, over
//! the commit object without that header. [`check`] verifies such a
//! signature with the key it names and returns that key's fingerprint; the
//! judge then asks which principal lists the key (`signing_keys`), so a
//! key removed from `principals/` by an authorised commit no longer vouches
//! for anything. Pure: bytes in, a verdict out (the shell extracts the
//! signature and the signed payload with git2).

use serde::Serialize;
use ssh_key::{HashAlg, PublicKey, SshSig};

/// The SSHSIG namespace git signs commits in.
pub const GIT_NAMESPACE: &str = "git";

/// What a commit's signature proves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "status", rename_all = "snake_case")]
pub enum SignatureCheck {
    /// No `gpgsig` header.
    Unsigned,
    /// A signature that does not verify (tampered commit, wrong namespace,
    /// not an SSH signature, unreadable), and why.
    Invalid { reason: String },
    /// A valid signature by the key with this fingerprint (`SHA256:…`).
    Valid { fingerprint: String },
}

impl SignatureCheck {
    /// The signing key's fingerprint when the signature verifies.
    pub fn fingerprint(&self) -> Option<&str> {
        match self {
            SignatureCheck::Valid { fingerprint } => Some(fingerprint),
            _ => None,
        }
    }
}

/// Verifies an armored SSH signature over `payload` (namespace `git`).
pub fn check(signature: Option<&str>, payload: &[u8]) -> SignatureCheck {
    let Some(signature) = signature else {
        return SignatureCheck::Unsigned;
    };
    let invalid = |reason: String| SignatureCheck::Invalid { reason };
    if !signature
        .trim_start()
        .starts_with("-----BEGIN SSH SIGNATURE-----")
    {
        return invalid("not an SSH signature (only gpg.format=ssh is accepted)".into());
    }
    let parsed = match SshSig::from_pem(signature.trim()) {
        Ok(parsed) => parsed,
        Err(error) => return invalid(format!("unreadable SSH signature: {error}")),
    };
    if parsed.namespace() != GIT_NAMESPACE {
        return invalid(format!(
            "signed in namespace {:?}, not {GIT_NAMESPACE:?}",
            parsed.namespace()
        ));
    }
    let key = PublicKey::new(parsed.public_key().clone(), "");
    match key.verify(GIT_NAMESPACE, payload, &parsed) {
        Ok(()) => SignatureCheck::Valid {
            fingerprint: key.fingerprint(HashAlg::Sha256).to_string(),
        },
        Err(error) => invalid(format!(
            "the signature does not match the commit's content ({error}): the commit was altered after signing or signed by another key"
        )),
    }
}

/// The fingerprint (`SHA256:…`) of a public key in OpenSSH format
/// (`ssh-ed25519 AAAA… comment`), or why it cannot be read.
pub fn fingerprint(public_key: &str) -> Result<String, String> {
    PublicKey::from_openssh(public_key.trim())
        .map(|key| key.fingerprint(HashAlg::Sha256).to_string())
        .map_err(|error| error.to_string())
}

/// Signs `payload` as git would with `gpg.format=ssh` (for the demo, which
/// commits in-process): the armored SSHSIG for the `gpgsig` header.
pub fn sign(private_key: &ssh_key::PrivateKey, payload: &[u8]) -> Result<String, String> {
    let signature = private_key
        .sign(GIT_NAMESPACE, HashAlg::Sha512, payload)
        .map_err(|error| error.to_string())?;
    signature
        .to_pem(ssh_key::LineEnding::LF)
        .map_err(|error| error.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key() -> ssh_key::PrivateKey {
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .expect("key")
    }

    #[test]
    fn a_signature_verifies_only_over_what_was_signed() {
        let key = key();
        let signature = sign(&key, b"tree abc\n\nmessage\n").expect("sign");
        let expected = key.public_key().fingerprint(HashAlg::Sha256).to_string();
        assert_eq!(
            check(Some(&signature), b"tree abc\n\nmessage\n"),
            SignatureCheck::Valid {
                fingerprint: expected.clone()
            }
        );
        assert!(matches!(
            check(Some(&signature), b"tree abc\n\nanother message\n"),
            SignatureCheck::Invalid { .. }
        ));
        assert_eq!(check(None, b"x"), SignatureCheck::Unsigned);
        assert!(matches!(
            check(Some("-----BEGIN PGP SIGNATURE-----\n"), b"x"),
            SignatureCheck::Invalid { .. }
        ));
        let openssh = key.public_key().to_openssh().expect("openssh");
        assert_eq!(fingerprint(&openssh), Ok(expected));
        assert!(fingerprint("ssh-ed25519 not-base64").is_err());
    }
}
