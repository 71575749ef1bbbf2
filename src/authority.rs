//! Who proved they acted: commit signatures and reviews as identity.
//!
//! A file in the repository is a claim; what proves who made it is either an
//! approving pull request review by that person (the forge, see
//! `forge::review`) or an SSH signature on the commit that wrote it, by a key
//! the person lists in `principals/` (`signing_keys`). This module answers
//! the questions the judge and the daemon ask about signatures, always
//! against the principals *in force before the change* — a commit can never
//! vouch for itself with a key it adds, and a key removed by an authorised
//! commit vouches for nothing any more:
//!
//! - whose key made a valid signature ([`KeyRing::signer`]);
//! - does a signature prove that a named principal made a change
//!   ([`KeyRing::signed_by`]), and if not, why (shown to the user);
//! - is a change to the rules themselves authorised ([`authorise_rules_change`]);
//! - which commits break `require_signed_commits` ([`KeyRing::unsigned`]).
//!
//! Pure: signatures come in already checked (`model::signing`, by the shell
//! that reads the commits); nothing here touches Git.

use crate::model::signing::{self, SignatureCheck};
use crate::model::{Role, Snapshot};
use serde::Serialize;
use std::collections::BTreeMap;

/// A commit and what its SSH signature proves.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct CommitSignature {
    pub commit: String,
    pub signature: SignatureCheck,
}

impl CommitSignature {
    fn short(&self) -> &str {
        self.commit.get(..10).unwrap_or(&self.commit)
    }
}

/// What a change's history proves: who signed the commits that wrote each
/// record, and every commit of the change (read by `source::history`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct ChangeHistory {
    /// For each record the change adds, edits or deletes (by path): the
    /// signatures of the commits that wrote it.
    pub signed: BTreeMap<String, Vec<CommitSignature>>,
    /// The change's first-parent commits, oldest first.
    pub commits: Vec<CommitSignature>,
}

/// The signing keys of a set of principals, by fingerprint.
#[derive(Debug, Clone, Default)]
pub struct KeyRing {
    /// Fingerprint (`SHA256:…`) → principal id.
    owners: BTreeMap<String, String>,
}

impl KeyRing {
    /// The keys `snapshot`'s principals list (unreadable keys are reported
    /// by `model::links` and left out here).
    pub fn of(snapshot: &Snapshot) -> KeyRing {
        let mut owners = BTreeMap::new();
        for principal in snapshot.principals.values() {
            for key in &principal.signing_keys {
                if let Ok(fingerprint) = signing::fingerprint(key) {
                    owners
                        .entry(fingerprint)
                        .or_insert_with(|| principal.id.clone());
                }
            }
        }
        KeyRing { owners }
    }

    /// The principal whose key made this valid signature, if any.
    pub fn signer(&self, signature: &SignatureCheck) -> Option<&str> {
        self.owners
            .get(signature.fingerprint()?)
            .map(String::as_str)
    }

    /// Whether one of `signatures` is a valid signature by a key of
    /// `principal`: `Ok(commit)` names the commit that proves it, `Err` says
    /// why none does (the reason a claim does not count).
    pub fn signed_by(
        &self,
        principal: &str,
        signatures: &[CommitSignature],
    ) -> Result<String, String> {
        if let Some(proof) = signatures
            .iter()
            .find(|s| self.signer(&s.signature) == Some(principal))
        {
            return Ok(proof.commit.clone());
        }
        let reasons: Vec<String> = signatures
            .iter()
            .map(|s| self.why_not(principal, s))
            .collect();
        if reasons.is_empty() {
            return Err("no commit vouches for it".to_owned());
        }
        Err(reasons.join("; "))
    }

    fn why_not(&self, principal: &str, signed: &CommitSignature) -> String {
        let commit = signed.short();
        match &signed.signature {
            SignatureCheck::Unsigned => format!("commit {commit} is not signed"),
            SignatureCheck::Invalid { reason } => {
                format!("the signature on commit {commit} does not verify ({reason})")
            }
            SignatureCheck::Valid { fingerprint } => match self.owners.get(fingerprint) {
                Some(owner) => format!(
                    "commit {commit} is signed by {owner}'s key ({fingerprint}), not by {principal}"
                ),
                None => format!(
                    "commit {commit} is signed by key {fingerprint}, which no principal lists in signing_keys (never added, or revoked)"
                ),
            },
        }
    }

    /// The commits of `commits` that no principal signed validly, with why
    /// (what `require_signed_commits: true` refuses).
    pub fn unsigned<'a>(
        &self,
        commits: &'a [CommitSignature],
    ) -> Vec<(&'a CommitSignature, String)> {
        commits
            .iter()
            .filter(|c| self.signer(&c.signature).is_none())
            .map(|c| {
                let reason = match &c.signature {
                    SignatureCheck::Valid { fingerprint } => format!(
                        "commit {} is signed by key {fingerprint}, which no principal lists in signing_keys",
                        c.short()
                    ),
                    _ => self.why_not("a principal", c),
                };
                (c, reason)
            })
            .collect()
    }
}

/// How a change to the rules (config, principals, policies) was authorised.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Authorisation {
    /// An admin approved the head of the pull request the commit merged.
    Review {
        pull_request: u64,
        login: String,
        principal: String,
    },
    /// The commit is signed by an admin's key.
    Signature {
        commit: String,
        principal: String,
        fingerprint: String,
    },
}

impl Authorisation {
    /// The admin who authorised it.
    pub fn principal(&self) -> &str {
        match self {
            Authorisation::Review { principal, .. }
            | Authorisation::Signature { principal, .. } => principal,
        }
    }
}

/// Whether a change to the rules is authorised, judged by `rules` (the
/// rules in force before the change): an approving review on the merged
/// pull request's head by a principal with the `admin` role
/// (`approving_logins`, the forge's standings), or a valid signature by an
/// admin's key on one of `signatures` (the commit, and for a merge the
/// merged commit whose rules it takes). `Err` says why not.
pub fn authorise_rules_change(
    rules: &Snapshot,
    pull_request: Option<u64>,
    approving_logins: &[String],
    signatures: &[CommitSignature],
) -> Result<Authorisation, String> {
    let is_admin = |id: &str| {
        rules
            .principals
            .get(id)
            .is_some_and(|p| p.has_role(Role::Admin))
    };
    if let Some(number) = pull_request {
        for login in approving_logins {
            if let Some(principal) = rules.principal_by_login(login)
                && principal.has_role(Role::Admin)
            {
                return Ok(Authorisation::Review {
                    pull_request: number,
                    login: login.clone(),
                    principal: principal.id.clone(),
                });
            }
        }
    }
    let keys = KeyRing::of(rules);
    for signed in signatures {
        if let Some(signer) = keys.signer(&signed.signature)
            && is_admin(signer)
        {
            return Ok(Authorisation::Signature {
                commit: signed.commit.clone(),
                principal: signer.to_owned(),
                fingerprint: signed
                    .signature
                    .fingerprint()
                    .unwrap_or_default()
                    .to_owned(),
            });
        }
    }
    let mut reasons = Vec::new();
    match pull_request {
        Some(number) => reasons.push(format!(
            "no admin approved the head of pull request #{number}"
        )),
        None => reasons.push("it did not arrive through a pull request an admin approved".into()),
    }
    for signed in signatures {
        match keys.signer(&signed.signature) {
            Some(signer) => reasons.push(format!(
                "commit {} is signed by {signer}, who is not an admin",
                signed.short()
            )),
            None => reasons.push(keys.why_not("an admin", signed)),
        }
    }
    Err(reasons.join("; "))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::Entry;

    fn key() -> ssh_key::PrivateKey {
        ssh_key::PrivateKey::random(&mut ssh_key::rand_core::OsRng, ssh_key::Algorithm::Ed25519)
            .expect("key")
    }

    fn principal(id: &str, role: &str, key: Option<&ssh_key::PrivateKey>) -> Entry {
        let keys = key
            .map(|k| {
                format!(
                    "signing_keys:\n  - \"{}\"\n",
                    k.public_key().to_openssh().expect("openssh")
                )
            })
            .unwrap_or_default();
        Entry::file(
            format!("principals/{id}.yaml"),
            format!(
                "apiVersion: ringmaster.dev/v1\nkind: Principal\nid: {id}\nemail: {id}@example.com\nforge_login: {id}-gh\n{keys}roles: [{role}]\nscope:\n  acquisition_boundaries: [\"*\"]\n  business_units: [\"*\"]\n"
            ),
        )
    }

    fn signed(key: &ssh_key::PrivateKey, commit: &str) -> CommitSignature {
        CommitSignature {
            commit: commit.to_owned(),
            signature: signing::check(
                Some(&signing::sign(key, b"payload").expect("sign")),
                b"payload",
            ),
        }
    }

    #[test]
    fn a_signature_proves_only_its_keys_owner() {
        let (dave, erin) = (key(), key());
        let (snapshot, diagnostics) = crate::model::load(&[
            principal("dave", "cab-approver", Some(&dave)),
            principal("erin", "publisher", Some(&erin)),
        ]);
        // Only the missing ringmaster.yaml: the principals themselves load.
        assert!(
            diagnostics.iter().all(|d| d.file == "ringmaster.yaml"),
            "{diagnostics:?}"
        );
        let keys = KeyRing::of(&snapshot);
        assert_eq!(
            keys.signed_by("dave", &[signed(&dave, "c1")]),
            Ok("c1".into())
        );
        let refused = keys.signed_by("dave", &[signed(&erin, "c2")]).unwrap_err();
        assert!(refused.contains("erin's key"), "{refused}");
        let stranger = keys.signed_by("dave", &[signed(&key(), "c3")]).unwrap_err();
        assert!(stranger.contains("no principal lists"), "{stranger}");
        let unsigned = CommitSignature {
            commit: "c4".into(),
            signature: SignatureCheck::Unsigned,
        };
        assert!(
            keys.signed_by("dave", std::slice::from_ref(&unsigned))
                .unwrap_err()
                .contains("not signed")
        );
        assert_eq!(keys.unsigned(&[signed(&dave, "c1"), unsigned]).len(), 1);
    }

    #[test]
    fn only_an_admin_authorises_a_rules_change() {
        let (admin, dave) = (key(), key());
        let (rules, _) = crate::model::load(&[
            principal("root", "admin", Some(&admin)),
            principal("dave", "cab-approver", Some(&dave)),
        ]);
        let by_admin = authorise_rules_change(&rules, None, &[], &[signed(&admin, "c1")]);
        assert_eq!(
            by_admin.map(|a| a.principal().to_owned()),
            Ok("root".into())
        );
        assert!(authorise_rules_change(&rules, None, &[], &[signed(&dave, "c1")]).is_err());
        assert!(authorise_rules_change(&rules, Some(7), &["dave-gh".into()], &[]).is_err());
        let review = authorise_rules_change(&rules, Some(7), &["ROOT-gh".into()], &[]);
        assert!(matches!(
            review,
            Ok(Authorisation::Review {
                pull_request: 7,
                ..
            })
        ));
        // Reviews count only on a merged pull request.
        assert!(authorise_rules_change(&rules, None, &["root-gh".into()], &[]).is_err());
    }
}
