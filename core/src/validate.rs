//! Input rules shared by the services. Each returns the normalised value or a field error whose
//! message can be shown next to the form field.

use crate::{Error, Result};

/// Trimmed, lower-cased; one `@` with something on both sides, no spaces or controls, at most
/// 254 characters (RFC 5321's path limit). Deliverability is not our concern.
pub fn email(field: &str, value: &str) -> Result<String> {
    let value = value.trim().to_lowercase();
    if value.is_empty() {
        return Err(Error::invalid(field, "Enter an email address."));
    }
    let valid = value.chars().count() <= 254
        && !value.chars().any(|c| c.is_whitespace() || c.is_control())
        && matches!(value.split_once('@'), Some((local, domain))
            if !local.is_empty() && !domain.is_empty() && !domain.contains('@')
               && !domain.starts_with('.') && !domain.ends_with('.'));
    if valid {
        Ok(value)
    } else {
        Err(Error::invalid(
            field,
            "Enter a valid email address, like name@example.com.",
        ))
    }
}

/// A human label (display name, passkey name, tenant name): trimmed, 1..=`max` characters, no
/// control characters.
pub fn label(field: &str, what: &str, value: &str, max: usize) -> Result<String> {
    let value = value.trim();
    if value.is_empty() {
        return Err(Error::invalid(field, format!("Enter a {what}.")));
    }
    if value.chars().count() > max {
        return Err(Error::invalid(
            field,
            format!("The {what} must be at most {max} characters."),
        ));
    }
    if value.chars().any(char::is_control) {
        return Err(Error::invalid(
            field,
            format!("The {what} must not contain control characters."),
        ));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_or_refused_with_the_field() {
        assert_eq!(
            email("email", "  Ada@Example.COM ").ok().as_deref(),
            Some("ada@example.com")
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "a b@example.com",
            "a@b@c",
            "a@.com",
        ] {
            let err = email("email", bad)
                .err()
                .map(|e| e.field().map(str::to_owned));
            assert_eq!(err, Some(Some("email".to_owned())), "{bad:?}");
        }
    }

    #[test]
    fn labels_are_trimmed_and_bounded() {
        assert_eq!(label("n", "name", " Ada ", 5).ok().as_deref(), Some("Ada"));
        assert!(label("n", "name", "   ", 5).is_err());
        assert!(label("n", "name", "abcdef", 5).is_err());
        assert!(label("n", "name", "a\u{7}", 5).is_err());
    }
}
