//! ECDSA private keys as `ssh-keygen` writes them, read even when ssh-key 0.6.7 cannot.
//!
//! OpenSSH stores the private scalar as an mpint, which drops leading zero bytes; ssh-key
//! 0.6.7 insists on the full width (32, 48 or 66 bytes) and refuses the key with "length
//! invalid". A P-521 scalar has a zero top byte about half the time (a P-256 one once in 256),
//! so such keys are common. This reads the `openssh-key-v1` container itself (decrypting it
//! with ssh-key's own KDF and cipher when it is protected), widens the scalar, and hands
//! ssh-key the same key unencrypted.

use ssh_key::PrivateKey;

/// A reader of the SSH wire format's fields.
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    fn u32(&mut self) -> Option<u32> {
        let (head, rest) = self.0.split_first_chunk::<4>()?;
        self.0 = rest;
        Some(u32::from_be_bytes(*head))
    }

    fn string(&mut self) -> Option<&'a [u8]> {
        let len = self.u32()? as usize;
        if self.0.len() < len {
            return None;
        }
        let (s, rest) = self.0.split_at(len);
        self.0 = rest;
        Some(s)
    }
}

fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    out.extend_from_slice(&(s.len() as u32).to_be_bytes());
    out.extend_from_slice(s);
}

/// The binary inside `-----BEGIN OPENSSH PRIVATE KEY-----`.
fn unarmour(pem: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(pem).ok()?;
    let body: String = text
        .lines()
        .map(str::trim)
        .skip_while(|l| *l != "-----BEGIN OPENSSH PRIVATE KEY-----")
        .skip(1)
        .take_while(|l| !l.starts_with("-----END"))
        .collect();
    use base64ct::Encoding;
    base64ct::Base64::decode_vec(&body).ok()
}

/// The width of an ECDSA curve's private scalar, by the key type's name.
fn scalar_width(key_type: &[u8]) -> Option<usize> {
    match key_type {
        b"ecdsa-sha2-nistp256" => Some(32),
        b"ecdsa-sha2-nistp384" => Some(48),
        b"ecdsa-sha2-nistp521" => Some(66),
        _ => None,
    }
}

/// Why the key could not be read this way.
pub(crate) enum Problem {
    /// Not an ECDSA key in the OpenSSH container: read it the usual way.
    NotEcdsa,
    /// Protected, and no passphrase given.
    NeedsPassphrase,
    /// The passphrase does not decrypt it.
    WrongPassphrase,
    /// Not a key at all.
    Malformed(String),
}

/// Reads an ECDSA key from its OpenSSH PEM, decrypted with `passphrase` when it is protected.
pub(crate) fn read_ecdsa(pem: &[u8], passphrase: Option<&str>) -> Result<PrivateKey, Problem> {
    let bad = |what: &str| Problem::Malformed(what.to_string());
    let binary = unarmour(pem).ok_or(Problem::NotEcdsa)?;
    let mut w = Wire(
        binary
            .strip_prefix(b"openssh-key-v1\0")
            .ok_or(Problem::NotEcdsa)?,
    );
    let cipher = w.string().ok_or_else(|| bad("no cipher"))?;
    let _kdf = w.string().ok_or_else(|| bad("no kdf"))?;
    let _kdf_options = w.string().ok_or_else(|| bad("no kdf options"))?;
    if w.u32() != Some(1) {
        return Err(bad("not one key"));
    }
    let public = w.string().ok_or_else(|| bad("no public key"))?;
    let key_type = Wire(public).string().ok_or_else(|| bad("no key type"))?;
    let width = scalar_width(key_type).ok_or(Problem::NotEcdsa)?;
    let private = if cipher == b"none" {
        w.string().ok_or_else(|| bad("no private key"))?.to_vec()
    } else {
        // The container's own parse (the private part is opaque while encrypted), then
        // ssh-key's KDF and cipher; an authenticated cipher (whose tag ssh-key keeps to
        // itself) is left to ssh-key.
        let outer = PrivateKey::from_bytes(&binary).map_err(|e| bad(&e.to_string()))?;
        if outer.cipher().has_tag() {
            return Err(Problem::NotEcdsa);
        }
        let passphrase = passphrase.ok_or(Problem::NeedsPassphrase)?;
        let (key, iv) = outer
            .kdf()
            .derive_key_and_iv(outer.cipher(), passphrase)
            .map_err(|e| bad(&e.to_string()))?;
        let mut buffer = outer
            .key_data()
            .encrypted()
            .ok_or_else(|| bad("no encrypted key"))?
            .to_vec();
        outer
            .cipher()
            .decrypt(&key, &iv, &mut buffer, None)
            .map_err(|_| Problem::WrongPassphrase)?;
        buffer
    };
    let mut p = Wire(&private);
    let (check1, check2) = (p.u32(), p.u32());
    if check1.is_none() || check1 != check2 {
        return Err(Problem::WrongPassphrase);
    }
    let inner_type = p.string().ok_or_else(|| bad("no key type"))?;
    let curve = p.string().ok_or_else(|| bad("no curve"))?;
    let point = p.string().ok_or_else(|| bad("no public point"))?;
    let scalar = p.string().ok_or_else(|| bad("no private scalar"))?;
    let comment = p.string().ok_or_else(|| bad("no comment"))?;
    // The mpint without its sign byte, widened to the curve's width.
    let digits = scalar.strip_prefix(&[0]).unwrap_or(scalar);
    if digits.len() > width {
        return Err(bad("the private scalar is too long for its curve"));
    }
    let mut wide = vec![0u8; width - digits.len()];
    wide.extend_from_slice(digits);
    let mut section = Vec::new();
    section.extend_from_slice(&check1.unwrap_or(0).to_be_bytes());
    section.extend_from_slice(&check1.unwrap_or(0).to_be_bytes());
    put_string(&mut section, inner_type);
    put_string(&mut section, curve);
    put_string(&mut section, point);
    put_string(&mut section, &wide);
    put_string(&mut section, comment);
    let mut pad = 1u8;
    while section.len() % 8 != 0 {
        section.push(pad);
        pad += 1;
    }
    let mut out = b"openssh-key-v1\0".to_vec();
    put_string(&mut out, b"none");
    put_string(&mut out, b"none");
    put_string(&mut out, b"");
    out.extend_from_slice(&1u32.to_be_bytes());
    put_string(&mut out, public);
    put_string(&mut out, &section);
    PrivateKey::from_bytes(&out).map_err(|e| bad(&e.to_string()))
}
