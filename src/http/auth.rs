//! Webhook authentication (`[webhook.auth]`, SPEC §2.1): bearer, basic, HMAC and Standard Webhooks.
//!
//! What is checked:
//! - `bearer`: `Authorization: Bearer <secret>`.
//! - `basic`: `Authorization: Basic base64(user:password)`, compared with the secret `user:password`
//!   as a whole, so a failure never tells whether the user or the password was wrong.
//! - `hmac`: the header named by `auth.header` holds `prefix + encode(HMAC(secret, raw body))`. The MAC
//!   covers the raw body bytes exactly as received, before any parsing or re-encoding.
//! - `standard-webhooks`: HMAC-SHA256 over `{webhook-id}.{webhook-timestamp}.{raw body}` with the
//!   base64-decoded `whsec_` key; `webhook-signature` holds space-separated `v1,<base64>` entries, any
//!   one of which may match (key rotation); the timestamp must be within five minutes of now, which
//!   bounds how long a captured request can be replayed.
//!
//! Every comparison against a secret or an expected MAC is constant-time: an ordinary `==` stops at the
//! first differing byte, and the time that takes lets an attacker guess a token or signature byte by
//! byte. Tokens are hashed before comparing so their length does not show either. Error messages say
//! what is wrong with the request and never include a secret or the received credentials.

use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig, STANDARD};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use chrono::{DateTime, Utc};
use hmac::{Hmac, Mac};
use sha1::Sha1;
use sha2::{Digest, Sha256, Sha512};
use subtle::ConstantTimeEq;

use crate::config::compile::standard_webhooks_key;
use crate::config::model::{Auth, AuthKind, HmacAlgorithm, SignatureEncoding};

/// Why a request failed authentication; the server answers 401 with this message (no secrets in it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct AuthError(pub String);

/// How far `webhook-timestamp` may be from now, either way.
const TOLERANCE_SECS: u64 = 5 * 60;

/// Standard base64 alphabet; padding optional on input.
const BASE64_LENIENT: GeneralPurpose = GeneralPurpose::new(
    &alphabet::STANDARD,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

fn fail(msg: impl Into<String>) -> AuthError {
    AuthError(msg.into())
}

/// Checks a webhook request against its function's `[webhook.auth]`.
pub fn verify(
    auth: &Auth,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), AuthError> {
    match auth.kind {
        AuthKind::Bearer => {
            let token = credentials(headers, "Bearer")?;
            if !ct_eq_hashed(token.as_bytes(), auth.secret.expose()) {
                return Err(fail("wrong bearer token"));
            }
            Ok(())
        }
        AuthKind::Basic => {
            let encoded = credentials(headers, "Basic")?;
            let given = BASE64_LENIENT
                .decode(encoded)
                .map_err(|_| fail("Authorization: Basic credentials are not base64"))?;
            if !ct_eq_hashed(&given, auth.secret.expose()) {
                return Err(fail("wrong user name or password"));
            }
            Ok(())
        }
        AuthKind::Hmac => verify_hmac(auth, headers, body),
        AuthKind::StandardWebhooks => verify_standard_webhooks(auth, headers, body, now),
    }
}

/// Signs an outgoing delivery per Standard Webhooks: returns the `webhook-signature` value
/// `v1,<base64 HMAC-SHA256(key, "{id}.{timestamp}.{body}")>`. `key` is the decoded key
/// (see [`standard_webhooks_key`]).
pub fn standard_webhooks_sign(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> String {
    format!(
        "v1,{}",
        STANDARD.encode(standard_webhooks_mac(key, id, timestamp, body))
    )
}

fn standard_webhooks_mac(key: &[u8], id: &str, timestamp: i64, body: &[u8]) -> Vec<u8> {
    let prefix = format!("{id}.{timestamp}.");
    let mut mac =
        <Hmac<Sha256> as Mac>::new_from_slice(key).expect("HMAC takes keys of any length");
    mac.update(prefix.as_bytes());
    mac.update(body);
    mac.finalize().into_bytes().to_vec()
}

/// A header's value as text; a missing or non-text header is an authentication failure.
fn header<'a>(headers: &'a HeaderMap, name: &str) -> Result<&'a str, AuthError> {
    let value = headers
        .get(name)
        .ok_or_else(|| fail(format!("missing {name} header")))?;
    let text = value
        .to_str()
        .map_err(|_| fail(format!("the {name} header is not valid text")))?;
    Ok(text.trim())
}

/// The credentials of `Authorization: <scheme> <credentials>`; the scheme is case-insensitive.
fn credentials<'a>(headers: &'a HeaderMap, scheme: &str) -> Result<&'a str, AuthError> {
    let value = header(headers, AUTHORIZATION.as_str())?;
    let (given, rest) = value.split_once(' ').unwrap_or((value, ""));
    if !given.eq_ignore_ascii_case(scheme) {
        return Err(fail(format!(
            "expected an `Authorization: {scheme} …` header"
        )));
    }
    Ok(rest.trim_start())
}

/// Constant-time equality that hides the lengths too: both sides are hashed first.
fn ct_eq_hashed(given: &[u8], expected: &[u8]) -> bool {
    let (a, b) = (Sha256::digest(given), Sha256::digest(expected));
    bool::from(a.as_slice().ct_eq(b.as_slice()))
}

fn verify_hmac(auth: &Auth, headers: &HeaderMap, body: &[u8]) -> Result<(), AuthError> {
    let name = auth.header.as_str();
    let value = header(headers, name)?;
    let prefix = auth.prefix.as_str();
    let encoded = match value.get(..prefix.len()) {
        Some(p) if p.eq_ignore_ascii_case(prefix) => &value[prefix.len()..],
        _ => {
            return Err(fail(format!(
                "the {name} header does not start with `{prefix}`"
            )))
        }
    };
    let given = match auth.encoding {
        SignatureEncoding::Hex => {
            hex::decode(encoded).map_err(|_| fail(format!("the signature in {name} is not hex")))?
        }
        SignatureEncoding::Base64 => BASE64_LENIENT
            .decode(encoded)
            .map_err(|_| fail(format!("the signature in {name} is not base64")))?,
    };
    let key = auth.secret.expose();
    let ok = match auth.algorithm {
        HmacAlgorithm::Sha1 => mac_matches::<Hmac<Sha1>>(key, body, &given),
        HmacAlgorithm::Sha256 => mac_matches::<Hmac<Sha256>>(key, body, &given),
        HmacAlgorithm::Sha512 => mac_matches::<Hmac<Sha512>>(key, body, &given),
    };
    if !ok {
        return Err(fail(format!(
            "the signature in {name} does not match the body"
        )));
    }
    Ok(())
}

/// `verify_slice` compares in constant time (and rejects a wrong length).
fn mac_matches<M: Mac + hmac::digest::KeyInit>(key: &[u8], body: &[u8], given: &[u8]) -> bool {
    match <M as Mac>::new_from_slice(key) {
        Ok(mut mac) => {
            mac.update(body);
            mac.verify_slice(given).is_ok()
        }
        Err(_) => false,
    }
}

fn verify_standard_webhooks(
    auth: &Auth,
    headers: &HeaderMap,
    body: &[u8],
    now: DateTime<Utc>,
) -> Result<(), AuthError> {
    let id = header(headers, "webhook-id")?;
    let timestamp = header(headers, "webhook-timestamp")?;
    let signatures = header(headers, "webhook-signature")?;
    let timestamp: i64 = timestamp
        .parse()
        .map_err(|_| fail("webhook-timestamp is not a unix timestamp in seconds"))?;
    if now.timestamp().abs_diff(timestamp) > TOLERANCE_SECS {
        return Err(fail(if timestamp < now.timestamp() {
            "webhook-timestamp is more than 5 minutes old"
        } else {
            "webhook-timestamp is more than 5 minutes in the future"
        }));
    }
    // compile.rs refuses to load a function whose key does not decode; this is a safety net.
    let key = standard_webhooks_key(&auth.secret)
        .map_err(|_| fail("the function's standard-webhooks secret is not usable"))?;
    let expected = standard_webhooks_mac(&key, id, timestamp, body);
    let mut any_v1 = false;
    for entry in signatures.split_ascii_whitespace() {
        let Some(("v1", encoded)) = entry.split_once(',') else {
            continue; // other versions (e.g. v1a) are not ours to check
        };
        any_v1 = true;
        let Ok(given) = BASE64_LENIENT.decode(encoded) else {
            continue;
        };
        if bool::from(given.as_slice().ct_eq(&expected)) {
            return Ok(());
        }
    }
    Err(fail(if any_v1 {
        "no webhook-signature matches the request"
    } else {
        "webhook-signature has no v1 signature"
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::model::Secret;
    use axum::http::{HeaderName, HeaderValue};

    const GH_SECRET: &str = "It's a Secret to Everybody";
    const GH_BODY: &[u8] = b"Hello, World!";
    // Computed with Python's hmac module over GH_SECRET / GH_BODY.
    const SHA1_HEX: &str = "01dc10d0c83e72ed246219cdd91669667fe2ca59";
    const SHA1_B64: &str = "AdwQ0Mg+cu0kYhnN2RZpZn/iylk=";
    const SHA256_HEX: &str = "757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17";
    const SHA256_B64: &str = "dXEH6g6yUJ/CESIczphLijdXC211hsIsRvQ3nIsEPhc=";
    const SHA512_HEX: &str = "11ed355a617e98134e842012a7944ccf59c10256cb182357bd7e3a42013ff07c376f8c14cf5cc1923da20b51d64256b2fb8ebbf100aa67a61326f61fea8111bc";
    const SHA512_B64: &str =
        "Ee01WmF+mBNOhCASp5RMz1nBAlbLGCNXvX46QgE/8Hw3b4wUz1zBkj2iC1HWQlay+4678QCqZ6YTJvYf6oERvA==";

    // The Standard Webhooks published test vector.
    const SW_SECRET: &str = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    const SW_ID: &str = "msg_p5jXN8AQM9LWM0D4loKWxJek";
    const SW_TS: i64 = 1614265330;
    const SW_BODY: &[u8] = br#"{"test": 2432232314}"#;
    const SW_SIG: &str = "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=";

    fn auth(kind: AuthKind, secret: &str) -> Auth {
        Auth {
            kind,
            secret: Secret::new(secret.as_bytes().to_vec()),
            header: "X-Signature".into(),
            algorithm: HmacAlgorithm::Sha256,
            prefix: String::new(),
            encoding: SignatureEncoding::Hex,
        }
    }

    fn hmac(alg: HmacAlgorithm, enc: SignatureEncoding, header: &str, prefix: &str) -> Auth {
        let (header, prefix) = (header.into(), prefix.into());
        let base = auth(AuthKind::Hmac, GH_SECRET);
        Auth {
            header,
            algorithm: alg,
            prefix,
            encoding: enc,
            ..base
        }
    }

    /// Verifies at unix time `now`; the error message is checked not to leak the secret.
    fn run(a: &Auth, pairs: &[(&str, &str)], body: &[u8], now: i64) -> Result<(), String> {
        let mut map = HeaderMap::new();
        for (k, v) in pairs {
            let name = HeaderName::from_bytes(k.as_bytes()).unwrap();
            map.append(name, HeaderValue::from_str(v).unwrap());
        }
        let now = DateTime::from_timestamp(now, 0).unwrap();
        let result = verify(a, &map, body, now).map_err(|e| e.0);
        if let Err(msg) = &result {
            let secret = std::str::from_utf8(a.secret.expose()).unwrap();
            assert!(!msg.contains(secret), "{msg:?} leaks the secret");
        }
        result
    }

    /// `want`: `None` to pass, or a piece of the expected error message.
    #[track_caller]
    fn expect(result: Result<(), String>, want: Option<&str>) {
        match (result, want) {
            (Ok(()), None) => {}
            (Err(msg), Some(needle)) => assert!(msg.contains(needle), "{msg:?} lacks {needle:?}"),
            (got, want) => panic!("got {got:?}, wanted {want:?}"),
        }
    }

    const WRONG: Option<&str> = Some("does not match");

    #[test]
    fn bearer() {
        let a = auth(AuthKind::Bearer, "s3cret-token");
        for (value, want) in [
            ("Bearer s3cret-token", None),
            ("bearer  s3cret-token", None),
            ("Bearer s3cret-toke", Some("wrong bearer token")),
            ("Bearer s3cret-token2", Some("wrong bearer token")),
            ("Bearer S3CRET-TOKEN", Some("wrong bearer token")),
            ("Bearer ", Some("wrong bearer token")),
            (
                "Basic s3cret-token",
                Some("expected an `Authorization: Bearer"),
            ),
            ("s3cret-token", Some("expected an `Authorization: Bearer")),
        ] {
            expect(run(&a, &[("Authorization", value)], b"", 0), want);
        }
        expect(run(&a, &[], b"", 0), Some("missing authorization header"));
    }

    #[test]
    fn basic() {
        let a = auth(AuthKind::Basic, "alice:pa:ss");
        let wrong = Some("wrong user name or password");
        for (creds, want) in [
            ("alice:pa:ss", None),
            ("alice:pa:sx", wrong),
            ("bob:pa:ss", wrong),
            ("alice", wrong),
            ("alice:pa:ss ", wrong),
        ] {
            let value = format!("Basic {}", STANDARD.encode(creds));
            expect(run(&a, &[("Authorization", &value)], b"", 0), want);
        }
        let auth_header = |v| run(&a, &[("Authorization", v)], b"", 0);
        expect(auth_header("Basic !!notbase64"), Some("not base64"));
        expect(
            auth_header("Bearer alice:pa:ss"),
            Some("`Authorization: Basic"),
        );
        expect(run(&a, &[], b"", 0), Some("missing authorization header"));
    }

    #[test]
    fn hmac_github_example() {
        let a = hmac(
            HmacAlgorithm::Sha256,
            SignatureEncoding::Hex,
            "X-Hub-Signature-256",
            "sha256=",
        );
        let good = format!("sha256={SHA256_HEX}");
        let cases = [
            (good.clone(), None),
            (format!("sha256={}", SHA256_HEX.to_uppercase()), None),
            (good[..good.len() - 2].to_owned(), WRONG),
            (format!("{good}00"), WRONG),
            (format!("sha256={SHA1_HEX}"), WRONG),
            (SHA256_HEX.to_owned(), Some("does not start with `sha256=`")),
            ("sha256=zz".to_owned(), Some("is not hex")),
        ];
        for (value, want) in cases {
            // The configured name is mixed case; the lookup is case-insensitive.
            expect(
                run(&a, &[("x-hub-signature-256", &value)], GH_BODY, 0),
                want,
            );
        }
        let sig = [("X-Hub-Signature-256", good.as_str())];
        expect(run(&a, &sig, b"Hello, World?", 0), WRONG);
        let missing = run(&a, &[("X-Signature", &good)], GH_BODY, 0);
        expect(missing, Some("missing X-Hub-Signature-256 header"));
        let other_key = Auth {
            secret: Secret::new(b"another".to_vec()),
            ..a
        };
        expect(run(&other_key, &sig, GH_BODY, 0), WRONG);
    }

    #[test]
    fn hmac_algorithms_and_encodings() {
        use HmacAlgorithm::*;
        use SignatureEncoding::*;
        for (alg, enc, sig) in [
            (Sha1, Hex, SHA1_HEX),
            (Sha1, Base64, SHA1_B64),
            (Sha1, Base64, SHA1_B64.trim_end_matches('=')),
            (Sha256, Hex, SHA256_HEX),
            (Sha256, Base64, SHA256_B64),
            (Sha512, Hex, SHA512_HEX),
            (Sha512, Base64, SHA512_B64),
        ] {
            // Default header X-Signature, no prefix.
            let a = hmac(alg, enc, "X-Signature", "");
            expect(run(&a, &[("X-Signature", sig)], GH_BODY, 0), None);
            expect(run(&a, &[("X-Signature", sig)], b"tampered", 0), WRONG);
            let other = hmac(
                if alg == Sha256 { Sha512 } else { Sha256 },
                enc,
                "X-Signature",
                "",
            );
            expect(run(&other, &[("X-Signature", sig)], GH_BODY, 0), WRONG);
        }
        let a = hmac(Sha256, Base64, "X-Signature", "");
        expect(
            run(&a, &[("X-Signature", "not*base64")], GH_BODY, 0),
            Some("is not base64"),
        );
    }

    /// Standard Webhooks headers `[id, timestamp, signature]`; an empty string leaves one out.
    fn sw(a: &Auth, [id, ts, sig]: [&str; 3], body: &[u8], now: i64) -> Result<(), String> {
        let all = [
            ("webhook-id", id),
            ("webhook-timestamp", ts),
            ("webhook-signature", sig),
        ];
        let present: Vec<_> = all.into_iter().filter(|(_, v)| !v.is_empty()).collect();
        run(a, &present, body, now)
    }

    #[test]
    fn standard_webhooks_published_vector() {
        let a = auth(AuthKind::StandardWebhooks, SW_SECRET);
        let ts = SW_TS.to_string();
        let hdrs = [SW_ID, ts.as_str(), SW_SIG];
        let no_match = Some("no webhook-signature matches");
        for (now, want) in [
            (SW_TS, None),
            (SW_TS - 300, None),
            (SW_TS + 300, None),
            (SW_TS + 301, Some("more than 5 minutes old")),
            (SW_TS - 301, Some("more than 5 minutes in the future")),
        ] {
            expect(sw(&a, hdrs, SW_BODY, now), want);
        }
        expect(sw(&a, hdrs, br#"{"test": 2432232315}"#, SW_TS), no_match);
        expect(sw(&a, ["msg_other", &ts, SW_SIG], SW_BODY, SW_TS), no_match);
        // The timestamp is signed: a shifted one, within tolerance, fails.
        let shifted = (SW_TS + 1).to_string();
        expect(sw(&a, [SW_ID, &shifted, SW_SIG], SW_BODY, SW_TS), no_match);
        expect(
            sw(&a, [SW_ID, "yesterday", SW_SIG], SW_BODY, SW_TS),
            Some("unix timestamp"),
        );
        let other = auth(
            AuthKind::StandardWebhooks,
            "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        );
        expect(sw(&other, hdrs, SW_BODY, SW_TS), no_match);
        for (i, name) in ["webhook-id", "webhook-timestamp", "webhook-signature"]
            .iter()
            .enumerate()
        {
            let mut missing = hdrs;
            missing[i] = "";
            expect(
                sw(&a, missing, SW_BODY, SW_TS),
                Some(&format!("missing {name} header")),
            );
        }
    }

    #[test]
    fn standard_webhooks_rotation_and_versions() {
        let a = auth(AuthKind::StandardWebhooks, SW_SECRET);
        let ts = SW_TS.to_string();
        let stale = "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
        let other_version = format!("v1a,{}", &SW_SIG[3..]);
        for (sigs, want) in [
            (
                format!("{other_version} {stale} v1,*garbage* v2,abc {SW_SIG}"),
                None,
            ),
            (format!("{SW_SIG} {stale}"), None),
            (
                format!("{stale}  v1,x"),
                Some("no webhook-signature matches"),
            ),
            (format!("{other_version} v2,x"), Some("has no v1 signature")),
        ] {
            expect(sw(&a, [SW_ID, &ts, &sigs], SW_BODY, SW_TS), want);
        }
    }

    #[test]
    fn standard_webhooks_sign_round_trip() {
        let key = standard_webhooks_key(&Secret::new(SW_SECRET.as_bytes().to_vec())).unwrap();
        assert_eq!(standard_webhooks_sign(&key, SW_ID, SW_TS, SW_BODY), SW_SIG);
        // Anything we sign verifies; the `whsec_` prefix of the secret is optional.
        let a = auth(AuthKind::StandardWebhooks, &SW_SECRET["whsec_".len()..]);
        let (id, now, body) = (
            "evt_01",
            1_700_000_000,
            b"{\"type\":\"x\"}\n\x00".as_slice(),
        );
        let sig = standard_webhooks_sign(&key, id, now, body);
        let ts = now.to_string();
        expect(sw(&a, [id, &ts, &sig], body, now + 10), None);
        expect(
            sw(&a, [id, &ts, &sig], b"other", now),
            Some("no webhook-signature matches"),
        );
    }
}
