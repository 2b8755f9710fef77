//! The ACME account key and the JSON Web Signatures made with it.
//!
//! An ECDSA P-256 key (PKCS#8) signs every request as ES256 (RFC 7515,
//! 7518), in the flattened JSON serialization ACME requires (RFC 8555
//! §6.2): the `jwk` header before the account exists, its URL (`kid`)
//! after. The JWK thumbprint (RFC 7638) is what key authorizations are
//! made of.
//!
//! It must not do I/O: the client sends what it signs.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine;
use ring::rand::SystemRandom;
use ring::signature::{EcdsaKeyPair, KeyPair, ECDSA_P256_SHA256_FIXED_SIGNING};
use serde_json::{json, Value};

/// base64url without padding, as JOSE writes every binary field.
pub fn b64(bytes: &[u8]) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

/// The account's ECDSA P-256 key.
pub struct AccountKey {
    pair: EcdsaKeyPair,
    pkcs8: Vec<u8>,
    rng: SystemRandom,
}

impl std::fmt::Debug for AccountKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AccountKey")
            .field("thumbprint", &self.thumbprint())
            .finish_non_exhaustive()
    }
}

impl AccountKey {
    /// A new random key.
    pub fn generate() -> Result<AccountKey, String> {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .map_err(|_| "cannot generate an ECDSA P-256 key".to_string())?;
        AccountKey::from_pkcs8(pkcs8.as_ref())
    }

    /// The key kept in PKCS#8 DER.
    pub fn from_pkcs8(der: &[u8]) -> Result<AccountKey, String> {
        let rng = SystemRandom::new();
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, der, &rng)
            .map_err(|e| format!("not an ECDSA P-256 PKCS#8 key: {e}"))?;
        Ok(AccountKey {
            pair,
            pkcs8: der.to_vec(),
            rng,
        })
    }

    /// PKCS#8 DER, to keep the key.
    pub fn pkcs8(&self) -> &[u8] {
        &self.pkcs8
    }

    /// The public key's coordinates, base64url (the point is `04 || x || y`).
    fn coordinates(&self) -> (String, String) {
        let point = self.pair.public_key().as_ref();
        (b64(&point[1..33]), b64(&point[33..65]))
    }

    /// The public key as a JWK.
    pub fn jwk(&self) -> Value {
        let (x, y) = self.coordinates();
        json!({"crv": "P-256", "kty": "EC", "x": x, "y": y})
    }

    /// The JWK thumbprint (RFC 7638): SHA-256 of the required members in
    /// lexicographic order, without whitespace, base64url.
    pub fn thumbprint(&self) -> String {
        let (x, y) = self.coordinates();
        let canonical = format!(r#"{{"crv":"P-256","kty":"EC","x":"{x}","y":"{y}"}}"#);
        b64(ring::digest::digest(&ring::digest::SHA256, canonical.as_bytes()).as_ref())
    }

    /// `token.thumbprint`: what a challenge answers with (RFC 8555 §8.1).
    pub fn key_authorization(&self, token: &str) -> String {
        format!("{token}.{}", self.thumbprint())
    }

    /// A signed request body for `url`: `payload` as JSON, or the empty
    /// payload of a POST-as-GET when `None`. `kid` is the account URL once
    /// known; before, the public key goes in the header.
    pub fn sign(
        &self,
        url: &str,
        nonce: &str,
        kid: Option<&str>,
        payload: Option<&Value>,
    ) -> Result<String, String> {
        let mut protected = json!({"alg": "ES256", "nonce": nonce, "url": url});
        match kid {
            Some(kid) => protected["kid"] = json!(kid),
            None => protected["jwk"] = self.jwk(),
        }
        let protected = b64(protected.to_string().as_bytes());
        let payload = match payload {
            Some(p) => b64(p.to_string().as_bytes()),
            None => String::new(),
        };
        let signing_input = format!("{protected}.{payload}");
        let signature = self
            .pair
            .sign(&self.rng, signing_input.as_bytes())
            .map_err(|_| "ECDSA signing failed".to_string())?;
        Ok(json!({
            "protected": protected,
            "payload": payload,
            "signature": b64(signature.as_ref()),
        })
        .to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ring::signature::{UnparsedPublicKey, ECDSA_P256_SHA256_FIXED};

    fn unb64(s: &str) -> Vec<u8> {
        URL_SAFE_NO_PAD.decode(s).unwrap()
    }

    #[test]
    fn a_signed_request_verifies_with_the_jwk_and_carries_url_and_nonce() {
        let key = AccountKey::generate().unwrap();
        let body = key
            .sign("https://ca/new-acct", "n0nce", None, Some(&json!({"a": 1})))
            .unwrap();
        let jws: Value = serde_json::from_str(&body).unwrap();
        let protected: Value =
            serde_json::from_slice(&unb64(jws["protected"].as_str().unwrap())).unwrap();
        assert_eq!(protected["alg"], "ES256");
        assert_eq!(protected["nonce"], "n0nce");
        assert_eq!(protected["url"], "https://ca/new-acct");
        assert_eq!(protected["jwk"], key.jwk());
        assert!(protected.get("kid").is_none());
        let x = unb64(protected["jwk"]["x"].as_str().unwrap());
        let y = unb64(protected["jwk"]["y"].as_str().unwrap());
        let point = [&[4u8][..], &x, &y].concat();
        let input = format!(
            "{}.{}",
            jws["protected"].as_str().unwrap(),
            jws["payload"].as_str().unwrap()
        );
        let signature = unb64(jws["signature"].as_str().unwrap());
        assert_eq!(signature.len(), 64, "ES256 is r || s, 32 bytes each");
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, point)
            .verify(input.as_bytes(), &signature)
            .expect("the signature verifies");
    }

    #[test]
    fn post_as_get_has_an_empty_payload_and_the_account_url() {
        let key = AccountKey::generate().unwrap();
        let body = key.sign("https://ca/order/1", "n", Some("https://ca/acct/7"), None);
        let jws: Value = serde_json::from_str(&body.unwrap()).unwrap();
        assert_eq!(jws["payload"], "");
        let protected: Value =
            serde_json::from_slice(&unb64(jws["protected"].as_str().unwrap())).unwrap();
        assert_eq!(protected["kid"], "https://ca/acct/7");
        assert!(protected.get("jwk").is_none());
    }

    #[test]
    fn a_kept_key_is_the_same_key() {
        let key = AccountKey::generate().unwrap();
        let again = AccountKey::from_pkcs8(key.pkcs8()).unwrap();
        assert_eq!(key.thumbprint(), again.thumbprint());
        assert_eq!(key.thumbprint().len(), 43, "a base64url SHA-256");
        assert!(key.key_authorization("tok").starts_with("tok."));
        assert!(AccountKey::from_pkcs8(b"not a key").is_err());
    }
}
