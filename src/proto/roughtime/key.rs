//! A Roughtime server's long-term public key as a source URI carries it:
//! 32 bytes of Ed25519, in base64 as the Roughtime ecosystem lists keys (e.g.
//! Cloudflare's `ecosystem.json`), or in 64 hex digits as roughenough prints them.

const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Reads a key: 64 hex digits, or standard base64 (padding optional;
/// the URL-safe `-` and `_` accepted for `+` and `/`).
pub fn parse(text: &str) -> Result<[u8; 32], String> {
    let bytes = if text.len() == 64 && text.bytes().all(|b| b.is_ascii_hexdigit()) {
        (0..32)
            .map(|i| u8::from_str_radix(&text[2 * i..2 * i + 2], 16).unwrap_or(0))
            .collect()
    } else {
        base64(text)?
    };
    bytes.try_into().map_err(|b: Vec<u8>| {
        format!(
            "the key is {} bytes; an Ed25519 public key is 32 (44 base64 characters or 64 hex digits)",
            b.len()
        )
    })
}

fn base64(text: &str) -> Result<Vec<u8>, String> {
    let trimmed = text.trim_end_matches('=');
    if text.len() - trimmed.len() > 2 {
        return Err("too much base64 padding".into());
    }
    let mut out = Vec::with_capacity(trimmed.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0u32);
    for c in trimmed.bytes() {
        let c = match c {
            b'-' => b'+',
            b'_' => b'/',
            c => c,
        };
        let v = ALPHABET
            .iter()
            .position(|a| *a == c)
            .ok_or_else(|| format!("`{}` is neither base64 nor hex", text))? as u32;
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    if bits >= 6 || acc != 0 {
        return Err(format!("`{text}` is not canonical base64"));
    }
    Ok(out)
}

/// The key in standard base64 with padding, as the ecosystem lists keys.
pub fn to_base64(key: &[u8; 32]) -> String {
    let mut out = String::with_capacity(44);
    for chunk in key.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_base64_and_hex_keys() {
        let b64 = "AW5uAoTSTDfG5NfY1bTh08GUnOqlRb+HVhbJ3ODJvsE=";
        let k = parse(b64).unwrap();
        assert_eq!(k[0], 0x01);
        assert_eq!(to_base64(&k), b64);
        assert_eq!(parse(b64.trim_end_matches('=')).unwrap(), k);
        let hex: String = k.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(parse(&hex).unwrap(), k);
        assert_eq!(parse(&hex.to_uppercase()).unwrap(), k);
        for k in [
            "0GD7c3yP8xEc4Zl2zeuN2SlLvDVVocjsPSL8/Rl/7zg=",
            "S3AzfZJ5CjSdkJ21ZJGbxqdYP/SoE8fXKY0+aicsehI=",
            "iBVjxg/1j7y1+kQUTBYdTabxCppesU/07D4PMDJk2WA=",
        ] {
            assert_eq!(to_base64(&parse(k).unwrap()), k);
        }
    }

    #[test]
    fn refuses_other_text() {
        for bad in [
            "",
            "AW5u",
            "AW5uAoTSTDfG5NfY1bTh08GUnOqlRb+HVhbJ3ODJvsE=AAAA",
            "AW5uAoTSTDfG5NfY1bTh08GUnOqlRb+HVhbJ3ODJvsF=", // non-canonical tail bits
            "AW5uAoTSTDfG5NfY1bTh08GUnOqlRb+HVhbJ3ODJvs!=",
            "AW5uAoTSTDfG5NfY1bTh08GUnOqlRb+HVhbJ3ODJvsE===",
            "zz",
        ] {
            assert!(parse(bad).is_err(), "{bad}");
        }
    }
}
