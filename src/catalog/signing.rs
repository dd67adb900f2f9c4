//! Signatures of the catalog index, in OpenSSH's format (SSHSIG, what `ssh-keygen -Y sign`
//! writes), in the namespace `sigcat-catalog`, and trust as OpenSSH's `allowed_signers` file:
//! users check a catalog with a tool they already have.
//!
//! The index names every object with its sha256, so signing the index signs the catalog: a
//! writer with access to the container but not to a signing key cannot point clusters at
//! another image without readers refusing the result.

use ssh_key::{HashAlg, LineEnding, PrivateKey, PublicKey, SshSig};

/// The SSHSIG namespace of every signature sigcat makes and accepts.
pub const NAMESPACE: &str = "sigcat-catalog";

/// A signing key or trust file the operator gave that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    /// The key file is not an OpenSSH private key.
    #[error("{path}: not an OpenSSH private key ({problem})")]
    NotAKey {
        /// The key file.
        path: String,
        /// What the key parser said.
        problem: String,
    },
    #[error(
        "{path}: the key is protected by a passphrase; give it in SIGCAT_SIGNING_KEY_PASSPHRASE"
    )]
    /// The key is protected and no passphrase was given.
    NeedsPassphrase {
        /// The key file.
        path: String,
    },
    /// The passphrase does not decrypt the key.
    #[error("{path}: the passphrase does not decrypt the key")]
    WrongPassphrase {
        /// The key file.
        path: String,
    },
    #[error(
        "{path}:{line}: {problem}; expected `PRINCIPALS [OPTIONS] KEYTYPE BASE64 [COMMENT]` (ssh-keygen's ALLOWED SIGNERS format)"
    )]
    /// A line of the trust file is not an allowed signer.
    TrustFile {
        /// The trust file.
        path: String,
        /// The line (1-based).
        line: usize,
        /// What is wrong with it.
        problem: String,
    },
    /// The key's type cannot sign SSHSIG signatures here.
    #[error(
        "{path}: sigcat cannot sign with a {algorithm} key; use ed25519 (ssh-keygen -t ed25519), ECDSA (P-256, P-384, P-521) or RSA of 2048 bits or more"
    )]
    Unsupported {
        /// The key file.
        path: String,
        /// Its algorithm.
        algorithm: String,
    },
    /// The trust file is set but cannot be used (an empty or unexpanded variable).
    #[error("{variable} is `{value}`: {problem}")]
    Unusable {
        /// The variable.
        variable: &'static str,
        /// Its value (a path, never a secret).
        value: String,
        /// Why it cannot be used.
        problem: String,
    },
    /// A key or trust file that cannot be read.
    #[error("{path}: cannot be read ({problem})")]
    Unreadable {
        /// The file.
        path: String,
        /// What the system said.
        problem: String,
    },
    /// The trust file lists no key.
    #[error("{path}: lists no key")]
    EmptyTrust {
        /// The trust file.
        path: String,
    },
}

/// Why a signed catalog's index is not trusted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Untrusted {
    /// There is no signature.
    #[error("it is not signed")]
    Unsigned,
    /// The signature is not an SSH signature.
    #[error("its signature is not an SSH signature ({0})")]
    Malformed(String),
    /// The signature is for another namespace.
    #[error("it is signed in the namespace `{0}`, not `{NAMESPACE}`")]
    Namespace(String),
    #[error(
        "it is signed by a key the trust file does not list (or not for this namespace and time; a writer trusts its own key and the trust file's): {0}"
    )]
    /// The signing key is not in the trust file (fingerprint given).
    UnknownKey(String),
    #[error(
        "its signature (by {0}) does not match its content: it was changed after it was signed"
    )]
    /// The content changed after it was signed (the principal given).
    Mismatch(String),
}

/// A key that signs what the catalog writes.
pub struct Signer {
    key: PrivateKey,
}

impl std::fmt::Debug for Signer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Signer({})", self.fingerprint())
    }
}

impl Signer {
    /// Reads an OpenSSH private key (`ssh-keygen -t ed25519`, ECDSA P-256/P-384/P-521 or RSA),
    /// decrypting it with `passphrase` when it is protected, and checks that it signs (a key it
    /// cannot use is refused here, never when a catalog is half written). `path` is only for
    /// messages.
    pub fn from_openssh(
        path: &str,
        pem: &[u8],
        passphrase: Option<&str>,
    ) -> Result<Signer, KeyError> {
        use super::keyfile::{self, Problem};
        // As OpenSSH reads it: blank lines or spaces around the block, and CRLF line ends (a
        // key pasted into a CI secret store) are not part of the key.
        let text = String::from_utf8_lossy(pem).replace("\r\n", "\n");
        let normalized = format!("{}\n", text.trim());
        let first = normalized.split_whitespace().next().unwrap_or("");
        if first.starts_with("ssh-") || first.starts_with("ecdsa-") || first.starts_with("sk-") {
            return Err(KeyError::NotAKey {
                path: path.to_string(),
                problem: "it is a public key (or a certificate), not the private key: give the file without `.pub`".into(),
            });
        }
        let pem = normalized.as_bytes();
        let key = match keyfile::read_ecdsa(pem, passphrase) {
            Ok(key) => key,
            Err(Problem::NeedsPassphrase) => {
                return Err(KeyError::NeedsPassphrase {
                    path: path.to_string(),
                });
            }
            Err(Problem::WrongPassphrase) => {
                return Err(KeyError::WrongPassphrase {
                    path: path.to_string(),
                });
            }
            Err(Problem::Malformed(problem)) => {
                return Err(KeyError::NotAKey {
                    path: path.to_string(),
                    problem,
                });
            }
            Err(Problem::NotEcdsa) => {
                PrivateKey::from_openssh(pem).map_err(|e| KeyError::NotAKey {
                    path: path.to_string(),
                    problem: e.to_string(),
                })?
            }
        };
        let key = if key.is_encrypted() {
            let passphrase = passphrase.ok_or_else(|| KeyError::NeedsPassphrase {
                path: path.to_string(),
            })?;
            key.decrypt(passphrase)
                .map_err(|_| KeyError::WrongPassphrase {
                    path: path.to_string(),
                })?
        } else {
            key
        };
        let signer = Signer { key };
        let unsupported = || KeyError::Unsupported {
            path: path.to_string(),
            algorithm: signer.key.algorithm().to_string(),
        };
        // A signature it cannot make, or one its own public key does not verify, is refused now.
        let probe = signer
            .try_sign(b"sigcat key check")
            .map_err(|_| unsupported())?;
        let sig = SshSig::from_pem(probe.as_bytes()).map_err(|_| unsupported())?;
        signer
            .key
            .public_key()
            .verify(NAMESPACE, b"sigcat key check", &sig)
            .map_err(|_| unsupported())?;
        Ok(signer)
    }

    fn try_sign(&self, message: &[u8]) -> Result<String, ssh_key::Error> {
        let sig = match self.key.key_data().rsa() {
            Some(rsa) => sign_rsa(rsa, self.key.public_key(), message)?,
            None => self.key.sign(NAMESPACE, HashAlg::Sha512, message)?,
        };
        sig.to_pem(LineEnding::LF)
    }

    /// The detached signature of `message`, PEM-armoured as `ssh-keygen -Y sign` writes it.
    pub fn sign(&self, message: &[u8]) -> String {
        // The key signed when it was loaded; signing cannot fail for another message.
        self.try_sign(message).unwrap_or_default()
    }

    /// The key's SHA-256 fingerprint.
    pub fn fingerprint(&self) -> String {
        self.key.fingerprint(HashAlg::Sha256).to_string()
    }

    /// The public half, as an allowed signer (so a writer trusts what it signed itself).
    pub fn allowed_signer(&self, principal: &str) -> Trust {
        Trust {
            signers: vec![AllowedSigner {
                principals: principal.to_string(),
                key: self.key.public_key().clone(),
                namespaces: None,
                valid_after: None,
                valid_before: None,
            }],
        }
    }
}

/// An RSA SSHSIG signature (rsa-sha2-512, as `ssh-keygen -Y sign` makes it), made from the
/// key's components: see the `rsa` dependency in Cargo.toml for why not through ssh-key.
fn sign_rsa(
    keypair: &ssh_key::private::RsaKeypair,
    public: &PublicKey,
    message: &[u8],
) -> Result<SshSig, ssh_key::Error> {
    use rsa::signature::{SignatureEncoding, Signer as _};
    let int = |m: &ssh_key::Mpint| {
        m.as_positive_bytes()
            .map(rsa::BigUint::from_bytes_be)
            .ok_or(ssh_key::Error::Crypto)
    };
    let private = rsa::RsaPrivateKey::from_components(
        int(&keypair.public.n)?,
        int(&keypair.public.e)?,
        int(&keypair.private.d)?,
        vec![int(&keypair.private.p)?, int(&keypair.private.q)?],
    )
    .map_err(|_| ssh_key::Error::Crypto)?;
    let data = SshSig::signed_data(NAMESPACE, HashAlg::Sha512, message)?;
    let signature = rsa::pkcs1v15::SigningKey::<sha2::Sha512>::new(private)
        .try_sign(&data)
        .map_err(|_| ssh_key::Error::Crypto)?;
    SshSig::new(
        public.key_data().clone(),
        NAMESPACE,
        HashAlg::Sha512,
        ssh_key::Signature::new(
            ssh_key::Algorithm::Rsa {
                hash: Some(HashAlg::Sha512),
            },
            signature.to_vec(),
        )?,
    )
}

/// The keys whose signatures are trusted, from an `allowed_signers` file.
#[derive(Debug, Clone)]
pub struct Trust {
    signers: Vec<AllowedSigner>,
}

#[derive(Debug, Clone)]
struct AllowedSigner {
    principals: String,
    key: PublicKey,
    namespaces: Option<Vec<String>>,
    valid_after: Option<time::OffsetDateTime>,
    valid_before: Option<time::OffsetDateTime>,
}

impl Trust {
    /// Parses `ssh-keygen`'s ALLOWED SIGNERS format. `path` is only for messages.
    pub fn parse(path: &str, text: &str) -> Result<Trust, KeyError> {
        let mut signers = Vec::new();
        for (n, line) in text.lines().enumerate() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let bad = |problem: &str| KeyError::TrustFile {
                path: path.to_string(),
                line: n + 1,
                problem: problem.to_string(),
            };
            let (principals, rest) = split_field(line).ok_or_else(|| bad("no key"))?;
            let rest = rest.trim_start();
            let (options, key_text) = if looks_like_key_type(rest) {
                (None, rest)
            } else {
                let (opts, after) =
                    split_field(rest).ok_or_else(|| bad("no key after the options"))?;
                (Some(opts), after.trim_start())
            };
            let key = PublicKey::from_openssh(key_text)
                .map_err(|e| bad(&format!("not a public key ({e})")))?;
            if !checkable(&key) {
                return Err(bad(&format!(
                    "sigcat cannot check signatures of a {} key; list ed25519, ECDSA (P-256, P-384, P-521) or RSA keys",
                    key.algorithm()
                )));
            }
            let mut signer = AllowedSigner {
                principals: principals.trim_matches('"').to_string(),
                key,
                namespaces: None,
                valid_after: None,
                valid_before: None,
            };
            for option in options.map(split_options).unwrap_or_default() {
                let (name, value) = option.split_once('=').unwrap_or((option.as_str(), ""));
                let value = value.trim_matches('"');
                match name.to_ascii_lowercase().as_str() {
                    "namespaces" => {
                        signer.namespaces = Some(value.split(',').map(str::to_string).collect())
                    }
                    "valid-after" => {
                        signer.valid_after = Some(
                            parse_time(value)
                                .ok_or_else(|| bad("valid-after is not YYYYMMDD[HHMM[SS]][Z]"))?,
                        )
                    }
                    "valid-before" => {
                        signer.valid_before = Some(
                            parse_time(value)
                                .ok_or_else(|| bad("valid-before is not YYYYMMDD[HHMM[SS]][Z]"))?,
                        )
                    }
                    "cert-authority" => {
                        return Err(bad(
                            "certificate authorities are not supported; list the signing keys themselves",
                        ));
                    }
                    other => return Err(bad(&format!("unknown option `{other}`"))),
                }
            }
            signers.push(signer);
        }
        if signers.is_empty() {
            return Err(KeyError::EmptyTrust {
                path: path.to_string(),
            });
        }
        Ok(Trust { signers })
    }

    /// These keys and `other`'s.
    pub fn and(mut self, other: Trust) -> Trust {
        self.signers.extend(other.signers);
        self
    }

    /// Checks a detached signature of `message`; the principals of the key that made it.
    pub fn verify(&self, message: &[u8], signature: Option<&[u8]>) -> Result<String, Untrusted> {
        let signature = signature.ok_or(Untrusted::Unsigned)?;
        let sig = SshSig::from_pem(signature).map_err(|e| Untrusted::Malformed(e.to_string()))?;
        if sig.namespace() != NAMESPACE {
            return Err(Untrusted::Namespace(sig.namespace().to_string()));
        }
        let now = time::OffsetDateTime::now_utc();
        let signer = self
            .signers
            .iter()
            .filter(|s| s.key.key_data() == sig.public_key())
            .find(|s| {
                s.namespaces
                    .as_ref()
                    .is_none_or(|ns| namespace_allowed(ns, NAMESPACE))
                    && s.valid_after.is_none_or(|t| now >= t)
                    && s.valid_before.is_none_or(|t| now < t)
            })
            .ok_or_else(|| {
                Untrusted::UnknownKey(
                    PublicKey::from(sig.public_key().clone())
                        .fingerprint(HashAlg::Sha256)
                        .to_string(),
                )
            })?;
        signer
            .key
            .verify(NAMESPACE, message, &sig)
            .map_err(|_| Untrusted::Mismatch(signer.principals.clone()))?;
        Ok(signer.principals.clone())
    }
}

/// The key types whose SSHSIG signatures sigcat checks (and makes).
fn checkable(key: &PublicKey) -> bool {
    use ssh_key::{Algorithm, EcdsaCurve};
    matches!(
        key.algorithm(),
        Algorithm::Ed25519
            | Algorithm::Rsa { .. }
            | Algorithm::Ecdsa {
                curve: EcdsaCurve::NistP256 | EcdsaCurve::NistP384 | EcdsaCurve::NistP521
            }
    )
}

fn looks_like_key_type(text: &str) -> bool {
    ["ssh-", "ecdsa-", "sk-ssh-", "sk-ecdsa-"]
        .iter()
        .any(|p| text.starts_with(p))
}

/// The first whitespace-separated field (a double-quoted one may hold spaces), and the rest.
fn split_field(text: &str) -> Option<(String, &str)> {
    let text = text.trim_start();
    if text.is_empty() {
        return None;
    }
    let mut in_quotes = false;
    for (i, c) in text.char_indices() {
        match c {
            '"' => in_quotes = !in_quotes,
            c if c.is_whitespace() && !in_quotes => {
                return Some((text[..i].to_string(), &text[i..]));
            }
            _ => {}
        }
    }
    None
}

/// `a,b="x,y",c` → [`a`, `b="x,y"`, `c`].
fn split_options(options: String) -> Vec<String> {
    let mut out = Vec::new();
    let mut current = String::new();
    let mut in_quotes = false;
    for c in options.chars() {
        match c {
            '"' => {
                in_quotes = !in_quotes;
                current.push(c);
            }
            ',' if !in_quotes => out.push(std::mem::take(&mut current)),
            _ => current.push(c),
        }
    }
    if !current.is_empty() {
        out.push(current);
    }
    out
}

/// `YYYYMMDD[HHMM[SS]][Z]`, as ssh-keygen writes validity times (taken as UTC).
fn parse_time(text: &str) -> Option<time::OffsetDateTime> {
    let digits = text.strip_suffix(['Z', 'z']).unwrap_or(text);
    if !digits.bytes().all(|b| b.is_ascii_digit()) || ![8, 12, 14].contains(&digits.len()) {
        return None;
    }
    let n = |r: std::ops::Range<usize>| digits.get(r).map_or(Some(0), |s| s.parse::<u32>().ok());
    let date = time::Date::from_calendar_date(
        n(0..4)? as i32,
        time::Month::try_from(n(4..6)? as u8).ok()?,
        n(6..8)? as u8,
    )
    .ok()?;
    let t = time::Time::from_hms(n(8..10)? as u8, n(10..12)? as u8, n(12..14)? as u8).ok()?;
    Some(date.with_time(t).assume_utc())
}

/// OpenSSH's pattern list (`match_pattern_list`): comma-separated patterns with `*` and `?`;
/// a match of a negated one (`!pattern`) refuses, whatever else matches.
fn namespace_allowed(patterns: &[String], namespace: &str) -> bool {
    fn glob(p: &[u8], s: &[u8]) -> bool {
        match (p.first(), s.first()) {
            (None, None) => true,
            (Some(b'*'), _) => glob(&p[1..], s) || (!s.is_empty() && glob(p, &s[1..])),
            (Some(b'?'), Some(_)) => glob(&p[1..], &s[1..]),
            (Some(a), Some(b)) if a == b => glob(&p[1..], &s[1..]),
            _ => false,
        }
    }
    let mut allowed = false;
    for p in patterns.iter().map(|p| p.trim()) {
        match p.strip_prefix('!') {
            Some(negated) if glob(negated.as_bytes(), namespace.as_bytes()) => return false,
            Some(_) => {}
            None => allowed |= glob(p.as_bytes(), namespace.as_bytes()),
        }
    }
    allowed
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A throwaway key made for this test by `ssh-keygen -t ed25519 -N ""`.
    fn key() -> (Signer, String) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let ok = std::process::Command::new("ssh-keygen")
            .args(["-q", "-t", "ed25519", "-N", "", "-C", "ci@example", "-f"])
            .arg(&path)
            .status()
            .unwrap()
            .success();
        assert!(ok);
        let signer = Signer::from_openssh("k", &std::fs::read(&path).unwrap(), None).unwrap();
        let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
        (signer, public.trim().to_string())
    }

    #[test]
    fn a_signature_is_trusted_only_for_its_content_key_and_namespace() {
        let (signer, public) = key();
        let trust = Trust::parse(
            "allowed_signers",
            &format!("# publishers\nci@example {public}\n"),
        )
        .unwrap();
        let sig = signer.sign(b"the index");
        assert_eq!(
            trust.verify(b"the index", Some(sig.as_bytes())),
            Ok("ci@example".into())
        );
        assert!(matches!(
            trust.verify(b"the indeX", Some(sig.as_bytes())),
            Err(Untrusted::Mismatch(_))
        ));
        assert_eq!(trust.verify(b"the index", None), Err(Untrusted::Unsigned));
        assert!(matches!(
            trust.verify(b"x", Some(b"junk")),
            Err(Untrusted::Malformed(_))
        ));
        let (other, other_public) = key();
        assert!(matches!(
            trust.verify(b"the index", Some(other.sign(b"the index").as_bytes())),
            Err(Untrusted::UnknownKey(_))
        ));
        // Several publishers, each with their own key, in one file.
        let both = Trust::parse(
            "a",
            &format!("ci@example {public}\nother@example {other_public}\n"),
        )
        .unwrap();
        assert_eq!(
            both.verify(b"i", Some(other.sign(b"i").as_bytes())),
            Ok("other@example".into())
        );
    }

    #[test]
    fn namespace_patterns_are_openssh_pattern_lists() {
        let list = |s: &str| s.split(',').map(str::to_string).collect::<Vec<_>>();
        assert!(namespace_allowed(&list("sigcat-*"), NAMESPACE));
        assert!(namespace_allowed(&list("git,sigcat-catal?g"), NAMESPACE));
        assert!(!namespace_allowed(&list("git"), NAMESPACE));
        assert!(!namespace_allowed(&list("*,!sigcat-*"), NAMESPACE));
        assert!(namespace_allowed(&list("*"), NAMESPACE));
    }

    #[test]
    fn options_restrict_namespaces_and_validity() {
        let (signer, public) = key();
        let sig = signer.sign(b"i");
        let for_git =
            Trust::parse("a", &format!("ci@example namespaces=\"git\" {public}")).unwrap();
        assert!(matches!(
            for_git.verify(b"i", Some(sig.as_bytes())),
            Err(Untrusted::UnknownKey(_))
        ));
        let ours = Trust::parse(
            "a",
            &format!("ci@example namespaces=\"git,sigcat-catalog\" {public}"),
        )
        .unwrap();
        assert!(ours.verify(b"i", Some(sig.as_bytes())).is_ok());
        let expired = Trust::parse(
            "a",
            &format!("ci@example valid-before=\"20200101\" {public}"),
        )
        .unwrap();
        assert!(expired.verify(b"i", Some(sig.as_bytes())).is_err());
        let current = Trust::parse(
            "a",
            &format!(
                "ci@example valid-after=\"20200101Z\",valid-before=\"29990101000000\" {public}"
            ),
        )
        .unwrap();
        assert!(current.verify(b"i", Some(sig.as_bytes())).is_ok());
    }

    #[test]
    fn malformed_trust_files_name_the_line() {
        let err = Trust::parse("allowed", "ci@example ssh-ed25519 !!!notbase64")
            .unwrap_err()
            .to_string();
        assert!(err.starts_with("allowed:1: not a public key"), "{err}");
        let err = Trust::parse("allowed", "# nothing\n\n")
            .unwrap_err()
            .to_string();
        assert!(err.contains("lists no key"), "{err}");
        let (_, public) = key();
        let err = Trust::parse("allowed", &format!("\nci cert-authority {public}"))
            .unwrap_err()
            .to_string();
        assert!(
            err.starts_with("allowed:2: certificate authorities"),
            "{err}"
        );
    }

    #[test]
    fn a_protected_key_needs_its_passphrase() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        assert!(
            std::process::Command::new("ssh-keygen")
                .args(["-q", "-t", "ed25519", "-N", "correct horse", "-f"])
                .arg(&path)
                .status()
                .unwrap()
                .success()
        );
        let pem = std::fs::read(&path).unwrap();
        assert!(matches!(
            Signer::from_openssh("k", &pem, None),
            Err(KeyError::NeedsPassphrase { .. })
        ));
        assert!(matches!(
            Signer::from_openssh("k", &pem, Some("wrong")),
            Err(KeyError::WrongPassphrase { .. })
        ));
        assert!(Signer::from_openssh("k", &pem, Some("correct horse")).is_ok());
        assert!(matches!(
            Signer::from_openssh("k", b"not a key", None),
            Err(KeyError::NotAKey { .. })
        ));
        // Pasted into a CI secret: a blank line after it, spaces before it, CRLF line ends.
        let text = String::from_utf8(pem).unwrap();
        for pasted in [
            format!("{text}\n\n"),
            format!("  \n{text}"),
            text.replace('\n', "\r\n"),
        ] {
            assert!(
                Signer::from_openssh("k", pasted.as_bytes(), Some("correct horse")).is_ok(),
                "{pasted:?}"
            );
        }
    }
}

#[cfg(test)]
mod key_types {
    use super::*;

    /// Every key type the README lists signs, and what it signs verifies, both ways with the
    /// real ssh-keygen.
    #[test]
    fn every_listed_key_type_signs_and_verifies_both_ways_with_ssh_keygen() {
        let dir = tempfile::tempdir().unwrap();
        for (kind, bits) in [
            ("ed25519", ""),
            ("ecdsa", "256"),
            ("ecdsa", "384"),
            ("ecdsa", "521"),
            ("rsa", "2048"),
            ("rsa", "3072"),
        ] {
            for attempt in 0..if kind == "ecdsa" { 8 } else { 1 } {
                let bits_label = format!("{bits}-{attempt}");
                let bits_label = bits_label.as_str();
                let _ = bits_label;
                let path = dir.path().join(format!("{kind}{bits}"));
                let mut cmd = std::process::Command::new("ssh-keygen");
                cmd.args(["-q", "-t", kind, "-N", "", "-C", "ci@example", "-f"])
                    .arg(&path);
                if !bits.is_empty() {
                    cmd.args(["-b", bits]);
                }
                assert!(cmd.status().unwrap().success(), "{kind}{bits}");
                let signer = Signer::from_openssh("k", &std::fs::read(&path).unwrap(), None)
                    .unwrap_or_else(|e| panic!("{kind}{bits}: {e}"));
                let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
                let allowed = dir.path().join(format!("{kind}{bits}.allowed"));
                std::fs::write(&allowed, format!("ci@example {}", public.trim())).unwrap();
                let trust = Trust::parse("a", &std::fs::read_to_string(&allowed).unwrap()).unwrap();
                // sigcat signs, ssh-keygen verifies.
                let message = dir.path().join("message");
                std::fs::write(&message, b"the index").unwrap();
                let sig = dir.path().join("message.sig");
                std::fs::write(&sig, signer.sign(b"the index")).unwrap();
                let verified = std::process::Command::new("ssh-keygen")
                    .args(["-Y", "verify", "-n", NAMESPACE, "-I", "ci@example", "-f"])
                    .arg(&allowed)
                    .arg("-s")
                    .arg(&sig)
                    .stdin(std::fs::File::open(&message).unwrap())
                    .output()
                    .unwrap();
                assert!(
                    verified.status.success(),
                    "{kind}{bits}: {}",
                    String::from_utf8_lossy(&verified.stderr)
                );
                // ssh-keygen signs, sigcat verifies (and refuses the same signature for other bytes).
                let _ = std::fs::remove_file(&sig);
                let signed = std::process::Command::new("ssh-keygen")
                    .args(["-Y", "sign", "-n", NAMESPACE, "-f"])
                    .arg(&path)
                    .arg(&message)
                    .output()
                    .unwrap();
                assert!(signed.status.success(), "{kind}{bits}");
                let theirs = std::fs::read(&sig).unwrap();
                assert_eq!(
                    trust.verify(b"the index", Some(&theirs)),
                    Ok("ci@example".to_string()),
                    "{kind}{bits}"
                );
                assert!(
                    matches!(
                        trust.verify(b"the indeX", Some(&theirs)),
                        Err(Untrusted::Mismatch(_))
                    ),
                    "{kind}{bits}"
                );
                let _ = std::fs::remove_file(&path);
                let _ = std::fs::remove_file(path.with_extension("pub"));
                let _ = std::fs::remove_file(&sig);
            }
        }
    }

    /// ECDSA keys whose private scalar has leading zero bytes (half of all P-521 keys), plain
    /// and protected by a passphrase: ssh-key 0.6.7 alone refuses them.
    #[test]
    fn ecdsa_keys_with_a_short_scalar_load_plain_and_protected() {
        let dir = tempfile::tempdir().unwrap();
        let mut short = 0;
        for n in 0..24 {
            for passphrase in ["", "correct horse"] {
                let path = dir.path().join(format!("k{n}{}", passphrase.len()));
                assert!(
                    std::process::Command::new("ssh-keygen")
                        .args(["-q", "-t", "ecdsa", "-b", "521", "-N", passphrase, "-f"])
                        .arg(&path)
                        .status()
                        .unwrap()
                        .success()
                );
                let pem = std::fs::read(&path).unwrap();
                if ssh_key::PrivateKey::from_openssh(&pem)
                    .and_then(|k| {
                        if k.is_encrypted() {
                            k.decrypt(passphrase)
                        } else {
                            Ok(k)
                        }
                    })
                    .is_err()
                {
                    short += 1;
                }
                let pass = (!passphrase.is_empty()).then_some(passphrase);
                let signer = Signer::from_openssh("k", &pem, pass)
                    .unwrap_or_else(|e| panic!("key {n}: {e}"));
                let public = std::fs::read_to_string(path.with_extension("pub")).unwrap();
                let trust = Trust::parse("a", &format!("ci {}", public.trim())).unwrap();
                assert!(
                    trust
                        .verify(b"m", Some(signer.sign(b"m").as_bytes()))
                        .is_ok()
                );
                if pass.is_some() {
                    assert!(matches!(
                        Signer::from_openssh("k", &pem, Some("wrong")),
                        Err(KeyError::WrongPassphrase { .. })
                    ));
                }
            }
        }
        assert!(
            short > 0,
            "no key of 48 had a short scalar: the case is not exercised"
        );
    }
}
