//! Validation of the names the contract allows: `client_id`, `room`, `user`,
//! `room_name`, `file` and producer names.

/// The longest name the contract allows, in characters.
pub const MAX_NAME_LEN: usize = 64;

/// Whether `name` is 1 to 64 characters of `A-Z a-z 0-9 _ . -`, not starting
/// with `.`.
pub fn is_valid(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= MAX_NAME_LEN
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b'-'))
}

#[cfg(test)]
mod tests {
    use super::is_valid;

    #[test]
    fn accepts_the_allowed_alphabet() {
        assert!(is_valid("general"));
        assert!(is_valid("a.b-c_D9"));
        assert!(is_valid(&"x".repeat(64)));
    }

    #[test]
    fn refuses_everything_else() {
        for bad in [
            "",
            ".hidden",
            "..",
            "a b",
            "a/b",
            "é",
            "a\0",
            &"x".repeat(65),
        ] {
            assert!(!is_valid(bad), "{bad:?} should be refused");
        }
    }
}
